"""Inference strategies: choose an answer from rationales (or grow rationales step by step)."""
