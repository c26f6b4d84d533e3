"""Backends: one protocol (``base.Backend``), many implementations, chosen by name."""

from .base import (Backend, Completion, ContinuationScore, GenerationRequest, GenerationResult,
                   available_backends, backend_class, get_backend)

__all__ = ["Backend", "Completion", "ContinuationScore", "GenerationRequest", "GenerationResult",
           "available_backends", "backend_class", "get_backend"]
