"""Scoring of untrusted answer text in a separate, locked-down worker process.

Model text must never reach ``eval``/``exec``/``compile`` or sympy's ``parse_expr``/``sympify``
in the product's process, but two third-party scorers do exactly that: reasoning-gym's
``score_answer`` (``eval(answer)`` in ``spiral_matrix``, ``parse_expr`` in ``countdown``,
``puzzle24``, ``polynomial_multiplication``...) and math-verify, whose plain-expression
extractor calls ``parse_expr`` on the text. Both therefore run only here, in a worker started
with ``python -s -P`` and a minimal environment, that imports nothing of ours and locks itself down before reading an answer
(``_sandbox_worker.py``: resource limits, a temp-dir cwd, an audit hook that refuses process
spawning, writes outside its temp dir, and the execution of dynamically compiled code naming
dunders or interpreter-reaching builtins). The parent adds a wall-clock limit per answer and
kills the worker on overrun.

Workers are persistent (one per concurrent caller, ``RATIONALES_SANDBOX_WORKERS`` at most) and
take batches, so scoring stays cheap; a worker that died or timed out is replaced, and only the
answer it was scoring gets an error outcome (``JobResult.error``). Nothing here raises for a bad
answer: every job gets a result.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RationalesError

WORKER = Path(__file__).with_name("_sandbox_worker.py")


class SandboxError(RationalesError):
    """The scoring worker could not be started."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for each answer scored in the worker (time in seconds, memory in MiB)."""

    cpu_s: float = 5.0
    wall_s: float = 10.0
    prep_wall_s: float = 300.0  # building a reasoning-gym dataset (trusted work) per job
    mem_mb: int = 3072
    math_timeout_s: int = 3
    start_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "prep_wall_s", "start_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= 86400):
                raise ValueError(f"SandboxLimits.{name} must be a finite number of seconds in (0, 86400], got {v!r}")
        if not (isinstance(self.mem_mb, int) and 256 <= self.mem_mb <= 1 << 20):
            raise ValueError(f"SandboxLimits.mem_mb must be an integer in [256, 1048576], got {self.mem_mb!r}")
        if not (isinstance(self.math_timeout_s, int) and 1 <= self.math_timeout_s <= 3600):
            raise ValueError(f"SandboxLimits.math_timeout_s must be an integer in [1, 3600], got {self.math_timeout_s!r}")


@dataclass
class JobResult:
    """What the worker said about one job: ``value`` or an ``error`` (never both)."""

    value: Any = None
    error: str | None = None
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_SIGNALS = {signal.SIGXCPU: "it ran past its CPU time limit", signal.SIGKILL: "it was killed (memory or time limit)",
            signal.SIGSEGV: "it crashed (segmentation fault)", signal.SIGABRT: "it aborted"}


class _Worker:
    def __init__(self, limits: SandboxLimits):
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self.buf = b""
        self.tmp: str | None = None

    # ---------------------------------------------------------------- process
    def start(self) -> None:
        env = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONNOUSERSITE": "1", "TMPDIR": tempfile.gettempdir(), "HOME": tempfile.gettempdir()}
        args: dict[str, Any] = {"cpu_s": self.limits.cpu_s, "mem_mb": self.limits.mem_mb,
                "math_timeout_s": self.limits.math_timeout_s}
        debug = bool(os.environ.get("RATIONALES_DEBUG"))
        args["debug"] = debug
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-P", str(WORKER), json.dumps(args)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=None if debug else subprocess.DEVNULL, env=env,
                cwd=tempfile.gettempdir(), close_fds=True, start_new_session=True)
        except OSError as e:
            raise SandboxError(f"Cannot start the answer-scoring worker ({e}); check that {sys.executable} "
                               "can run.") from e
        self.buf = b""
        msg = self._read(time.monotonic() + self.limits.start_timeout_s)
        if msg is None or not msg.get("ready"):
            self.kill()
            raise SandboxError("The answer-scoring worker did not start (is the environment short of memory "
                               "or processes?); rerun with RATIONALES_DEBUG=1 to see its error output.")
        self.tmp = msg.get("tmp")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> str:
        """Stop the worker; returns why it ended (for error messages)."""
        why = "it stopped"
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    self.proc.kill()
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = None
            if rc is not None and rc < 0:
                why = _SIGNALS.get(-rc, f"it was stopped by signal {-rc}")
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            self.proc = None
        if self.tmp and os.path.isdir(self.tmp) and os.path.basename(self.tmp).startswith("rationales-sandbox-"):
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        return why

    def _read(self, deadline: float) -> dict | None:
        """The next message; None on timeout; ``{"eof": True}`` when the worker ended."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return {"eof": True}
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError:
            return {"fatal": "unreadable reply"}
        return msg if isinstance(msg, dict) else {"fatal": "unreadable reply"}

    # ---------------------------------------------------------------- jobs
    def run(self, jobs: list[dict]) -> tuple[dict[int, JobResult], int | None]:
        """Run jobs in order. Returns the results it got and, if the worker failed, the index of
        the job it failed on (that job has an error result; later ones have none: rerun them)."""
        if not self.alive():
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        out: dict[int, JobResult] = {}
        try:
            self.proc.stdin.write((json.dumps({"jobs": jobs}) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            why = self.kill()
            out[0] = JobResult(error=f"answer-scoring worker failed: {why}")
            return out, 0
        current, started = 0, False
        deadline = time.monotonic() + self.limits.prep_wall_s
        while True:
            msg = self._read(deadline)
            if msg is None or "fatal" in msg or "eof" in msg:
                timed_out = msg is None
                why = self.kill()
                if timed_out:
                    limit = self.limits.wall_s if started else self.limits.prep_wall_s
                    why = f"it took longer than {limit:g} s"
                if current < len(jobs):
                    out[current] = JobResult(error=f"scoring stopped: {why}")
                    return out, current
                return out, None
            if msg.get("done"):
                return out, None
            i = msg.get("i")
            if not isinstance(i, int) or not 0 <= i < len(jobs):
                continue
            if msg.get("phase") == "start":
                current, started = i, True
                deadline = time.monotonic() + self.limits.wall_s
                continue
            refused = [str(x) for x in msg.get("refused") or []]
            if "err" in msg:
                out[i] = JobResult(error=str(msg["err"]), refused=refused)
            else:
                out[i] = JobResult(value=msg.get("ok"), refused=refused,
                                   notes=[str(x) for x in msg.get("notes") or []])
            current, started = i + 1, False
            deadline = time.monotonic() + self.limits.prep_wall_s


class Sandbox:
    """A pool of scoring workers. ``run(jobs)`` returns one ``JobResult`` per job, in order."""

    def __init__(self, limits: SandboxLimits | None = None, max_workers: int | None = None):
        self.limits = limits or SandboxLimits()
        if max_workers is None:
            try:
                max_workers = int(os.environ.get("RATIONALES_SANDBOX_WORKERS", "2"))
            except ValueError:
                max_workers = 2
        self.max_workers = max(1, min(64, max_workers))
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._cond = threading.Condition()
        self.restarts = 0

    def _take(self) -> _Worker:
        with self._cond:
            while not self._idle and len(self._all) >= self.max_workers:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            w = _Worker(self.limits)
            self._all.append(w)
            return w

    def _give(self, w: _Worker) -> None:
        with self._cond:
            self._idle.append(w)
            self._cond.notify()

    def run(self, jobs: list[dict]) -> list[JobResult]:
        results: list[JobResult | None] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        w = self._take()
        try:
            while todo:
                try:
                    got, failed = w.run([jobs[i] for i in todo])
                except SandboxError as e:
                    for i in todo:
                        results[i] = JobResult(error=str(e))
                    break
                for k, res in got.items():
                    results[todo[k]] = res
                if failed is None:
                    missing = [i for i in todo if results[i] is None]
                    for i in missing:  # the worker ended a batch early without saying why
                        results[i] = JobResult(error="scoring stopped: no reply from the worker")
                    break
                self.restarts += 1
                todo = todo[failed + 1:]
        finally:
            self._give(w)
        return [r if r is not None else JobResult(error="not scored") for r in results]

    def close(self) -> None:
        with self._cond:
            for w in self._all:
                w.kill()
            self._all.clear()
            self._idle.clear()


_POOL: Sandbox | None = None
_POOL_PID: int | None = None
_POOL_LOCK = threading.Lock()


def get_sandbox() -> Sandbox:
    """The process's shared pool (a new one after ``fork``: pipes are not shared)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL, _POOL_PID = Sandbox(), os.getpid()
        return _POOL


def run_jobs(jobs: list[dict]) -> list[JobResult]:
    """Score jobs in the shared pool: ``{"kind": "rg", "rg": {name, size, seed, index, config},
    "answer": str, "entry": stored entry}`` -> reasoning-gym's score (0..1); ``{"kind": "math",
    "gold": str, "answer": str}`` -> math-verify's True/False/None; ``{"kind": "rg_load", "rg":
    {name, size, seed, config}}`` -> the dataset's entries as JSON."""
    if not jobs:
        return []
    return get_sandbox().run(jobs)


def _close_pool() -> None:
    if _POOL is not None and _POOL_PID == os.getpid():
        _POOL.close()


atexit.register(_close_pool)
