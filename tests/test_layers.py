"""The layer rule (rationales/__init__.py) holds: ``lint-imports`` keeps the contract in
pyproject.toml's [tool.importlinter], imports inside functions included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rationales"

pytest.importorskip("importlinter")


def lint_imports(pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run([*cmd, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_layers_contract_is_kept():
    res = lint_imports()
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "BROKEN" not in res.stdout and "KEPT" in res.stdout


@pytest.mark.parametrize("module, line", [
    ("verify/consensus.py", "    from ..cli import main\n"),           # nothing imports cli/
    ("score/utility.py", "    from ..report.html import esc\n"),        # a lower stage imports a higher one
    ("generate.py", "    from .select.vote import majority_vote\n"),
    ("scale/claims.py", "    from ..generate import generate\n"),  # scale sits below generate
])
def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path, module, line):
    copy = tmp_path / "rationales"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n\ndef _upward():\n" + line + "    return None\n")
    res = lint_imports(pythonpath=tmp_path)
    assert res.returncode != 0 and "BROKEN" in res.stdout, res.stdout[-3000:]
