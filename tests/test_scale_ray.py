"""Scale-out on a real local Ray (num_cpus=2, a small object store): the fake backend as an
actor pool, a worker killed mid-run, two drivers on one store, and the openai backend against a
real llama_cpp.server through both our actors and Ray Data LLM's HTTP processor."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("ray")

from rationales.errors import BackendError, RationalesError  # noqa: E402
from rationales.generate import GenerationStats, cot_specs, generate  # noqa: E402
from rationales.records import Problem  # noqa: E402
from rationales.scale.ray_backend import RayBackend, shutdown  # noqa: E402
from rationales.store import Store  # noqa: E402


def seeded(prompt: str, seed: int, index: int) -> str:
    """Deterministic in the seed, like a real sampler with an explicit seed."""
    return f"Step 1: {seed % 97} + 1 = {seed % 97 + 1}.\nThe answer is {seed % 3}."


def pid_logging(pid_dir: str, prompt: str, seed: int, index: int) -> str:
    """Record which worker process produced each sample (files, since workers are processes)."""
    (Path(pid_dir) / f"{os.getpid()}").touch()
    if "explode" in prompt:
        raise RuntimeError("this prompt always fails")
    time.sleep(0.05)
    return seeded(prompt, seed, index)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import ray
    from ray import cloudpickle

    # the scripts below are defined in this test module, which workers cannot import: ship by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, object_store_memory=96 * 2**20, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    shutdown()


def problems(n: int, tag: str = "") -> list[Problem]:
    return [Problem.make(f"{tag}What is {i} + {i}?", gold=str(2 * i), source="test") for i in range(n)]


def texts(rows):
    return [[r.text for r in rs] for rs in rows]


def test_same_samples_as_one_process(tmp_path):
    from rationales.backends.fake import FakeBackend

    specs = cot_specs(problems(6), n=4)
    local = generate(specs, FakeBackend(script=seeded), Store(tmp_path / "a.sqlite"))
    ray_backend = RayBackend(inner="fake", inner_options={"script": seeded}, actors=2, batch_size=2, num_cpus=0.5)
    store = Store(tmp_path / "b.sqlite")
    stats = GenerationStats()
    on_ray = generate(specs, ray_backend, store, stats=stats)
    assert texts(on_ray) == texts(local)
    assert [[r.id for r in rs] for rs in on_ray] == [[r.id for r in rs] for rs in local]
    assert stats.new == 24 and stats.cached == 0
    # a second run dispatches nothing: stored ids are filtered out before the cluster sees them
    again = GenerationStats()
    generate(specs, ray_backend, store, stats=again)
    assert again.new == 0 and again.cached == 24
    ray_backend.close()


def test_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    import ray

    backend = RayBackend(inner="fake", inner_options={"script": partial(pid_logging, str(pids)), "delay": 0.02}, actors=2,
                         batch_size=1, num_cpus=0.5)
    store_path = tmp_path / "kill.sqlite"
    store = Store(store_path)
    specs = cot_specs(problems(12, "kill "), n=4)
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = store.conn.execute("SELECT COUNT(*) FROM rationales").fetchone()[0]
            workers = [int(p.name) for p in pids.iterdir()]
            if done >= 8 and workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
                return
            time.sleep(0.05)

    assert ray.is_initialized()
    t = threading.Thread(target=killer)
    t.start()
    stats = GenerationStats()
    rows = generate(specs, backend, store, stats=stats)
    t.join()
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert sum(len(r) for r in rows) == 48
    assert stats.new == 48  # each sample committed exactly once
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM rationales").fetchone() == (48, 48)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    backend.close()


def test_failed_request_is_recorded_and_the_rest_is_stored(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    backend = RayBackend(inner="fake", inner_options={"script": partial(pid_logging, str(pids))}, actors=2, batch_size=2, num_cpus=0.5)
    store = Store(tmp_path / "fail.sqlite")
    good, bad = problems(3, "fine "), [Problem.make("explode please", gold="1", source="test")]
    with pytest.raises(BackendError, match=r"2 of 8 samples failed on the Ray workers .*6 finished ones are stored"):
        generate(cot_specs(good + bad, n=2), backend, store)
    assert store.conn.execute("SELECT COUNT(*) FROM rationales").fetchone()[0] == 6
    # the rerun only retries what failed
    stats = GenerationStats()
    generate(cot_specs(good, n=2), backend, store, stats=stats)
    assert stats.cached == 6 and stats.new == 0
    backend.close()


def test_two_drivers_on_one_store_duplicate_no_work_and_no_rows(tmp_path):
    store_path = tmp_path / "shared.sqlite"
    specs = cot_specs(problems(8, "two "), n=3)
    out: dict[str, int] = {}

    def driver(name: str) -> None:
        backend = RayBackend(inner="fake", inner_options={"script": seeded, "delay": 0.01}, actors=1,
                             num_cpus=0.5)
        stats = GenerationStats()
        generate(specs, backend, Store(store_path), stats=stats)
        out[name] = stats.new
        backend.close()

    threads = [threading.Thread(target=driver, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM rationales").fetchone() == (24, 24)
    assert out["a"] + out["b"] == 24  # claims: no sample generated by both drivers


def test_bad_options_are_one_line_errors():
    with pytest.raises(RationalesError, match="no option 'nope'"):
        RayBackend(inner="fake", inner_options={"nope": 1})
    with pytest.raises(RationalesError, match="actors"):
        RayBackend(inner="fake", actors=0)
    with pytest.raises(RationalesError, match="url="):
        RayBackend(inner="openai", executor="http")
    with pytest.raises(RationalesError, match="backend"):
        RayBackend(inner="no-such-backend")


# ---------------------------------------------------------------- a real llama_cpp.server

from test_backend_openai import server  # noqa: E402,F401 - the real-server fixture, started once


@pytest.mark.server
@pytest.mark.model
def test_openai_backend_on_ray_actors_against_a_real_server(server, tmp_path):  # noqa: F811
    backend = RayBackend(inner="openai", inner_options={"base_url": server, "max_retries": 1}, actors=1,
                         num_cpus=0.5)
    assert backend.model.endswith(".gguf")  # asked of the server by the service actor
    specs = cot_specs(problems(2, "srv "), n=2, max_tokens=12)
    stats = GenerationStats()
    rows = generate(specs, backend, Store(tmp_path / "srv.sqlite"), stats=stats)
    assert stats.new == 4 and all(r.text for rs in rows for r in rs)
    assert len({r.sampling.seed for rs in rows for r in rs}) == 4
    # logprobs go to the service actor
    [score] = backend.logprobs("1, 2, 3,", [" 4"])
    assert score.tokens >= 1 and score.logprob < 0
    backend.close()


@pytest.mark.server
@pytest.mark.model
def test_ray_data_llm_http_processor_against_a_real_server(server, tmp_path):  # noqa: F811
    backend = RayBackend(inner="openai", inner_options={"model": "smollm2"}, executor="http", url=server,
                         actors=1, batch_size=2, max_retries=1)
    specs = cot_specs(problems(2, "http "), n=2, max_tokens=12)
    stats = GenerationStats()
    rows = generate(specs, backend, Store(tmp_path / "http.sqlite"), stats=stats)
    assert stats.new == 4
    assert all(r.text and r.tokens <= 12 for rs in rows for r in rs)
    with pytest.raises(BackendError, match="generation only"):
        backend.logprobs("x", ["y"])


# ---------------------------------------------------------------- the CLI

def _summary(capsys, args):
    import json

    from rationales.cli import main

    capsys.readouterr()
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for volatile in ("run_id", "time_s", "store", "report", "out", "samples_new", "samples_cached", "tokens_new"):
        out.pop(volatile, None)
    return out


@pytest.mark.parametrize("command", [
    ["run", "demo", "-n", "3", "-k", "4"],
    ["compare", "demo", "-k", "3", "--strategies", "greedy,vote,step_search", "--budget", "300"],
])
def test_cli_ray_gives_the_same_summary_as_one_process(command, tmp_path, capsys):
    common = ["--backend", "fake", "--json"]
    alone = _summary(capsys, command + common + ["--store", str(tmp_path / "a.sqlite"), "--out", str(tmp_path / "a")])
    on_ray = _summary(capsys, command + common + ["--store", str(tmp_path / "b.sqlite"), "--out", str(tmp_path / "b"),
                                                  "--ray", "--ray-actors", "2"])
    assert on_ray == alone


def test_cli_verify_with_mc_rollouts_on_ray(tmp_path, capsys):
    from rationales.cli import main

    store = str(tmp_path / "v.sqlite")
    assert main(["run", "demo", "--backend", "fake", "-n", "2", "-k", "2", "--store", store, "--out",
                 str(tmp_path / "o"), "--json"]) == 0
    out = _summary(capsys, ["verify", "--store", store, "--checkers", "tool,mc", "--backend", "fake", "--mc-samples", "2",
                            "--out", str(tmp_path / "v"), "--json", "--ray"])
    alone = _summary(capsys, ["verify", "--store", store, "--checkers", "tool,mc", "--backend", "fake",
                              "--mc-samples", "2", "--out", str(tmp_path / "v2"), "--json"])
    assert out == alone


def test_cli_bad_ray_options_are_one_line_errors(capsys):
    from rationales.cli import main

    assert main(["run", "demo", "--backend", "fake", "--ray", "--ray-actors", "0"]) == 2
    assert "--ray-actors must be at least 1" in capsys.readouterr().err
