"""One registry mechanism for everything chosen by name: backends, tasks, methods, strategies, checkers.

A :class:`Registry` holds the built-ins, registered explicitly by the module that owns the
kind (``BACKENDS.register("fake", "rationales.backends.fake:FakeBackend", help=...)``), and
finds third-party ones through an entry-point group (``rationales.backends``,
``rationales.tasks``, ``rationales.methods``, ``rationales.strategies``,
``rationales.checkers``)::

    [project.entry-points."rationales.backends"]
    mybackend = "mypkg.backend:MyBackend"

Everything is lazy: a target given as ``"module:attr"`` is imported only when that name is
looked up with :meth:`Registry.get`, and the installed entry points are read on the first
lookup or listing, never when this module or the owner's module is imported. A built-in wins
over a plugin of the same name. An unknown name raises
:class:`~rationales.errors.UnknownNameError` with a "did you mean" suggestion and the known
names; a plugin that fails to import raises :class:`PluginError` naming the plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, overload

from .errors import RationalesError, UnknownNameError

T = TypeVar("T")

#: The entry-point group of each kind (``rationales.<kind>s``).
GROUPS = {kind: f"rationales.{kind}s" for kind in ("backend", "task", "method", "strategy", "checker")}
GROUPS["strategy"] = "rationales.strategies"

_MISSING = object()


class PluginError(RationalesError):
    """A registered name whose target could not be loaded."""


@dataclass
class Entry:
    """One registered name. ``target`` is ``"module:attr"`` (or the repr of an object given
    directly); ``source`` is ``"builtin"`` or the distribution that declared the entry point."""

    name: str
    target: str
    help: str = ""
    source: str = "builtin"
    obj: Any = _MISSING

    @property
    def loaded(self) -> bool:
        return self.obj is not _MISSING


def _load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names -> objects of one kind (e.g. backend classes). See the module docstring."""

    def __init__(self, kind: str, group: str | None = None, *, hints: Iterable[str] = ()):
        """``kind`` names the thing in errors ("backend"); ``group`` is the entry-point group
        (default ``GROUPS[kind]`` or ``rationales.<kind>s``); ``hints`` are extra forms listed
        in the unknown-name error (e.g. ``"<file.jsonl>"``), never looked up."""
        self.kind = kind
        self.group = group if group is not None else GROUPS.get(kind, f"rationales.{kind}s")
        self.hints = list(hints)
        self._builtins: dict[str, Entry] = {}
        self._plugins: dict[str, tuple[Entry, Any]] | None = None  # read on first use

    # ------------------------------------------------------------ registering

    @overload
    def register(self, name: str, target: None = None, *, help: str = "") -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, target: str | T, *, help: str = "") -> None: ...

    def register(self, name: str, target: Any = None, *, help: str = "") -> Any:
        """Register a built-in: ``target`` is ``"module:attr"`` (imported on first ``get``) or
        the object itself. Without ``target``, returns a decorator."""
        if target is None:
            def decorator(obj: T) -> T:
                self.register(name, obj, help=help)
                return obj
            return decorator
        if not name or not isinstance(name, str):
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if name in self._builtins:
            raise ValueError(f"The {self.kind} '{name}' is registered twice.")
        if isinstance(target, str):
            if ":" not in target:
                raise ValueError(f"A lazy {self.kind} target must look like 'module:attr', got {target!r}.")
            self._builtins[name] = Entry(name, target, help)
        else:
            label = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"
            self._builtins[name] = Entry(name, label, help, obj=target)
        return None

    def refresh(self) -> None:
        """Forget the entry points read so far (after installing a plugin in this process)."""
        self._plugins = None

    def _plugin_entries(self) -> dict[str, tuple[Entry, Any]]:
        if self._plugins is None:
            found: dict[str, tuple[Entry, Any]] = {}
            for ep in entry_points(group=self.group):
                if ep.name in found:
                    continue
                dist = getattr(ep, "dist", None)
                source = getattr(dist, "name", None) or "plugin"
                found[ep.name] = (Entry(ep.name, ep.value, "", source), ep)
            self._plugins = found
        return self._plugins

    # ------------------------------------------------------------ looking up

    def builtins(self) -> dict[str, Entry]:
        """The built-in entries only (does not read the entry points)."""
        return dict(self._builtins)

    def entries(self) -> dict[str, Entry]:
        """Every known name (plugins, then built-ins over them), sorted; nothing is imported."""
        merged = {name: entry for name, (entry, _) in self._plugin_entries().items()}
        merged.update(self._builtins)
        return dict(sorted(merged.items()))

    def names(self) -> list[str]:
        return list(self.entries())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._builtins or name in self._plugin_entries())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.entries())

    def entry(self, name: str) -> Entry:
        """The entry of ``name`` (not loaded); UnknownNameError with a suggestion if none."""
        found = self._builtins.get(name)
        if found is None and name in self._plugin_entries():
            found = self._plugin_entries()[name][0]
        if found is None:
            raise UnknownNameError(self.kind, name, [*self.names(), *self.hints])
        return found

    def get(self, name: str) -> T:
        """The object registered as ``name``, imported on first use."""
        entry = self.entry(name)
        if entry.loaded:
            return entry.obj
        if entry.source == "builtin":
            # a missing optional dependency of a built-in stays an ImportError: callers say what to install
            entry.obj = _load_target(entry.target)
            return entry.obj
        ep = self._plugin_entries()[name][1]
        try:
            entry.obj = ep.load()
        except Exception as e:  # noqa: BLE001 - third-party code: report it in one line
            raise PluginError(f"The {self.kind} '{name}' from the plugin {entry.source} ({entry.target}) failed "
                              f"to load ({type(e).__name__}: {e}); fix or uninstall that package.") from e
        return entry.obj

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, builtins={list(self._builtins)})"
