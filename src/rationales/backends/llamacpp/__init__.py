"""In-process llama.cpp backend (llama-cpp-python 0.3.36) with batched parallel sampling.

Split by concern: ``context`` (the ctypes llama context and batch, size checks), ``scheduler``
(which sample decodes in which sequence slot; prompt KV sharing; continuous batching),
``sampler`` (one exact draw per token from the sample's own generator; GBNF grammars),
``logprobs`` (continuation scoring) and ``backend`` (:class:`LlamaCppBackend`, tying them
together). ``from rationales.backends.llamacpp import LlamaCppBackend`` is the public name.
"""

from .backend import LlamaCppBackend, LlamaCppOptions

__all__ = ["LlamaCppBackend", "LlamaCppOptions"]
