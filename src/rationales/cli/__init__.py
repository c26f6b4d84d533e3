"""The ``rationales`` command line (typer + rich).

Every command module in this package defines ``register(app)``. ``main()`` turns any
``RationalesError`` (and a few well-known system errors) into one line on stderr and a
non-zero exit code; it never shows a traceback for bad input.
"""

from __future__ import annotations

import errno
import importlib
import os
import sqlite3
import sys

import typer

#: the command modules; each must exist and define ``register(app)`` (a missing one is a bug,
#: reported, never skipped). ``rationales methods`` lives in core.
COMMAND_MODULES = ["core", "compare", "verify", "patch", "train", "review", "judge"]


class CommandModuleError(ImportError):
    """A module named in COMMAND_MODULES that does not exist or has no ``register``."""


def build_app() -> typer.Typer:
    app = typer.Typer(help="Rationales as first-class objects: sample, segment, verify, score, select, "
                           "export and train.", no_args_is_help=True, pretty_exceptions_enable=False,
                      add_completion=False)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rationales.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"rationales.cli.{name}":
                raise CommandModuleError(f"COMMAND_MODULES names rationales.cli.{name}, which does not exist; "
                                         "add the module or remove the name.") from e
            raise
        register = getattr(module, "register", None)
        if not callable(register):
            raise CommandModuleError(f"rationales.cli.{name} has no register(app) function.")
        register(app)
    return app


def _one_line(text: str) -> str:
    """An error message as one printable line: a newline or control character that came in
    with a user's name or path is shown escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text.strip())


#: options whose value may be left out (typer has no optional-value options): flag -> implied value
OPTIONAL_VALUES = {"--ray": "local"}


def with_implied_values(argv: list[str]) -> list[str]:
    """``--ray`` alone (last, or followed by another option) means ``--ray local``."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg in OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out


def main(argv: list[str] | None = None) -> int:
    from ..errors import RationalesError

    try:
        argv = with_implied_values(list(sys.argv[1:] if argv is None else argv))
        # standalone mode: typer prints usage errors itself and ends with SystemExit
        build_app()(args=argv, prog_name="rationales")
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except RationalesError as e:
        typer.echo(f"error: {_one_line(str(e))}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("error: interrupted; every finished sample is stored, run the same command again to resume.",
                   err=True)
        return 130
    except sqlite3.DatabaseError as e:  # corruption, a full disk and a lock each say what to do
        from ..store import describe_sqlite_error

        typer.echo(f"error: {describe_sqlite_error(None, e)}", err=True)
        return 2
    except OSError as e:
        if e.errno == errno.ENOSPC:
            typer.echo("error: disk full; free space and run the same command again: finished samples are kept.",
                       err=True)
            return 2
        typer.echo(f"error: {e.strerror or e} ({e.filename or ''}); check the path and permissions.", err=True)
        return 2
    except Exception as e:  # a bug of ours: still one line, with a way to see the traceback
        if os.environ.get("RATIONALES_DEBUG"):
            raise
        typer.echo(f"error: internal error {type(e).__name__}: {e}. Stored work is kept; rerun with "
                   "RATIONALES_DEBUG=1 for the traceback and report it.", err=True)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
