"""Fuzz the CLI with hostile inputs on the fake backend (in-process ``rationales.cli.main``).

Every command gets bad files (non-object JSONL lines, deep nesting, 5,000-digit integers,
non-UTF-8 bytes, lone surrogates, BOMs, open CSV quotes), bad names and paths (empty, Rich
markup ``[/]``, NUL bytes, directories, typos), bad numbers (nan, inf, negative, huge), bad
stores (garbage rows, a damaged page, a missing file), bad templates and model outputs that are
code, 400-digit numbers or power towers. Each input is classified:

* ``ok``        exit 0;
* ``clean``     exit 2 with a one-line ``error: ...`` message, or a usage error from the option
                parser (exit 2, "Usage:");
* ``internal``  the catch-all "internal error" (exit 3), or exit 2 with a message over several
                lines that is not a usage error;
* ``crash``     an exception escaped ``main``, a traceback was printed, or another exit code.

The goal is internal = crash = 0. ``tests/test_fuzz_cli.py`` runs the quick subset in CI.

Usage: python benchmarks/fuzz.py [--quick] [--seed N] [--random N]
Last line: ``inputs tried N / clean errors C / internal errors I / crashes X`` (plus ok count).
Measured (2 shared cores, fake backend): see the README's robustness section.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GOOD_SCRIPT = {"*": ["Step 1: 2 + 3 = 5\nStep 2: 5 * 2 = 10\nThe answer is 10."]}

BAD_JSONL_LINES = {
    "number": "42", "array": "[1, 2]", "null": "null", "string": '"question"', "bool": "true",
    "deep": "[" * 100000 + "]" * 100000, "deep_in_row": '{"question": ' + "[" * 500 + "]" * 500 + ', "answer": 1}',
    "huge_int": '{"question": "q", "answer": ' + "9" * 5000 + "}",
    "huge_float": '{"question": "q", "answer": 1e999999}', "nan": '{"question": "q", "answer": NaN}',
    "surrogate": '{"question": "a\\ud800b", "answer": "\\udfff"}', "bad_json": '{"question": "q",',
    "nested_q": '{"question": {"a": [1, {"b": null}]}, "answer": [1, 2]}', "empty_obj": "{}",
    "null_q": '{"question": null, "answer": 1}', "bom": '\ufeff{"question": "q", "answer": 1}',
    "nul": '{"question": "a\\u0000b", "answer": "1"}', "markup": '{"question": "[/INST] [bold]x[/] [/]", "answer": "[/]"}',
}

MODEL_OUTPUTS = [
    "The answer is __import__('os').system('touch {pwn}')",
    "\\boxed{9^{9^{9^{9}}}}",
    "The answer is " + "9" * 400,
    "The answer is " + "9" * 5000,
    "[/INST] [/] [bold red]The answer is [/bold red] 5",
    "The answer is \ud800",
    "The answer is " + "(" * 5000,
    "Step 1: 2⁵ = 32\nStep 2: (3+4)² = 49\n① ② ③\nThe answer is ٣",
    "",
    "\x00\x01\x02 The answer is 5",
    "The answer is 1e999999",
    "#### " + "1/0",
]


@dataclass
class Case:
    name: str
    argv: list[str]
    must_fail: bool = False  # a bad input that must end in exit 2 (not silently accepted)
    setup: object = None  # callable(tmp) run before, for inputs that need files


@dataclass
class Tally:
    tried: int = 0
    ok: int = 0
    clean: int = 0
    internal: int = 0
    crash: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"inputs tried {self.tried} / clean errors {self.clean} / internal errors {self.internal} / "
                f"crashes {self.crash} (ok {self.ok})")


def _w(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return path


def build_inputs(tmp: Path) -> dict[str, Path]:
    """Files the cases refer to (one set, shared by all cases)."""
    f: dict[str, Path] = {}
    f["script"] = _w(tmp / "script.json", json.dumps(GOOD_SCRIPT))
    good_rows = '{"question": "What is 2 + 3 times 2?", "answer": "10"}\n'
    for name, line in BAD_JSONL_LINES.items():
        f[f"jsonl_{name}"] = _w(tmp / f"task_{name}.jsonl", good_rows + line + "\n")
    f["latin1"] = _w(tmp / "latin1.jsonl", '{"question": "caf\xe9?", "answer": "1"}\n'.encode("latin-1"))
    f["binary"] = _w(tmp / "binary.jsonl", bytes(range(256)) * 4)
    f["empty"] = _w(tmp / "empty.jsonl", "")
    f["json_obj"] = _w(tmp / "obj.json", '{"question": "q"}')
    f["json_list_bad"] = _w(tmp / "listbad.json", '[{"question": "q", "answer": 1}, 5]')
    f["csv_quote"] = _w(tmp / "quote.csv", 'question,answer\n"what is 2+2,4\nwhat is 3+3,6\n')
    f["csv_bom"] = _w(tmp / "bom.csv", "\ufeffquestion,answer\n2+2?,4\n")
    f["csv_short"] = _w(tmp / "short.csv", "question,answer\nonly\n")
    f["csv_nocol"] = _w(tmp / "nocol.csv", "prompt,gold\nx,1\n")
    f["tsv"] = _w(tmp / "t.tsv", "question\tanswer\n2+2?\t4\n")
    f["parquet_junk"] = _w(tmp / "junk.parquet", b"PAR1" + b"\x00" * 100)
    f["markup_dir"] = tmp / "[bold]dir[" / "]"  # a path whose text holds the markup "[/]"
    f["markup_dir"].mkdir(parents=True, exist_ok=True)
    f["markup_task"] = _w(tmp / "[bold]dir[" / "]t[" / "].jsonl", good_rows)
    f["tmpl_runtime"] = _w(tmp / "runtime.j2", "<|user|>\n{{ 1 / 0 }} {{ question }}")
    f["tmpl_latin1"] = _w(tmp / "latin1.j2", "<|user|>\nCaf\xe9 {{ question }}".encode("latin-1"))
    f["tmpl_syntax"] = _w(tmp / "syntax.j2", "{% for x in %}")
    f["tmpl_escape"] = _w(tmp / "escape.j2", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    f["tmpl_missing_var"] = _w(tmp / "novar.j2", "<|user|>\n{{ nothing_here }}")
    for k, out in enumerate(MODEL_OUTPUTS):
        f[f"out{k}"] = _w(tmp / f"out{k}.json", json.dumps({"*": [out.replace("{pwn}", str(tmp / "pwned"))]},
                                                           ensure_ascii=True))
    for name, data in {"script_list_num": "[1, 2]", "script_null": "null", "script_deep": "[" * 100000,
                       "script_latin1": b'{"*": ["caf\xe9"]}', "script_empty": "", "script_obj_num": '{"*": 5}'}.items():
        f[name] = _w(tmp / f"{name}.json", data)
    fb_ok = '{"rationale_id": "nope", "feedback": "step 2 is wrong"}\n'
    for name, line in BAD_JSONL_LINES.items():
        f[f"fb_{name}"] = _w(tmp / f"fb_{name}.jsonl", fb_ok + line + "\n")
    f["fb_latin1"] = _w(tmp / "fb_latin1.jsonl", b'{"rationale_id": "caf\xe9", "feedback": "x"}\n')
    f["pb_ok"] = _w(tmp / "pb.jsonl", '{"problem": "2+2?", "steps": ["2 + 2 = 4", "The answer is 4."], "label": -1}\n')
    for name, line in BAD_JSONL_LINES.items():
        f[f"pb_{name}"] = _w(tmp / f"pb_{name}.jsonl", line + "\n")
    for name, line in {"pb_label_str": '{"problem": "p", "steps": ["a"], "label": "zero"}',
                       "pb_label_big": '{"problem": "p", "steps": ["a"], "label": ' + "9" * 50 + "}",
                       "pb_steps_str": '{"problem": "p", "steps": "a", "label": -1}',
                       "pb_label_bool": '{"problem": "p", "steps": ["a"], "label": true}'}.items():
        f[name] = _w(tmp / f"{name}.jsonl", line + "\n")
    f["dir"] = tmp / "adir"
    f["dir"].mkdir(exist_ok=True)
    f["not_sqlite"] = _w(tmp / "junk.sqlite", b"this is not sqlite" * 200)
    return f


def make_store(tmp: Path, name: str, script: Path, damage: str | None = None) -> Path:
    """A real store written by `rationales run` on the fake backend, optionally damaged."""
    from rationales.cli import main

    path = tmp / f"{name}.sqlite"
    if path.exists():
        return path
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["run", "demo", "--backend", "fake", "--model", str(script), "-n", "2", "-k", "3",
                   "--store", str(path), "--out", str(tmp / f"{name}-out"), "--json"])
    assert rc == 0, f"could not build the {name} store"
    if damage == "rows":
        c = sqlite3.connect(path)
        ids = [r[0] for r in c.execute("SELECT id FROM rationales ORDER BY rowid")]
        c.execute("UPDATE rationales SET json='{garbage' WHERE id=?", (ids[0],))
        c.execute("UPDATE rationales SET json=? WHERE id=?", (json.dumps({"id": ids[1], "steps": 5}), ids[1]))
        c.execute("UPDATE rationales SET json='null' WHERE id=?", (ids[2],))
        c.execute("UPDATE problems SET json='[1]' WHERE rowid=1")
        c.execute("UPDATE runs SET config='{oops', summary='[['")
        c.execute("INSERT INTO blobs VALUES ('k', 'feedback', 'not json', 0)")
        c.commit()
        c.close()
    elif damage == "page":
        c = sqlite3.connect(path)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name='rationales'").fetchone()[0]
        c.close()
        with open(path, "r+b") as fh:
            fh.seek((root - 1) * page)
            fh.write(b"\xde\xad\xbe\xef" * (page // 4))
    return path


def cases(tmp: Path, quick: bool = False) -> list[Case]:
    f = build_inputs(tmp)
    good = make_store(tmp, "good", f["script"])
    rows = make_store(tmp, "rows", f["script"], "rows")
    page = make_store(tmp, "page", f["script"], "page")
    fake = ["--backend", "fake", "--model", str(f["script"])]

    def run(task: str, *extra: str, store: Path | None = None) -> list[str]:
        return ["run", task, *fake, "-n", "2", "-k", "2", "--store", str(store or tmp / "run.sqlite"),
                "--out", str(tmp / "out"), *extra]

    out: list[Case] = []
    # --- task inputs
    for key in [k for k in f if k.startswith("jsonl_")] + ["latin1", "binary", "empty", "json_obj", "json_list_bad",
                                                           "csv_quote", "csv_short", "csv_nocol", "parquet_junk"]:
        must = key not in ("jsonl_bom", "jsonl_surrogate", "jsonl_nested_q", "jsonl_nul", "jsonl_markup", "jsonl_nan",
                           "jsonl_huge_float", "csv_short")
        out.append(Case(f"run task {key}", run(str(f[key])), must_fail=must))
    for key in ("csv_bom", "tsv", "markup_task"):
        out.append(Case(f"run task {key}", run(str(f[key]))))
    for task in ("", " ", "[/]", "[bold]x[/bold]", "reasoning_gym:", "reasoning_gym:nope", "rg:[/]", "hf:",
                 "hf:/nonexistent", str(f["dir"]), str(f["markup_dir"]), "a\x00b", "x" * 5000 + ".jsonl",
                 "missing.jsonl", "missing.csv", "demo\n", "../../../../etc/passwd", "/dev/null",
                 "reasoning_gym:composite"):
        out.append(Case(f"run task {task[:30]!r}", run(task), must_fail=True))
    out.append(Case("run --answer-type bogus", run(str(f["jsonl_null"]).replace("null", "bom"), "--answer-type",
                                                    "bogus"), must_fail=True))
    # --- numbers
    for opt, values in {"--temperature": ["nan", "inf", "-inf", "-1", "1e308", "abc"],
                        "--top-p": ["nan", "2", "-0.5", "inf"], "-n": ["0", "-1", "abc", "1000000000"],
                        "-k": ["-1", "abc"], "--max-tokens": ["0", "-5", "99999999999"],
                        "--size": ["0", "-3", "1000000000"], "--seed": ["1e5", "x"]}.items():
        for v in values:
            args = run("reasoning_gym:basic_arithmetic" if opt == "--size" else "demo", opt, v)
            out.append(Case(f"run {opt} {v}", args, must_fail=True))
    # --- templates and methods
    for key in ("tmpl_runtime", "tmpl_latin1", "tmpl_syntax", "tmpl_escape", "tmpl_missing_var"):
        out.append(Case(f"run --template {key}", run("demo", "--template", str(f[key])), must_fail=True))
    for t in ("nope", "", "[/]", str(tmp / "missing.j2"), str(f["dir"])):
        out.append(Case(f"run --template {t[:20]!r}", run("demo", "--template", t), must_fail=True))
    for m in ("nope", " ", "[/]"):
        out.append(Case(f"run --method {m!r}", run("demo", "--method", m), must_fail=True))
    for o in ("delay=nan", "delay=-1", "model=x", "nokey", "=1", "answer_max_tokens=abc"):
        out.append(Case(f"run -o {o}", run("demo", "-o", o), must_fail=True))
    for o in ("answer_max_tokens=abc", "x", "=", "feedback_file=/nonexistent.jsonl"):
        out.append(Case(f"run --method patch -O {o}", run("demo", "--method", "patch", "-O", o), must_fail=True))
    # --- fake scripts (model outputs that are code, huge numbers, towers, markup, surrogates)
    for k in range(len(MODEL_OUTPUTS)):
        script = str(f[f"out{k}"])
        out.append(Case(f"run model output {k}", ["run", "demo", "--backend", "fake", "--model", script, "-n", "2",
                                                   "-k", "2", "--store", str(tmp / f"out{k}.sqlite"), "--out",
                                                   str(tmp / "out")]))
        out.append(Case(f"rerun model output {k}", ["run", "demo", "--backend", "fake", "--model", script, "-n", "2",
                                                     "-k", "2", "--store", str(tmp / f"out{k}.sqlite"), "--out",
                                                     str(tmp / "out")]))
        out.append(Case(f"verify model output {k}", ["verify", "--store", str(tmp / f"out{k}.sqlite"), "--checkers",
                                                     "tool", "--out", str(tmp / "vout")]))
    for key in ("script_list_num", "script_null", "script_deep", "script_latin1", "script_empty", "script_obj_num"):
        out.append(Case(f"run fake script {key}", ["run", "demo", "--backend", "fake", "--model", str(f[key]),
                                                    "--store", str(tmp / "s.sqlite")], must_fail=True))
    # --- stores
    bad_stores = {"missing": tmp / "typo.sqlite", "dir": f["dir"], "junk": f["not_sqlite"], "page": page,
                  "markup": tmp / "[/]x.sqlite", "nul": "a\x00b.sqlite"}
    for name, st in bad_stores.items():
        for cmd in (["export", str(tmp / "e.jsonl")], ["runs"], ["verify", "--checkers", "tool"]):
            # (runs reads only the runs table, which the damaged page does not touch)
            out.append(Case(f"{cmd[0]} store {name}", [*cmd, "--store", str(st)],
                            must_fail=not (name == "page" and cmd[0] == "runs")))
    for cmd in (["export", str(tmp / "e.jsonl")], ["export", str(tmp / "e.parquet")], ["runs"], ["runs", "--json"],
                ["verify", "--checkers", "tool", "--out", str(tmp / "vout")], ["export", str(tmp / "e2.jsonl"),
                                                                               "-f", "sft"]):
        out.append(Case(f"{cmd[0]} garbage rows {' '.join(cmd[1:])[-20:]}", [*cmd, "--store", str(rows)]))
    for cmd in (["export", str(tmp / "nodir" / "deeper" / "e.jsonl")], ["export", str(tmp / "e.txt")],
                ["export", str(tmp / "e.jsonl"), "-f", "bogus"], ["export", str(f["dir"])],
                ["verify", "--checkers", "bogus"], ["verify", "--checkers", ""], ["verify", "-k", "-1"],
                ["verify", "--rule", "bogus"], ["verify", "--threshold", "nan"], ["verify", "--checkers", "[/]"]):
        must = not (cmd[0] == "export" and "nodir" in cmd[1])
        out.append(Case(f"{' '.join(cmd)[:40]}", [*cmd, "--store", str(good)], must_fail=must))
    # --- compare
    for extra in (["--strategies", "bogus"], ["--strategies", ""], ["--budget", "1e12"], ["--budget", "nan"],
                  ["--budget", "-5"], ["--budgets", "1,x"], ["--prm", "bogus"], ["--how", "bogus"],
                  ["--threshold", "nan"], ["--max-steps", "0"]):
        out.append(Case(f"compare {' '.join(extra)}", ["compare", "demo", *fake, "-k", "1", "--store",
                                                        str(tmp / "cmp.sqlite"), "--out", str(tmp / "cout"), *extra],
                        must_fail=True))
    # --- processbench
    for key in [k for k in f if k.startswith("pb_") and k != "pb_ok"]:
        must = key not in ("pb_bom", "pb_surrogate", "pb_markup", "pb_nul")
        out.append(Case(f"processbench {key}", ["processbench", str(f[key])], must_fail=must))
    for extra in (["--build", "10000000"], ["--build", "-1"], ["--threshold", "nan"], ["--detector", "bogus"],
                  ["-k", "-2"]):
        out.append(Case(f"processbench {' '.join(extra)}", ["processbench", str(f["pb_ok"]), *extra], must_fail=True))
    out.append(Case("processbench ok", ["processbench", str(f["pb_ok"])]))
    for p in ("", str(f["dir"]), "missing.jsonl", "[/]"):
        out.append(Case(f"processbench file {p!r}", ["processbench", p], must_fail=True))
    # --- patch feedback files
    for key in [k for k in f if k.startswith("fb_")]:
        out.append(Case(f"patch {key}", ["patch", str(f[key]), *fake, "--store", str(good), "--out",
                                         str(tmp / "pout")], must_fail=True))
    out.append(Case("patch missing store", ["patch", str(f["fb_number"]), *fake, "--store", str(tmp / "typo2.sqlite")],
                    must_fail=True))
    # --- listings and odd arguments
    for cmd in (["tasks"], ["tasks", "[/]"], ["tasks", "\x00"], ["backends"], ["methods"], ["models"],
                ["nonexistent-command"], ["run", "--nonexistent-option"], ["--help"], ["run", "--help"]):
        out.append(Case(" ".join(cmd)[:30], cmd))
    if quick:  # one of each kind of input, spread over every command
        rnd = random.Random(0)
        keep = [c for c in out if c.must_fail]
        rest = [c for c in out if not c.must_fail]
        out = rnd.sample(keep, min(len(keep), 36)) + rnd.sample(rest, min(len(rest), 9))
    return out


def random_cases(tmp: Path, n: int, seed: int) -> list[Case]:
    """Random argument soup: real option names with hostile values, for every command."""
    rnd = random.Random(seed)
    f = build_inputs(tmp)
    good = make_store(tmp, "good", f["script"])
    values = ["nan", "inf", "-1", "0", "1e400", "9" * 5000, "", "[/]", "\x00", "\ud800", "abc", str(f["dir"]),
              str(f["jsonl_deep"]), str(f["latin1"]), str(f["not_sqlite"]), "a=b", "=", "1,2,,", "%s%n", "../",
              str(tmp / "missing.jsonl"), "-", "--", "null", "{}", "[]", "10"]
    options = {"run": ["-n", "-k", "--size", "--seed", "--temperature", "--top-p", "--max-tokens", "--template",
                       "--method", "-o", "-O", "--question-col", "--answer-col", "--context-col", "--answer-type"],
               "compare": ["--strategies", "--budget", "--budgets", "--prm", "--how", "-k", "--temperature",
                           "--max-steps", "--threshold", "--template"],
               "verify": ["--checkers", "--method", "-k", "--mc-samples", "--threshold", "--rel-tol", "--rule"],
               "export": ["-f", "--style", "--layout", "--pairs", "--split", "--test-fraction", "--max-per-problem"],
               "processbench": ["--detector", "--threshold", "-k", "--seed"],
               "runs": []}
    out = []
    for i in range(n):
        cmd = rnd.choice(list(options))
        argv = [cmd]
        if cmd in ("run", "compare"):
            argv += [rnd.choice(["demo", str(f["jsonl_number"]), str(f["csv_bom"]), rnd.choice(values)]),
                     "--backend", "fake", "--model", str(f["script"]), "-k", "1", "-n", "1",
                     "--out", str(tmp / "rout")]
            argv += ["--store", str(tmp / f"rand{i % 5}.sqlite")]
        elif cmd == "export":
            argv += [str(tmp / f"rand{i}.jsonl"), "--store", str(good)]
        elif cmd == "processbench":
            argv += [str(f["pb_ok"])]
        else:
            argv += ["--store", str(good)]
        for _ in range(rnd.randint(1, 3)):
            if options[cmd]:
                argv += [rnd.choice(options[cmd]), rnd.choice(values)]
        if cmd == "compare" and "-n" in argv:
            j = argv.index("-n")
            del argv[j:j + 2]
        out.append(Case(f"random {i}: {' '.join(a[:15] for a in argv)[:70]}", argv))
    return out


def run_case(case: Case) -> tuple[str, int, str]:
    """(kind, exit code, stderr) for one case; see the module docstring for the kinds."""
    from rationales.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(case.argv)
    except BaseException as e:  # noqa: BLE001 - anything escaping main is a crash
        return "crash", -1, f"{type(e).__name__}: {e}"
    text = err.getvalue()
    if "Traceback (most recent call last)" in text + out.getvalue():
        return "crash", rc, text
    if rc == 0:
        return "ok", rc, text
    if rc == 3 or "internal error" in text:
        return "internal", rc, text
    if rc == 2:
        if "Usage:" in text:
            return "clean", rc, text
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        # status lines may come first; the error itself is one line, the last one
        errors = [ln for ln in lines if ln.startswith("error: ")]
        if len(errors) == 1 and lines[-1] == errors[0]:
            return "clean", rc, text
        return "internal", rc, text
    if rc == 130:
        return "crash", rc, text
    return "crash", rc, text


def run_all(cs: list[Case], tally: Tally, verbose: bool = False) -> Tally:
    for case in cs:
        t0 = time.perf_counter()
        kind, rc, err = run_case(case)
        took = time.perf_counter() - t0
        tally.tried += 1
        setattr(tally, kind, getattr(tally, kind) + 1)
        bad = kind in ("internal", "crash") or (case.must_fail and kind == "ok")
        if bad:
            tally.failures.append(f"{case.name}: {kind} rc={rc} {err.strip()[:300]!r}")
        if verbose:
            last = err.strip().splitlines()[-1][:110] if err.strip() else ""
            print(f"{kind:8} rc={rc:3} {took:5.1f}s {case.name}: {last}", flush=True)
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the CI subset")
    ap.add_argument("--random", type=int, default=300, help="random argument-soup inputs on top of the fixed ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rationales-fuzz-") as d:
        tmp = Path(d)
        os.chdir(tmp)  # commands that default to ./rationales.sqlite write here
        tally = run_all(cases(tmp, quick=a.quick), Tally(), a.verbose)
        if not a.quick and a.random:
            run_all(random_cases(tmp, a.random, a.seed), tally, a.verbose)
        pwned = (tmp / "pwned").exists()
    for line in tally.failures:
        print("FAIL", line)
    print(f"model text executed: {'YES' if pwned else 'no'}; {time.perf_counter() - t0:.0f} s")
    print(tally.line())


if __name__ == "__main__":
    sys.exit(main())
