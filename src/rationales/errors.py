"""User-facing errors. The CLI prints ``str(error)`` as one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RationalesError(Exception):
    """An error the user can fix; its message says what to do."""


class UnknownNameError(RationalesError, KeyError):
    def __init__(self, what: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"Unknown {what} '{name}'.{hint} Known: {', '.join(known)}.")
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class BackendError(RationalesError):
    """The backend could not answer (dead server, bad model file, ...)."""


class TaskError(RationalesError):
    """A task or data file could not be loaded."""
