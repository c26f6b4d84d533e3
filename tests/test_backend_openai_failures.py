"""The openai backend against a misbehaving OpenAI-compatible server (a local stdlib HTTP server):
500s, 429 with Retry-After, answers that are not JSON or have the wrong shape, bodies cut off
mid-transfer, hangs. Bounded retries with backoff, then one clean line naming the server; every
sample that finished is kept (and stored, through ``generate``'s ``on_sample``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationales.backends.base import GenerationRequest
from rationales.errors import BackendError

pytest.importorskip("httpx")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must not block shutdown
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[str] = []  # behaviours for the next requests, then `default`
        self.default = "ok"
        self.rule: Callable[[dict], str] | None = None  # behaviour chosen from the request body
        self.bodies: list[dict] = []
        self.ok_seeds: list[int] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets hung handlers go at the end
        self.ok_delay = 0.0  # seconds before each good answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):  # noqa: N802 - /models
        self._send(200, json.dumps({"data": [{"id": "stub-model", "owned_by": "me"}]}).encode())

    def do_POST(self):  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.bodies.append(body)
            srv.times.append(time.monotonic())
            what = srv.rule(body) if srv.rule else (srv.script.pop(0) if srv.script else srv.default)
        if what == "ok":
            time.sleep(srv.ok_delay)
            text = f"The answer is {body['seed']}."
            payload = json.dumps({"choices": [{"text": text, "message": {"content": text},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 5}}).encode()
            with srv.lock:
                srv.ok_seeds.append(body["seed"])
            self._send(200, payload)
        elif what.startswith("http"):  # http500, http503, http429:<retry-after>
            code, _, after = what[4:].partition(":")
            headers = {"Retry-After": after} if after else {}
            self._send(int(code), json.dumps({"error": {"message": f"overloaded ({code})"}}).encode(), headers)
        elif what == "garbage":
            self._send(200, b"<html>Bad gateway</html> {not json")
        elif what == "shape":
            self._send(200, json.dumps({"choices": ["not an object"]}).encode())
        elif what == "truncated":
            self._send(200, b'{"choices": [{"text": "The ans', length=500)  # promises 500 bytes, sends 30
            self.close_connection = True
        elif what == "hang":
            srv.release.wait(30)
            self.close_connection = True


@pytest.fixture()
def srv():
    s = _Server()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.release.set()
    s.shutdown()
    s.server_close()


def _url(s: _Server) -> str:
    return f"http://127.0.0.1:{s.server_address[1]}/v1"


def _backend(s: _Server, **opts):
    from rationales.backends.openai import OpenAIBackend

    defaults = dict(base_url=_url(s), max_retries=3, backoff=0.01, timeout=5, concurrency=1, chat=False)
    return OpenAIBackend(**{**defaults, **opts})


@pytest.mark.parametrize("failure", ["http500", "http503", "http429", "garbage", "shape", "truncated"])
def test_transient_failures_are_retried(srv, failure):
    srv.script = [failure, failure]
    b = _backend(srv)
    [res] = b.generate([GenerationRequest(prompt="q", seeds=[7], max_tokens=5)])
    assert [c.text for c in res.completions] == ["The answer is 7."]
    assert len(srv.bodies) == 3  # two failures, one success


@pytest.mark.parametrize("failure, reason", [
    ("http500", "HTTP 500: overloaded (500)"),
    ("garbage", "an answer that is not JSON: '<html>Bad gateway</html> {not json'"),
    ("shape", "unexpected JSON: choices = "),
    ("truncated", "the answer was cut off"),
])
def test_persistent_failure_is_one_line_naming_the_server(srv, failure, reason):
    srv.default = failure
    b = _backend(srv, max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        b.generate([GenerationRequest(prompt="q", seeds=[1])])
    msg = str(e.value)
    assert f"No answer from {_url(srv)}/completions after 3 tries ({reason}" in msg
    assert "\n" not in msg and len(srv.bodies) == 3
    assert time.monotonic() - t0 < 5


def test_a_hung_server_times_out_and_is_retried_a_bounded_number_of_times(srv):
    srv.default = "hang"
    b = _backend(srv, max_retries=1, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"after 2 tries \(no answer within the 0.5s timeout\)"):
        b.generate([GenerationRequest(prompt="q", seeds=[1])])
    assert 1.0 <= time.monotonic() - t0 < 4
    assert len(srv.bodies) == 2


def test_retry_after_is_honoured(srv):
    srv.script = ["http429:1"]
    b = _backend(srv, backoff=0.01)
    [res] = b.generate([GenerationRequest(prompt="q", seeds=[3])])
    assert len(res.completions) == 1
    assert srv.times[1] - srv.times[0] >= 0.95  # the server's 1 s, not the 0.01 s backoff


def test_retry_after_is_capped_and_backoff_grows(srv):
    srv.script = ["http429:3600", "http503", "http503"]
    b = _backend(srv, backoff=0.1, max_backoff=0.3)
    t0 = time.monotonic()
    b.generate([GenerationRequest(prompt="q", seeds=[3])])
    assert time.monotonic() - t0 < 3  # an hour's Retry-After waited 0.3 s
    gaps = [b_ - a for a, b_ in zip(srv.times, srv.times[1:])]
    assert gaps[0] >= 0.28 and gaps[1] >= 0.18 and gaps[2] >= 0.28  # 0.3 (capped), 0.2, 0.4 -> 0.3


def test_retry_after_http_date():
    from email.utils import formatdate

    from rationales.backends.openai import retry_after

    assert retry_after("2") == 2.0
    assert 5 < retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10.5
    assert retry_after("yesterday") == 0.0 and retry_after(None) == 0.0 and retry_after("-3") == 0.0
    assert retry_after("nan") == 0.0 and retry_after("inf") == 0.0


def test_client_errors_are_not_retried(srv):
    srv.default = "http400"
    b = _backend(srv)
    with pytest.raises(BackendError, match=r"rejected the request \(HTTP 400\): overloaded \(400\)"):
        b.generate([GenerationRequest(prompt="q", seeds=[1])])
    assert len(srv.bodies) == 1


def test_finished_samples_are_delivered_before_the_error(srv):
    """Sample 3 fails for good; every sample the server answered reaches on_sample, queued ones
    are cancelled, and the error says which server failed."""
    srv.rule = lambda body: "http500" if body["seed"] == 13 else "ok"
    srv.ok_delay = 0.3
    b = _backend(srv, concurrency=2, max_retries=1)
    seen = []
    with pytest.raises(BackendError, match=_url(srv)):
        b.generate([GenerationRequest(prompt="q", seeds=[10, 11, 12, 13, 14, 15, 16, 17, 18, 19])],
                   on_sample=lambda r, c: seen.append(c.seed))
    assert sorted(seen) == sorted(srv.ok_seeds)  # in flight when 13 failed (12, maybe 14): still delivered
    assert {10, 11, 12} <= set(seen) and 13 not in seen
    assert len(srv.ok_seeds) <= 5  # the rest was cancelled, not sent


def test_generate_stores_every_finished_sample_and_resumes(srv, tmp_path):
    from rationales.generate import cot_specs, generate
    from rationales.store import Store
    from rationales.tasks import load_task

    problems = load_task("demo", limit=2)
    specs = cot_specs(problems, n=4, temperature=0.7, max_tokens=16)
    seeds = [s.seed for spec in specs for s in spec.samplings()]
    bad = seeds[5]
    srv.rule = lambda body: "http503" if body["seed"] == bad else "ok"
    b = _backend(srv, concurrency=2, max_retries=1)
    store = Store(str(tmp_path / "s.sqlite"))
    with pytest.raises(BackendError, match="after 2 tries"):
        generate(specs, b, store)
    stored = store.rationales()
    assert len(stored) == len(srv.ok_seeds) >= 5
    assert sorted(r.sampling.seed for r in stored) == sorted(srv.ok_seeds)
    # the server recovers: the rerun asks only for what is missing
    answered = len(srv.ok_seeds)
    srv.rule = None
    out = generate(specs, b, store)
    assert sum(len(x) for x in out) == 8 == len(store.rationales())
    assert len(srv.ok_seeds) - answered == 8 - answered
    store.close()


def test_grammar_is_sent_as_the_server_expects(srv):
    g = 'root ::= "Score: " [1-5]'
    req = GenerationRequest(prompt="q", seeds=[1], grammar=g)
    _backend(srv).generate([req])  # auto: /models says owned_by "me" -> llama.cpp's field
    assert srv.bodies[-1]["grammar"] == g
    _backend(srv, grammar_mode="vllm").generate([req])
    assert srv.bodies[-1]["structured_outputs"] == {"grammar": g} and "grammar" not in srv.bodies[-1]
    _backend(srv, grammar_mode="vllm-guided").generate([req])
    assert srv.bodies[-1]["guided_grammar"] == g
    n = len(srv.bodies)
    with pytest.raises(BackendError, match="grammar_mode=none"):
        _backend(srv, grammar_mode="none").generate([req])
    with pytest.raises(BackendError, match="GBNF grammar is not valid"):
        _backend(srv).generate([GenerationRequest(prompt="q", seeds=[1], grammar="root ::= (")])
    assert len(srv.bodies) == n  # refused before anything was sent
    _backend(srv).generate([GenerationRequest(prompt="q", seeds=[1])])
    assert "grammar" not in srv.bodies[-1]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["choices", "text", "message", "content", "usage", "finish_reason",
                                          "completion_tokens", "prompt_tokens", "x"]), inner, max_size=4),
                     max_leaves=15)


@settings(max_examples=200, deadline=1000)
@given(body=st.dictionaries(st.sampled_from(["choices", "usage", "id"]), _json, max_size=3), chat=st.booleans())
def test_completion_parser_property(body, chat):
    """Any JSON object: a sample, no sample, or a retry (never another exception); deterministic."""
    from rationales.backends.openai import _Retry, parse_completion

    req = GenerationRequest(prompt="q", seeds=[5], stop=["STOP"])
    outcomes = []
    for _ in range(2):
        try:
            comp, prompt_tokens = parse_completion(body, chat, req, 0)
        except _Retry as r:
            assert "\n" not in r.reason
            outcomes.append(("retry", r.reason))
            continue
        assert isinstance(prompt_tokens, int) and prompt_tokens >= 0
        if comp is not None:
            assert isinstance(comp.text, str) and "STOP" not in comp.text and comp.tokens >= 0
            assert comp.seed == 5 and comp.finish_reason in ("stop", "length")
        outcomes.append(("ok", comp))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=1000)
@given(st.one_of(st.none(), st.text(max_size=40), st.floats().map(str), st.integers().map(str)))
def test_retry_after_property(value):
    from rationales.backends.openai import retry_after

    got = retry_after(value)
    assert 0.0 <= got < float("inf")  # finite, non-negative (HTTP dates move with the clock)
