"""The command line is assembled from COMMAND_MODULES: every module exists, and a missing one
fails loudly instead of silently dropping its commands."""

from __future__ import annotations

import pytest

import rationales.cli as cli


def test_every_command_module_is_registered():
    app = cli.build_app()
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"run", "compare", "verify", "processbench", "methods", "patch", "export", "runs", "train"} <= names


def test_a_missing_command_module_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "no_such_module"])
    with pytest.raises(cli.CommandModuleError, match="rationales.cli.no_such_module, which does not exist"):
        cli.build_app()
    assert cli.main(["--help"]) == 3
    assert "no_such_module" in capsys.readouterr().err
