"""GBNF grammars (llama.cpp's grammar format) for constrained output: checking them, and the
grammar a verdict needs.

A :class:`~rationales.backends.base.GenerationRequest` may carry ``grammar`` (GBNF text, root
rule ``root``). The llamacpp backend constrains sampling with it; the openai backend sends it
the way the server expects; the fake backend checks and records it. :func:`check_grammar`
parses the text with llama.cpp's own parser (no vocabulary needed), after a cheap scan that
refuses what would crash that C parser (deep nesting overflows its stack), so a bad grammar is
a one-line error naming llama.cpp's reason, never a crash.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading

from ..errors import BackendError

#: Longest grammar accepted (characters).
MAX_GRAMMAR_CHARS = 65_536
#: Deepest ``( ... )`` nesting accepted; llama.cpp's recursive parser overflows its stack near 10^5.
MAX_GRAMMAR_DEPTH = 100

_lock = threading.Lock()
_cache: dict[str, str | None] = {}


def _scan(text: str) -> str | None:
    """Why ``text`` cannot go to llama.cpp's parser, or None. Tracks quoted literals, character
    classes and comments so that parentheses inside them do not count."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif ch in "\"[":
            close = '"' if ch == '"' else "]"
            i += 1
            while i < n and text[i] != close:
                i += 2 if text[i] == "\\" else 1
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
        i += 1
    if deepest > MAX_GRAMMAR_DEPTH:
        return f"groups are nested {deepest} deep (at most {MAX_GRAMMAR_DEPTH})"
    return None


def _llama_parse(text: str) -> str | None:
    """llama.cpp's verdict on ``text``: None if it parses, else its last error line."""
    import llama_cpp

    logged = io.StringIO()
    log = logging.getLogger("llama-cpp-python")  # its log callback prints what this logger's level lets through
    with _lock, tempfile.TemporaryFile(mode="w+b") as err:
        saved, level = os.dup(2), log.level
        try:  # the parser writes to stderr itself; the rest goes through llama-cpp-python's log callback
            sys.stderr.flush()
            os.dup2(err.fileno(), 2)
            log.setLevel(logging.DEBUG)
            with contextlib.redirect_stderr(logged):
                ptr = llama_cpp.llama_sampler_init_grammar(None, text.encode("utf-8"), b"root")
        finally:
            log.setLevel(level)
            os.dup2(saved, 2)
            os.close(saved)
        if ptr:
            llama_cpp.llama_sampler_free(ptr)
            return None
        err.seek(0)
        output = err.read().decode("utf-8", "replace") + logged.getvalue()
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if "error" in ln or "unsupported" in ln or "does not contain" in ln]
    reason = (reasons or lines or ["llama.cpp refused it"])[0]
    return reason.removeprefix("parse: ")[:200]


def check_grammar(text: object) -> str:
    """``text`` if it is a GBNF grammar llama.cpp accepts (with a ``root`` rule); else a
    one-line :class:`BackendError` saying what is wrong."""
    if not isinstance(text, str):
        raise BackendError(f"A grammar must be GBNF text, got {type(text).__name__}.")
    if not text.strip():
        raise BackendError("The grammar is empty; give GBNF text with a root rule, e.g. root ::= \"Score: \" [1-5]")
    problem = None
    if len(text) > MAX_GRAMMAR_CHARS:
        problem = f"it has {len(text)} characters (at most {MAX_GRAMMAR_CHARS})"
    elif "\x00" in text:
        problem = "it contains a NUL character"
    elif any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        problem = "it contains a lone surrogate (not UTF-8 text)"
    else:
        problem = _scan(text)
    if problem is None:
        if text in _cache:
            problem = _cache[text]
        else:
            problem = _cache[text] = _llama_parse(text)
            if len(_cache) > 256:
                _cache.pop(next(iter(_cache)))
    if problem is not None:
        raise BackendError(f"The GBNF grammar is not valid: {' '.join(problem.split())}. It needs a root rule, "
                           "e.g. root ::= \"Score: \" [1-5] (see llama.cpp's grammars/README.md).")
    return text


def choice_grammar(options: list[str], prefix: str = "") -> str:
    """A grammar for ``prefix`` followed by exactly one of ``options`` (e.g. verdict labels)."""
    if not options:
        raise ValueError("choice_grammar needs at least one option")

    def lit(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    alts = " | ".join(lit(o) for o in options)
    return f"root ::= {lit(prefix) + ' ' if prefix else ''}({alts})"
