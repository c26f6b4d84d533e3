"""``python -m rationales.backends.smoke``: does llama.cpp decode on this machine?"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from rationales.backends import smoke


def test_a_child_killed_by_sigill_is_named_with_what_to_do():
    proc = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"])
    assert proc.returncode == -signal.SIGILL
    line = smoke.reason(proc.returncode, "", "smollm2-135m")
    assert line.startswith("llama.cpp was killed by SIGILL while decoding with smollm2-135m")
    assert "rebuild llama-cpp-python" in line and "\n" not in line


def test_other_exits():
    assert smoke.reason(0, "anything", "m") is None
    assert smoke.reason(1, "log line\nRuntimeError: boom\n", "m") == "decoding with m failed: RuntimeError: boom"
    assert smoke.reason(-signal.SIGSEGV, "", "m") == "llama.cpp was killed by SIGSEGV while decoding with m"


@pytest.mark.model
def test_llamacpp_decodes_here(capsys):
    assert smoke.main(["smollm2-135m"]) == 0
    assert capsys.readouterr().out.strip() == "llama.cpp runs on this machine"
