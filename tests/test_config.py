"""One config system: the CLI flags are derived from (and checked against) the job configs,
every option of `run` reaches `run --method`, and bad values are one-line errors before
anything is written (issue 9 items 3/4/8, issue 10 item 3)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationales.cli import main
from rationales.cli.compare import compare_cmd
from rationales.cli.core import run_cmd
from rationales.cli.patch import patch_cmd
from rationales.cli.verify import processbench_cmd, verify_cmd
from rationales.config import ANSWER_TYPES, Config, ConfigError, MethodOptions, SamplingConfig, TaskConfig
from rationales.errors import RationalesError
from rationales.jobs.compare import CompareConfig
from rationales.jobs.methods import METHODS, check_method, method_options
from rationales.jobs.methods.patch import PatchConfig
from rationales.jobs.processbench import ProcessBenchConfig
from rationales.jobs.run import RunConfig
from rationales.jobs.verify import VerifyConfig

#: command -> (its config, CLI parameters that fill a field of another name, CLI-only parameters)
COMMANDS = {
    "run": (run_cmd, RunConfig, {"backend_opt": "backend_options", "method_opt": "method_options"}),
    "compare": (compare_cmd, CompareConfig, {"backend_opt": "backend_options", "budget": "budgets",
                                             "budgets": "budgets"}),
    "verify": (verify_cmd, VerifyConfig, {}),
    "processbench": (processbench_cmd, ProcessBenchConfig, {}),
    "patch": (patch_cmd, PatchConfig, {}),
}
CLI_ONLY = {"json_out"}
#: defaults given as the CLI's text form of the config default
TEXT_DEFAULTS = {("compare", "budget"), ("compare", "budgets")}


def field_default(cls, name):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_flag_fills_a_config_field_with_the_same_default(command):
    fn, cls, renamed = COMMANDS[command]
    names = {f.name for f in dataclasses.fields(cls)}
    for p in inspect.signature(fn).parameters.values():
        if p.name in CLI_ONLY:
            continue
        target = renamed.get(p.name, p.name)
        assert target in names, f"`{command}` shows --{p.name} but {cls.__name__} has no field for it"
        default = getattr(p.default, "default", p.default)
        if default is ...:  # a required argument: no default to compare
            continue
        if (command, p.name) in TEXT_DEFAULTS or target in ("backend_options", "method_options"):
            continue
        want = field_default(cls, target)
        if isinstance(want, list) and isinstance(default, str):  # a list flag's text form: "a,b"
            default = default.split(",")
        assert default == want, f"`{command} --{p.name}` default differs from the config"


def test_the_cli_passes_every_flag_into_the_config(monkeypatch, tmp_path):
    """Each command builds its config from all of its flags: a flag dropped on the way fails."""
    import rationales.cli.core as core

    seen = {}

    class Stop(Exception):
        pass

    def capture(cfg, json_out):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(core, "_run_method", capture)
    values = dict(task="t.jsonl", backend="fake", model="m.json", samples=3, limit=2, size=7, seed=5,
                  temperature=0.3, top_p=0.5, max_tokens=99, template="cot_fewshot", method="utility",
                  store=str(tmp_path / "s.sqlite"), out=str(tmp_path / "o"), base_url="http://x",
                  backend_opt=["delay=0"], method_opt=["per_step=false"], question_col="q", answer_col="a",
                  context_col="c", answer_type="number", ray="ray://head:10001", ray_actors=3, json_out=True)
    assert set(values) == set(inspect.signature(run_cmd).parameters)
    with pytest.raises(Stop):
        run_cmd(**values)
    cfg = seen["cfg"]
    for name, value in values.items():
        if name in ("json_out", "backend_opt", "method_opt"):
            continue
        assert getattr(cfg, name) == value, name
    assert cfg.backend_options == {"delay": 0} and cfg.method_options == {"per_step": "false"}


@pytest.mark.parametrize("command,values", [
    ("verify", dict(store="s.sqlite", checkers="tool,mc", backend="fake", model="m.json", base_url="http://x",
                    method="cot", limit=3, mc_samples=2, mc_max_tokens=7, mc_search="binary", mc_wrong_per_problem=2,
                    mc_solved_only=True, temperature=0.3, threshold=0.25,
                    rel_tol=0.01, rule="majority", seed=5, out="o", ray="local", ray_actors=3, json_out=True)),
    ("patch", dict(feedback_file="fb.jsonl", store="s.sqlite", backend="fake", model="m.json",
                   base_url="http://x", out="o", max_tokens=99, json_out=True)),
])
def test_verify_and_patch_pass_every_flag_into_their_config(monkeypatch, command, values):
    import importlib

    fn, cls, _ = COMMANDS[command]
    module = importlib.import_module(fn.__module__)
    seen = {}

    class Stop(Exception):
        pass

    class Capture(cls):
        def __post_init__(self):
            super().__post_init__()
            seen["cfg"] = self
            raise Stop

    monkeypatch.setattr(module, cls.__name__, Capture)
    assert set(values) == set(inspect.signature(fn).parameters)
    with pytest.raises(Stop):
        fn(**values)
    cfg = seen["cfg"]
    for name, value in values.items():
        if name in CLI_ONLY:
            continue
        want = value.split(",") if name == "checkers" else value
        assert getattr(cfg, name) == want, name


def test_run_method_context_gets_every_run_option(monkeypatch, tmp_path):
    """`run --method` honours --top-p, --template, and every other option `run` shows."""
    import rationales.cli.common as common
    import rationales.jobs.methods as methods
    import rationales.tasks as tasks

    seen: dict = {}
    real_load_task = tasks.load_task

    class Stop(Exception):
        pass

    def fake_load_task(spec, **kw):
        seen["task"] = (spec, kw)
        return real_load_task("demo", limit=2)

    def fake_backend(name, model, base_url=None, /, **opts):
        seen["backend"] = (name, model, base_url, opts)
        from rationales.backends.fake import FakeBackend

        return FakeBackend()

    def fake_run_method(name, ctx):
        seen["ctx"] = ctx
        raise Stop

    monkeypatch.setattr(tasks, "load_task", fake_load_task)
    monkeypatch.setattr(common, "make_backend", fake_backend)
    monkeypatch.setattr(methods, "run_method", fake_run_method)
    with pytest.raises(Stop):
        run_cmd(task="t.jsonl", backend="fake", model="m.json", samples=3, limit=2, size=7, seed=5, temperature=0.3,
                top_p=0.5, max_tokens=99, template="cot_fewshot", method="utility", store=str(tmp_path / "s.sqlite"),
                out=str(tmp_path / "o"), base_url="http://x", backend_opt=["delay=0"], method_opt=["per_step=false"],
                question_col="q", answer_col="a", context_col="c", answer_type="number", ray="local", ray_actors=3,
                json_out=True)
    ctx = seen["ctx"]
    assert (ctx.samples, ctx.seed, ctx.size, ctx.temperature, ctx.top_p, ctx.max_tokens, ctx.template) == \
        (3, 5, 7, 0.3, 0.5, 99, "cot_fewshot")
    assert ctx.task == "t.jsonl" and str(ctx.out) == str(tmp_path / "o") and ctx.options == {"per_step": "false"}
    assert seen["task"] == ("t.jsonl", {"size": 7, "seed": 5, "limit": 2, "question_col": "q", "answer_col": "a",
                                        "answer_type": "number", "context_col": "c"})
    assert seen["backend"] == ("fake", "m.json", "http://x", {"delay": 0, "ray": "local", "ray_actors": 3})
    assert ctx.cot_specs()[0].prompt.template == "cot_fewshot"


def test_run_method_top_p_reaches_the_stored_samples(tmp_path, capsys):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"*": ["1 + 1 = 2. The answer is 2."]}))
    code = main(["run", "demo", "--method", "calibration", "--backend", "fake", "--model", str(script), "-n", "2",
                 "-k", "1", "--top-p", "0.5", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"),
                 "-O", "verbal=false", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from rationales.store import Store

    with Store(tmp_path / "s.sqlite") as st:
        sampled = [r for r in st.rationales(method="cot") if r.sampling.temperature > 0]
    assert sampled and all(r.sampling.top_p == 0.5 for r in sampled)


def test_template_on_a_method_that_writes_its_own_prompts_is_an_error():
    with pytest.raises(ConfigError, match="--template does not apply to --method formats"):
        check_method("formats", {}, template="cot_fewshot")
    check_method("utility", {}, template="cot_fewshot")


@pytest.mark.parametrize("args, message", [
    (["run", "demo", "--temperature", "inf"], "--temperature must be a finite number"),
    (["run", "demo", "--temperature", "nan"], "--temperature must be a finite number"),
    (["run", "demo", "--samples", "1000000000"], "--samples must be at most 1024"),
    (["run", "demo", "--size", "1000000000"], "--size must be at most 100000"),
    (["run", "demo", "--limit", "1000000000"], "--limit must be at most 100000"),
    (["run", "demo", "--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["run", "demo", "--top-p", "1.5"], "--top-p must be at most 1.0"),
    (["run", "demo", "--answer-type", "bogus"], "Unknown answer type 'bogus'"),
    (["run", "demo", "--method", "utility", "-O", "bogus=1"], "Unknown option -O bogus for"),
    (["run", "demo", "--method", "brevity", "-O", "answer_max_tokens=abc"], "-O answer_max_tokens must be a whole"),
    (["run", "demo", "--method", "faithfulness", "-O", "mask_ratio=nan"], "-O mask_ratio must be a finite number"),
    (["run", "demo", "--method", "nope"], "Unknown method 'nope'"),
    (["run", "demo", "-O", "x=1"], "--method-opt applies to run --method NAME only"),
    (["compare", "demo", "--budget", "1e12"], "over the limit of 1000000 tokens"),
    (["compare", "demo", "--budget", "1000000000000"], "over the limit of 1000000 tokens"),
    (["compare", "demo", "--temperature", "inf"], "--temperature must be a finite number"),
    (["compare", "demo", "--max-steps", "100000"], "--max-steps must be at most 256"),
    (["processbench", "--build", "10000000"], "--build must be at most 100000"),
    (["processbench", "--build", "5", "--detector", "oracle"], "Unknown step detector 'oracle'"),
    (["verify", "--mc-samples", "100000"], "--mc-samples must be at most 1024"),
    (["verify", "--checkers", "tool,pmr"], "Unknown checker 'pmr'"),
])
def test_bad_options_are_one_line_errors_before_anything_is_written(tmp_path, capsys, args, message):
    store = tmp_path / "s.sqlite"
    extra = ["--store", str(store)] if args[0] != "processbench" else []
    code = main([*args, "--backend", "fake", *extra])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not store.exists() and not (tmp_path / "rationales-out").exists()


def test_sampling_config_bounds_and_types():
    assert SamplingConfig().temperature == 0.7
    for bad in (dict(temperature=math.inf), dict(temperature=-0.1), dict(top_p=-1), dict(max_tokens=1.5),
                dict(seed=2 ** 70), dict(temperature="hot")):
        with pytest.raises(ConfigError):
            SamplingConfig(**bad)
    assert TaskConfig(answer_type="math").task_options()["answer_type"] == "math"


def test_answer_types_match_the_file_loader():
    from rationales.tasks.files import ANSWER_TYPES as LOADER_TYPES

    assert tuple(ANSWER_TYPES) == tuple(LOADER_TYPES)


def test_every_method_declares_typed_options():
    for name in METHODS.names():
        cls = method_options(name)
        assert issubclass(cls, MethodOptions) and cls is not MethodOptions, name
        cls.from_options({})  # the defaults are valid


@dataclasses.dataclass
class _Opts(MethodOptions):
    """test options."""

    n: int = dataclasses.field(default=3, metadata={"lo": 1, "hi": 10})
    x: float = dataclasses.field(default=0.5, metadata={"lo": 0.0, "hi": 1.0})
    on: bool = dataclasses.field(default=True, metadata={"help": "a flag"})
    name: str | None = dataclasses.field(default=None, metadata={"help": "a name"})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["n", "x", "on", "name", "bogus", ""]),
                       st.one_of(st.text(max_size=60), st.integers(), st.floats(allow_nan=True), st.booleans(),
                                 st.none()), max_size=4))
def test_option_parsing_never_raises_anything_but_a_clean_error(options):
    """-O values are user text: any of them ends in a valid config or a one-line RationalesError,
    the same way twice."""
    def attempt():
        try:
            return _Opts.from_options(options)
        except RationalesError as e:
            assert "\n" not in str(e)
            return str(e)

    first = attempt()
    assert first == attempt()
    if isinstance(first, _Opts):
        assert 1 <= first.n <= 10 and 0.0 <= first.x <= 1.0 and isinstance(first.on, bool)


def test_config_base_validates_subclass_fields_on_construction():
    @dataclasses.dataclass
    class Job(Config):
        k: int = dataclasses.field(default=1, metadata={"lo": 1, "hi": 5})

    assert Job(k=5).k == 5
    with pytest.raises(ConfigError, match="--k must be at most 5"):
        Job(k=6)


#: `judge` flags that choose the backend and the files, not the judging (they never reach a config)
JUDGE_PLUMBING = {"backend", "model", "base_url", "backend_opt", "store", "out", "json_out"}


def _judge_fields():
    from rationales.jobs.judge import JudgeJobConfig
    from rationales.verify.judge import JudgeConfig

    job = {f.name for f in dataclasses.fields(JudgeJobConfig)} - {"judge"}
    return JudgeJobConfig, JudgeConfig, job, {f.name for f in dataclasses.fields(JudgeConfig)}


def test_every_judge_flag_fills_a_judge_config_field_with_the_same_default():
    from rationales.cli.judge import judge_cmd

    job_cls, judge_cls, job, judge = _judge_fields()
    for p in inspect.signature(judge_cmd).parameters.values():
        if p.name in JUDGE_PLUMBING:
            continue
        cls = job_cls if p.name in job else judge_cls if p.name in judge else None
        assert cls is not None, f"`judge` shows --{p.name} but neither JudgeJobConfig nor JudgeConfig has it"
        default = getattr(p.default, "default", p.default)
        assert default == field_default(cls, p.name), f"`judge --{p.name}` default differs from {cls.__name__}"


def test_judge_passes_every_flag_into_its_configs(monkeypatch, tmp_path):
    import rationales.jobs.judge as jobs_judge
    from rationales.cli.judge import judge_cmd

    job_cls, _, job, judge = _judge_fields()
    seen = {}

    class Stop(Exception):
        pass

    class Capture(job_cls):
        def __post_init__(self):
            super().__post_init__()
            seen["cfg"] = self
            raise Stop

    monkeypatch.setattr(jobs_judge, "JudgeJobConfig", Capture)
    values = dict(file=None, mode="pairwise", rubric="reasoning", low=1, high=7, run="r1", method="cot",
                  source_model="m", task="t", reference=True, per_problem=2, rank_k=4, limit=9, n=3,
                  temperature=0.4, aggregate="best", max_tokens=99, grammar=False, retries=2, force=False,
                  calibrate=True, seed=5, backend="fake", model="m.json", base_url="http://x", backend_opt=["delay=0"],
                  store=str(tmp_path / "s.sqlite"), out=str(tmp_path / "o"), json_out=True)
    assert set(values) == set(inspect.signature(judge_cmd).parameters)
    with pytest.raises(Stop):
        judge_cmd(**values)
    cfg = seen["cfg"]
    for name, value in values.items():
        if name in JUDGE_PLUMBING:
            continue
        got = getattr(cfg, name) if name in job else getattr(cfg.judge, name)
        assert got == value, name
