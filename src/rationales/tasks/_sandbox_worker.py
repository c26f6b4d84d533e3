"""The locked-down worker that scores untrusted answer text (see ``rationales.tasks.sandbox``).

Run as ``python -s -P _sandbox_worker.py LIMITS_JSON`` with a minimal environment
(``PYTHONHASHSEED=0``: some reasoning-gym generators depend on the hash seed, so datasets are
generated here too, identically in every run) by the parent; it imports nothing from
``rationales`` (so it starts fast and trusts nothing the parent's path would add). What it
does to itself before reading any answer:

* ``resource.setrlimit``: address space, no core files, file size, open files, no new
  processes; the CPU limit is re-armed before each answer (soft = used + budget; SIGXCPU
  kills the worker, the parent records that answer as an error and starts a new worker);
* cwd is a fresh temporary directory; the environment is the parent's minimal one;
* an audit hook (PEP 578) that refuses, always: spawning processes (``os.system``,
  ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn``, ``os.fork``), sockets, ``ctypes``,
  opening files for writing and deleting/renaming/creating files outside the temp directory;
  and while an answer is being scored ("strict"): executing dynamically compiled code
  (``eval``/``exec`` of a string, which is what reasoning-gym's scorers and sympy's
  ``parse_expr`` do) that names anything private or dunder (``__import__``,
  ``__class__``, ``__subclasses__``...), any builtin that reaches the interpreter
  (``eval``, ``exec``, ``open``, ``getattr``, ``globals``...) or the modules ``os``/``sys``,
  or that defines a function (``lambda``); and frame / code introspection events.
  A refused event raises ``PermissionError`` inside the scorer, which then scores the answer
  as wrong (reasoning-gym's scorers catch exceptions); the refusal is reported back.

Audit hooks are not a sandbox on their own (a hook cannot stop native code), which is why the
process boundary and the resource limits come first: the hook keeps model text from running
at all, and the limits bound what a scorer does with a legitimate-looking answer (``9**9**9**9``).

Protocol (JSON lines): parent -> worker ``{"jobs": [...]}``; worker -> parent, per job,
``{"i": n, "phase": "start"}`` when the untrusted part begins, then ``{"i": n, "ok": value,
"refused": [...]}`` or ``{"i": n, "err": "message"}``, and ``{"done": true}`` after the batch.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import types

LIMITS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
CPU_S = float(LIMITS.get("cpu_s", 5))
MEM_BYTES = int(LIMITS.get("mem_mb", 3072)) * 2**20
PREP_CPU_S = float(LIMITS.get("prep_cpu_s", 300))

TMP = os.path.realpath(tempfile.mkdtemp(prefix="rationales-sandbox-"))
os.chdir(TMP)
for _var in ("HOME", "TMPDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
    os.environ[_var] = TMP
tempfile.tempdir = TMP

# The protocol gets its own descriptor; whatever a library prints goes to stderr instead.
_proto_fd = os.dup(1)
os.dup2(2, 1)
PROTO = os.fdopen(_proto_fd, "w", encoding="utf-8", buffering=1)
sys.stdout = sys.stderr

STRICT = False
REFUSED: list[str] = []
NOTES: list[str] = []

_SPAWN = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "subprocess.Popen", "pty.spawn", "os.startfile", "webbrowser.open",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.__new__", "urllib.Request", "http.client.connect",
    "ftplib.connect", "smtplib.connect", "telnetlib.Telnet.open", "imaplib.open", "poplib.connect",
    "ctypes.call_function", "ctypes.PyObj_FromPtr", "ctypes.string_at", "ctypes.wstring_at", "sys.setprofile", "sys.settrace", "os.chroot", "os.setuid", "os.setgid",
    "sys.remote_exec",
})
_PATH_EVENTS = {  # event -> positions of path arguments that must lie inside TMP
    "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.chmod": (0,),
    "os.chown": (0,), "os.truncate": (0,), "os.link": (0, 1), "os.symlink": (0, 1), "os.utime": (0,),
    "os.chflags": (0,), "os.lchflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,), "shutil.copytree": (1,),
}
_STRICT_ONLY = frozenset({
    "function.__new__", "code.__new__",
    "gc.get_referrers", "gc.get_referents", "gc.get_objects", "builtins.input", "pickle.find_class", "sys.addaudithook", "cpython.run_command",
    "cpython.run_file", "cpython.run_module", "cpython.run_startup", "resource.setrlimit",
    "resource.prlimit",
})
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_globals", "f_builtins"})
_BAD_NAMES = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals",
    "vars", "dir", "input", "breakpoint", "exit", "quit", "help", "memoryview", "type", "object",
    "super", "classmethod", "staticmethod", "property", "os", "sys", "subprocess", "builtins",
    "importlib", "shutil", "socket", "ctypes", "pickle", "marshal", "io", "pathlib", "system",
    "popen", "spawn", "fork", "remove", "unlink", "rmdir", "mro", "write", "write_text",
    "write_bytes", "chmod", "kill", "load_module", "exec_module", "f_globals", "f_locals", "f_back",
    "f_builtins", "f_code", "gi_frame", "gi_code", "cr_frame", "ag_frame", "tb_frame", "co_code",
    "func_globals", "func_code", "getframe", "sympify", "parse_expr", "lambdify", "preview", "plot",
    "plot3d", "test", "doctest", "init_session", "init_printing", "license", "credits", "copyright",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside_tmp(path: object) -> bool:
    if isinstance(path, int):
        return False
    try:
        p = os.fsdecode(path)  # type: ignore[arg-type]
        real = os.path.realpath(os.path.join(TMP, p))
        return real == TMP or real.startswith(TMP + os.sep)
    except Exception:
        return False


def _bad_code(code: types.CodeType) -> str | None:
    for name in code.co_names:
        if name.startswith("_") or name in _BAD_NAMES:
            return name
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            return "a function definition"
    return None


def _refuse(what: str) -> None:
    REFUSED.append(what if STRICT else f"(setup) {what}")
    if LIMITS.get("debug"):
        import traceback

        print(f"sandbox refused: {what}", file=sys.stderr)
        traceback.print_stack(file=sys.stderr)
    raise PermissionError(f"refused in the scoring sandbox: {what}")


def _hook(event: str, args: tuple) -> None:
    if event == "open" and args:
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not _inside_tmp(path):
            _refuse(f"open {path!r} for writing")
        return
    if event == "exec":
        if STRICT and args and isinstance(args[0], types.CodeType) and args[0].co_filename.startswith("<"):
            bad = _bad_code(args[0])
            if bad:
                _refuse(f"exec of code that uses {bad}")
        return
    if event in _SPAWN or event.startswith(("os.exec", "os.spawn", "socket.")) or (
            STRICT and event.startswith(("ctypes.", "mmap."))):
        _refuse(event)
    if event in _PATH_EVENTS:
        for pos in _PATH_EVENTS[event]:
            if pos < len(args) and not _inside_tmp(args[pos]):
                _refuse(f"{event} {args[pos]!r}")
        return
    if STRICT:
        if event in _STRICT_ONLY:
            _refuse(event)
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _FRAME_ATTRS:
            _refuse(f"access to {args[1]}")


def _cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _arm_cpu(budget: float) -> None:
    soft = int(_cpu_used() + budget) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _lock_down() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
    cur_as = resource.getrlimit(resource.RLIMIT_AS)[1]
    if cur_as == resource.RLIM_INFINITY or cur_as > MEM_BYTES:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_BYTES, MEM_BYTES))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):
        pass
    # the whole worker gets a CPU ceiling; each answer gets its own share of it, re-armed per job
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    total = int(_cpu_used() + 3600)
    resource.setrlimit(resource.RLIMIT_CPU, (total, total if hard == resource.RLIM_INFINITY else min(hard, total)))


# ------------------------------------------------------------------ the scorers (trusted code)
_DATASETS: dict[tuple, object] = {}
_WARM: set[str] = set()


def _dataset(rg: dict) -> object:
    key = (rg["name"], int(rg["size"]), int(rg["seed"]), json.dumps(rg.get("config") or {}, sort_keys=True))
    if key not in _DATASETS:
        import reasoning_gym

        if len(_DATASETS) >= 64:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = reasoning_gym.create_dataset(rg["name"], size=key[1], seed=key[2],
                                                      **(rg.get("config") or {}))
    return _DATASETS[key]


_ENTRIES: dict[tuple, dict] = {}


def _entry(rg: dict, index: int) -> dict:
    """Entry ``index`` of a dataset (reasoning-gym generates entries on access, some slowly:
    they are kept)."""
    key = (rg["name"], int(rg["size"]), int(rg["seed"]), json.dumps(rg.get("config") or {}, sort_keys=True), index)
    if key not in _ENTRIES:
        if len(_ENTRIES) >= 20000:
            _ENTRIES.pop(next(iter(_ENTRIES)))
        _ENTRIES[key] = _dataset(rg)[index]  # type: ignore[index]
    return _ENTRIES[key]


def _load_rg(job: dict) -> list:
    """Generate a reasoning-gym dataset here (hash seed 0, so the same everywhere); JSON entries."""
    ds = _dataset(job["rg"])
    return [json.loads(json.dumps(_entry(job["rg"], i), default=str)) for i in range(len(ds))]  # type: ignore[arg-type]


def _score_rg(job: dict) -> float:
    ds = _dataset(job["rg"])
    entry = _entry(job["rg"], int(job["rg"]["index"]))
    stored = job.get("entry")
    if isinstance(stored, dict) and stored.get("question") != entry.get("question"):
        # generated elsewhere with another hash seed (some generators depend on it): the stored
        # entry is the problem the model saw
        entry = stored
    name = job["rg"]["name"]
    if name not in _WARM:  # first use of a scorer: let it import/compile what it needs, with trusted text
        _WARM.add(name)
        try:
            ds.score_answer(entry.get("answer") or "", entry)  # type: ignore[attr-defined]
        except Exception:
            pass

    def score() -> float:
        try:
            return float(ds.score_answer(job["answer"], entry) or 0.0)  # type: ignore[attr-defined]
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # a scorer that chokes on odd model text scores it as wrong
            NOTES.append(f"scorer raised {type(e).__name__}: {str(e)[:200]}")
            return 0.0

    return _strict(score)


def _math_parse(s: str) -> list:
    from math_verify import parse

    return parse(s if "$" in s or "\\boxed" in s else f"${s}$", parsing_timeout=LIMITS.get("math_timeout_s", 3))


def _math(job: dict) -> bool | None:
    from math_verify import verify

    if "math" not in _WARM:
        _WARM.add("math")
        verify(_math_parse("1"), _math_parse("\\frac{2}{2}"))

    def run() -> bool | None:
        g, a = _math_parse(job["gold"]), _math_parse(job["answer"])
        if not g or not a:
            return None
        return bool(verify(g, a, timeout_seconds=LIMITS.get("math_timeout_s", 3)))

    return _strict(run)


def _strict(fn):  # type: ignore[no-untyped-def]
    global STRICT
    PROTO.write(json.dumps({"i": _CURRENT[0], "phase": "start"}) + "\n")
    _arm_cpu(CPU_S)
    STRICT = True
    try:
        return fn()
    finally:
        STRICT = False
        _arm_cpu(PREP_CPU_S)


_CURRENT = [0]


def main() -> None:
    import faulthandler

    faulthandler.disable()
    preload = LIMITS.get("preload", [])
    if "math" in preload:
        import math_verify  # noqa: F401
    if "reasoning_gym" in preload:
        import reasoning_gym  # noqa: F401
    _lock_down()
    sys.addaudithook(_hook)
    PROTO.write(json.dumps({"ready": True, "pid": os.getpid(), "tmp": TMP}) + "\n")
    for line in sys.stdin:
        try:
            jobs = json.loads(line)["jobs"]
        except Exception as e:  # the parent never sends this; answer rather than die
            PROTO.write(json.dumps({"fatal": f"bad request ({e})"}) + "\n")
            continue
        for i, job in enumerate(jobs):
            _CURRENT[0] = i
            del REFUSED[:], NOTES[:]
            try:
                if job.get("kind") == "rg":
                    value: object = _score_rg(job)
                elif job.get("kind") == "rg_load":
                    value = _load_rg(job)
                elif job.get("kind") == "math":
                    value = _math(job)
                elif job.get("kind") == "ping":
                    value = True
                else:
                    raise ValueError(f"unknown job kind {job.get('kind')!r}")
                out = {"i": i, "ok": value, "refused": list(REFUSED), "notes": list(NOTES)}
            except MemoryError:
                out = {"i": i, "err": "out of memory (sandbox limit)", "refused": list(REFUSED)}
            except RecursionError:
                out = {"i": i, "err": "recursion too deep", "refused": list(REFUSED)}
            except Exception as e:
                out = {"i": i, "err": f"{type(e).__name__}: {str(e)[:300]}", "refused": list(REFUSED)}
            try:
                PROTO.write(json.dumps(out) + "\n")
            except (TypeError, ValueError):
                PROTO.write(json.dumps({"i": i, "err": "unserialisable result"}) + "\n")
        PROTO.write(json.dumps({"done": True}) + "\n")


if __name__ == "__main__":
    main()
