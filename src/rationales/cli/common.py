"""Helpers shared by the CLI commands: backend and store construction, progress, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..backends.base import Backend, get_backend
from ..errors import RationalesError
from ..store import Store

err_console = Console(stderr=True)
out_console = Console()

# typer option declarations reused by several commands
BackendOpt = typer.Option("llamacpp", "--backend", "-b", help="Backend name (see `rationales backends`).")
ModelOpt = typer.Option(None, "--model", "-m", help="Model: alias, GGUF path, HF model, or server model name.")
StoreOpt = typer.Option("rationales.sqlite", "--store", help="SQLite store file (created if missing).")
OutOpt = typer.Option("rationales-out", "--out", help="Directory for the HTML report and other outputs.")
JsonOpt = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout.")
BaseUrlOpt = typer.Option(None, "--base-url", help="OpenAI-compatible server URL (openai backend).")
BackendOptsOpt = typer.Option(None, "--backend-opt", "-o",
                              help="Extra backend option KEY=VALUE (repeatable), e.g. -o n_ctx=8192 -o n_parallel=32.")


def parse_backend_opts(pairs: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE strings -> dict, values parsed as JSON when possible (numbers, true/false)."""
    opts: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RationalesError(f"--backend-opt expects KEY=VALUE, got '{pair}'.")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    return opts


def make_backend(name: str, model: str | None, base_url: str | None = None, /, *, ray: str | None = None,
                 ray_actors: int = 2, **options: Any) -> Backend:
    for key, flag in (("model", "--model"), ("base_url", "--base-url")):
        if key in options:
            raise RationalesError(f"'{key}' is not a backend option (-o {key}=...); give it with {flag}.")
    opts = dict(options)
    if model is not None:
        opts["model"] = model
    if base_url is not None:
        opts["base_url"] = base_url
    if ray:
        return ray_backend(name, opts, ray, ray_actors)
    if name == "llamacpp":
        opts.setdefault("n_threads", int(os.environ.get("RATIONALES_THREADS", "2")))
    try:
        return get_backend(name, **opts)
    except ImportError as e:
        raise RationalesError(f"Backend '{name}' needs a package that is not installed ({e.name}); "
                              f"install it, e.g. pip install 'rationales[server,hf]'.") from e


def ray_backend(name: str, opts: dict[str, Any], ray: str, actors: int) -> Backend:
    """``--ray [ADDRESS]``: the backend as ``actors`` Ray actors. On a local Ray the machine's
    cores are shared out: a llama.cpp actor gets cores/actors threads and reserves them; an
    I/O-bound backend (openai, fake) reserves a quarter core."""
    try:
        from ..scale.ray_backend import RayBackend
    except ImportError as e:
        raise RationalesError("--ray needs Ray: pip install 'rationales[ray]'.") from e
    address = None if ray == "local" else ray
    cpus = os.cpu_count() or 2
    if name in ("llamacpp", "transformers"):
        threads = int(opts.get("n_threads") or max(1, cpus // actors)) if name == "llamacpp" else 1
        if name == "llamacpp":
            opts.setdefault("n_threads", threads)
        num_cpus = float(threads) if address else min(float(threads), cpus / actors)
    else:
        num_cpus = 0.25
    return RayBackend(inner=name, inner_options=opts, address=address, actors=actors, num_cpus=num_cpus,
                      local_cpus=None if address else cpus)


def _report_skip(table: str, rid: str, why: str) -> None:
    typer.echo(f"warning: skipped unreadable store row {table}/{rid} ({why})", err=True)


def open_store(path: str, create: bool = True) -> Store:
    """The store at ``path``; read-only commands pass ``create=False`` (a typo is an error, not a
    new empty store). Unreadable rows are reported on stderr and skipped."""
    return Store(path, create=create, on_skip=_report_skip)


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(k)``."""
    if not enabled or not sys.stderr.isatty() and os.environ.get("RATIONALES_PROGRESS") != "1":
        done = [0]

        def quiet(k: int) -> None:
            done[0] += k

        yield quiet
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False) as prog:
        task = prog.add_task(label, total=total)
        yield lambda k: prog.advance(task, k)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()
