"""rationales: an LLM's rationale as a first-class object."""

__version__ = "0.1.0"
