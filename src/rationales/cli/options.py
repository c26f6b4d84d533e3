"""Command-line options derived from the config dataclasses (``rationales/config.py`` and each
job's config): a flag's default and help come from the config field it fills, so the two
cannot drift (tests/test_config.py checks every command against its config)."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

import typer

from ..errors import RationalesError


def opt(cls: type, name: str, *decls: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for field ``name`` of config ``cls`` (default and help from the field)."""
    f = next((f for f in fields(cls) if f.name == name), None)
    if f is None:
        raise AttributeError(f"{cls.__name__} has no field {name!r}")
    default = f.default if f.default is not MISSING else None
    kwargs.setdefault("help", f.metadata.get("help") or None)
    return typer.Option(default, *decls, **kwargs)


def parse_key_values(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``KEY=VALUE`` strings -> {KEY: VALUE} (values stay strings: the config converts them)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RationalesError(f"{flag} expects KEY=VALUE, got '{pair}'.")
        out[key.strip()] = value
    return out
