"""Command-line options derived from the config dataclasses (``rationales/config.py`` and each
job's config): a flag's default and help come from the config field it fills, so the two
cannot drift (tests/test_config.py checks every command against its config)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from typing import Any

import typer

from ..errors import RationalesError


def ray_opt(cls: type) -> Any:
    """``--ray [ADDRESS]``: alone, a local Ray (``cli.main`` fills in ``local``); with an address, that cluster."""
    return opt(cls, "ray", "--ray", metavar="[ADDRESS]")


def _field(cls: type, name: str) -> Any:
    f = next((f for f in fields(cls) if f.name == name), None)
    if f is None:
        raise AttributeError(f"{cls.__name__} has no field {name!r}")
    return f


def _default(f: Any) -> Any:
    """A field's default as the flag's: a list of names is its comma-separated text."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        value = f.default_factory()
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return ",".join(value)
    return None


def opt(cls: type, name: str, *decls: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for field ``name`` of config ``cls`` (default and help from the field)."""
    f = _field(cls, name)
    kwargs.setdefault("help", f.metadata.get("help") or None)
    return typer.Option(_default(f), *decls, **kwargs)


def arg(cls: type, name: str, *, required: bool = False, **kwargs: Any) -> Any:
    """A ``typer.Argument`` for field ``name`` of config ``cls`` (help, and unless ``required``
    the default, from the field)."""
    f = _field(cls, name)
    kwargs.setdefault("help", f.metadata.get("help") or None)
    return typer.Argument(... if required else _default(f), **kwargs)


def parse_key_values(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``KEY=VALUE`` strings -> {KEY: VALUE} (values stay strings: the config converts them)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RationalesError(f"{flag} expects KEY=VALUE, got '{pair}'.")
        out[key.strip()] = value
    return out


@contextmanager
def session(cfg: Any, *, create: bool = True, model: bool = True) -> Iterator[tuple[Any, Any]]:
    """The store and (when ``model``) the backend of a job config, closed afterwards."""
    from .common import make_backend, open_store

    with (open_store(cfg.store) if create else open_store(cfg.store, create=False)) as st:
        be = make_backend(cfg.backend, cfg.model, cfg.base_url, ray=getattr(cfg, "ray", None),
                          ray_actors=getattr(cfg, "ray_actors", 2), **cfg.backend_options) if model else None
        try:
            yield st, be
        finally:
            if be is not None:
                be.close()


def emit(result: Any, json_out: bool) -> dict[str, Any] | None:
    """The result's JSON: printed (and None returned) with ``--json``, else returned for the table."""
    from .common import print_json

    summary = result.to_json()
    if json_out:
        print_json(summary)
        return None
    return summary
