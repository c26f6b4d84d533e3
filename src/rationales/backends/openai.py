"""A backend for any OpenAI-compatible HTTP server (llama.cpp server, vLLM, Ollama, hosted APIs).

It talks to the server with ``httpx`` directly rather than the ``openai`` client: the exact JSON
sent matters here (several servers break on fields the client fills in or leaves ``null``, and
server-specific fields such as ``echo`` go in as they are), and retries, backoff and error
messages are ours, in one place, instead of split between the client and this module.

Behaviour worth knowing (see ``/work/shared/ENVIRONMENT.md``):

* ``n > 1`` is silently ignored by llama.cpp's server, and unseeded requests repeat each other.
  So every sample is its own request carrying its own explicit seed (``request.seeds[i]``);
  requests run concurrently on a small thread pool and only samples that actually came back are
  counted.
* ``temperature`` is always a number, never ``null``. Only the standard sampling fields are
  sent; a server's own defaults apply to the rest (llama-cpp-python's server adds top_k=40,
  min_p=0.05, repeat_penalty=1.1): override them with ``extra_body={...}``, merged into every
  generation request.
* Connection errors, timeouts (``timeout`` seconds per request: a hung server), bodies cut off
  mid-transfer, bodies that are not the JSON expected, HTTP 408, 429 and 5xx are retried, at
  most ``max_retries`` times, after ``backoff * 2**k`` seconds or the server's ``Retry-After``
  (seconds or an HTTP date), each wait capped at ``max_backoff``; any other 4xx is reported at
  once with the server's own message. Either way the caller gets a one-line
  :class:`~rationales.errors.BackendError` naming the server's URL, and every sample that had
  finished before the failure (including those still in flight, which are awaited; queued ones
  are cancelled) has already gone to ``on_sample``.
* ``request.grammar`` (GBNF) goes to the server as ``-o grammar_mode`` says: ``llamacpp``
  (``"grammar"`` in the body: llama.cpp's server and llama-cpp-python's), ``vllm``
  (``"structured_outputs": {"grammar": ...}``, vLLM >= 0.10), ``vllm-guided`` (``"guided_grammar"``,
  older vLLM), ``none`` (refused: the server cannot constrain output), or ``auto`` (default: vLLM
  when ``/models`` says ``owned_by: vllm``, else llama.cpp's field).
* ``logprobs`` scores a continuation with the completions endpoint and ``echo=True``: the
  server returns the log-probability of every prompt token, and the continuation's tokens are
  found by their ``text_offset`` (counted from the end of the text, see
  ``_continuation_tokens``). llama-cpp-python's server shifts these values by one token for
  prompts that do not start with BOS; that is detected and corrected from ``top_logprobs``
  (see ``_aligned``). The C++ ``llama-server`` returns no prompt logprobs at all: a clear
  BackendError.
* ``model="default"`` becomes the first model the server lists at ``/models``: the model id
  goes into record ids, so two servers' samples never share one.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, CancelledError, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from ..errors import BackendError
from .base import (Backend, BackendOptions, Completion, ContinuationScore, GenerationRequest, GenerationResult,
                   Messages, OnSample)
from .grammar import check_grammar

#: At most this many stop strings go to the server (OpenAI's limit); the rest are trimmed here.
MAX_SERVER_STOPS = 4

_START_HINT = ("Is the server running? Start one with `python -m llama_cpp.server --model FILE.gguf "
               "--port 8000` or pass --base-url.")


_CLIENT_ERROR_HINTS = {
    401: " -- set OPENAI_API_KEY or pass --backend-opt api_key=KEY.",
    403: " -- set OPENAI_API_KEY or pass --backend-opt api_key=KEY.",
    404: " -- check --base-url (usually ending in /v1) and --model.",
}


#: Status codes worth another try: the server is busy, restarting or timed out.
RETRY_STATUS = frozenset({408, 425, 429})

GrammarMode = Literal["auto", "llamacpp", "vllm", "vllm-guided", "none"]


class _Retry(Exception):
    """A failed attempt worth retrying; ``wait_hint`` is the server's Retry-After (seconds)."""

    def __init__(self, reason: str, wait_hint: float = 0.0):
        super().__init__(reason)
        self.reason, self.wait_hint = reason, wait_hint


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); 0 when absent or bad."""
    if not value:
        return 0.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
        if when is None:
            return 0.0
        if when.tzinfo is None:
            import datetime as _dt

            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = when.timestamp() - time.time()
    return seconds if seconds == seconds and 0 < seconds < float("inf") else 0.0


def _one_line(text: Any, limit: int = 300) -> str:
    """Collapse whitespace so a server's message fits on one line of a CLI error."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _server_message(response: Any) -> str:
    """The human-readable part of an error response (OpenAI puts it in ``error.message``)."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text or response.reason_phrase)
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message", err)
        return _one_line(err)
    return _one_line(body)


@dataclass
class _Echo:
    """The prompt part of an echoed completion: token strings, logprobs, offsets, top-k dicts."""

    tokens: list[str]
    values: list[float | None]
    offsets: list[int]
    tops: list[dict[str, float] | None]


#: A text every model predicts well: its tokens tell aligned from shifted echo logprobs.
_CALIBRATION_TEXT = "\n1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"


def _alignment_verdict(echo: _Echo) -> bool | None:
    """True: values are aligned; False: shifted by one; None: no clear signal."""
    def top1(d: dict[str, float] | None) -> str | None:
        return max(d, key=d.__getitem__) if d else None

    direct = sum(1 for i in range(1, len(echo.tokens)) if echo.tokens[i] == top1(echo.tops[i]))
    shifted = sum(1 for i in range(1, len(echo.tokens)) if echo.tokens[i] == top1(echo.tops[i - 1]))
    if direct >= 3 and direct >= 2 * shifted:
        return True
    if shifted >= 3 and shifted >= 2 * direct:
        return False
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_completion(body: dict[str, Any], chat: bool, request: GenerationRequest,
                     index: int) -> tuple[Completion | None, int]:
    """A generation answer -> (the sample, prompt tokens); (None, 0) when no choice came back.

    Raises :class:`_Retry` (the request is tried again) when the JSON does not have the shape
    of an OpenAI (chat) completion. Stop strings the server ignored are cut here."""
    choices = body.get("choices")
    if choices is None or choices == []:
        return None, 0
    choice = choices[0] if isinstance(choices, list) else None
    if not isinstance(choice, dict):
        raise _Retry(f"unexpected JSON: choices = {_one_line(choices, 80)}")
    if chat:
        message = choice.get("message")
        if message is not None and not isinstance(message, dict):
            raise _Retry(f"unexpected JSON: message = {_one_line(message, 80)}")
        text = (message or {}).get("content")
    else:
        text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise _Retry(f"unexpected JSON: the text is {_one_line(text, 80)}")
    text = text or ""
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    cut = [text.index(s) for s in request.stop if s and s in text]
    if cut:  # stops beyond the server's limit, or a server that ignored them
        text, finish = text[: min(cut)], "stop"
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = _count(usage.get("completion_tokens"))
    if tokens is None:
        tokens = max(1, len(text.split())) if text else 0
    prompt_tokens = _count(usage.get("prompt_tokens")) or 0
    seed = request.seeds[index]
    return (Completion(text=text, index=index, seed=seed, tokens=tokens, finish_reason=finish,
                       prompt_tokens=prompt_tokens), prompt_tokens)


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with a path is kept as given."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


class OpenAIOptions(BackendOptions):
    """Options of the openai backend (``-o KEY=VALUE``)."""

    model: str | None = Field("default", description="model name; 'default' = the first the server lists")
    base_url: str | None = Field(None, description="server URL (default $OPENAI_BASE_URL); /v1 added if no path")
    api_key: str | None = Field(None, description="bearer token (default $OPENAI_API_KEY)")
    timeout: float = Field(120.0, gt=0, le=86_400, description="seconds per request before it counts as hung")
    max_retries: int = Field(3, ge=0, le=20, description="retries of a failed request")
    backoff: float = Field(0.5, ge=0, le=600, description="first retry wait in seconds, doubled each retry")
    max_backoff: float = Field(30.0, ge=0, le=3600, description="cap on any one wait, Retry-After included")
    chat: bool = Field(True, description="send chat messages to /chat/completions")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight")
    chat_template: str | None = Field(None, description="Jinja2 template to render chat prompts for scoring")
    echo_top_k: int = Field(100, ge=5, le=10_000, description="top_logprobs asked for when echo values are shifted")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="JSON merged into every generation request")
    grammar_mode: GrammarMode = Field("auto", description="how request.grammar is sent: auto, llamacpp, vllm, "
                                                         "vllm-guided, none")


class OpenAIBackend(Backend):
    """Samples and scores through an OpenAI-compatible server; see the module docstring."""

    name = "openai"

    Options = OpenAIOptions

    def __init__(self, model: Any = None, **options: Any):
        """Options: see :class:`OpenAIOptions`."""
        import httpx

        o: OpenAIOptions = self.parse_options(**options, **({} if model is None else {"model": model}))
        self.options = o
        base_url = o.base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BackendError("The openai backend needs a server URL: pass --base-url "
                               "http://127.0.0.1:8000/v1 (or set OPENAI_BASE_URL).")
        self.base_url = normalize_base_url(base_url)
        self.model = o.model or "default"
        self.chat = o.chat
        self.timeout = float(o.timeout)
        self.max_retries = int(o.max_retries)
        self.backoff = float(o.backoff)
        self.max_backoff = float(o.max_backoff)
        self.concurrency = int(o.concurrency)
        self.chat_template = o.chat_template
        self.echo_top_k = int(o.echo_top_k)
        self.extra_body = dict(o.extra_body)
        self.grammar_mode: GrammarMode = o.grammar_mode
        self.supports_grammar = o.grammar_mode != "none"
        self._owned_by: str | None = None
        self._alignment: dict[str, bool] = {}
        self._template = None
        key = o.api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self._client = httpx.Client(
            base_url=self.base_url + "/", timeout=self.timeout,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
        self._closed = False
        self._lock = threading.Lock()
        self._cancelled = threading.Event()  # set when a generate() call gave up: queued retries stop
        if self.model == "default":
            self.model = self._served_model() or "default"

    def _served_model(self) -> str | None:
        """The first model id the server lists at ``/models`` (one quick try, no retries).

        ``backend.model`` goes into record ids, so "default" is replaced by what the server
        actually serves; vLLM also rejects model names it does not serve.
        """
        import httpx

        try:
            response = self._client.get("models", timeout=min(self.timeout, 10.0))
            data = response.json().get("data") if response.status_code == 200 else None
            models = [m for m in data or [] if isinstance(m, dict) and m.get("id")] if isinstance(data, list) else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        if models:
            self._owned_by = str(models[0].get("owned_by") or "")
        return str(models[0]["id"]) if models else None

    # ------------------------------------------------------------ HTTP

    def _post(self, path: str, payload: dict[str, Any], parse: Callable[[dict[str, Any]], Any] | None = None) -> Any:
        """POST with bounded retries (see the module docstring); BackendError naming the URL otherwise.

        Returns the JSON object answered, or ``parse(body)``, which may raise :class:`_Retry` for
        an answer of the wrong shape."""
        url = f"{self.base_url}/{path}"
        last = "no attempt made"
        wait_hint = 0.0
        tries = 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff, max(self.backoff * 2 ** (attempt - 1), wait_hint))
                if self._cancelled.wait(delay):
                    break  # another sample of this call failed for good: stop retrying
            tries += 1
            try:
                body = self._attempt(url, path, payload)
                return body if parse is None else parse(body)
            except _Retry as r:
                last, wait_hint = r.reason, r.wait_hint
        raise BackendError(f"No answer from {url} after {tries} {'try' if tries == 1 else 'tries'} "
                           f"({last}). {_START_HINT}")

    def _attempt(self, url: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One POST: the JSON object answered, :class:`_Retry`, or BackendError (not retried)."""
        import httpx

        try:
            response = self._client.post(path, json=payload)
        except httpx.TimeoutException:
            raise _Retry(f"no answer within the {self.timeout:g}s timeout") from None
        except httpx.RemoteProtocolError as e:
            raise _Retry(f"the answer was cut off ({_one_line(e, 120) or type(e).__name__})") from None
        except httpx.TransportError as e:
            raise _Retry(f"could not connect ({_one_line(e) or type(e).__name__})") from None
        code = response.status_code
        if code in RETRY_STATUS or code >= 500:
            raise _Retry(f"HTTP {code}: {_server_message(response)}", retry_after(response.headers.get("retry-after")))
        if code >= 400:
            hint = _CLIENT_ERROR_HINTS.get(code, "")
            raise BackendError(f"{url} rejected the request (HTTP {code}): {_server_message(response)}{hint}")
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            raise _Retry(f"an answer that is not JSON: {_one_line(response.text, 80)!r}") from None
        if not isinstance(body, dict):
            raise _Retry(f"unexpected JSON: {_one_line(body, 80)}")
        return body

    # ------------------------------------------------------------ generation

    def _payload(self, request: GenerationRequest, seed: int) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": int(request.max_tokens),
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            "seed": int(seed),
            "n": 1,
            **self.extra_body,
        }
        stops = [s for s in request.stop if s][:MAX_SERVER_STOPS]
        if stops:
            payload["stop"] = stops
        if request.grammar is not None:
            payload.update(self._grammar_fields(request.grammar))
        if request.messages is not None and self.chat:
            payload["messages"] = request.messages
            return "chat/completions", payload
        payload["prompt"] = self.prompt_text(request)
        return "completions", payload

    def _grammar_mode(self) -> str:
        mode = self.grammar_mode
        if mode == "auto":
            if self._owned_by is None:
                self._served_model()
                self._owned_by = self._owned_by or ""  # asked once: a server without /models is not vLLM
            mode = "vllm" if (self._owned_by or "").lower() == "vllm" else "llamacpp"
        return mode

    def _grammar_fields(self, grammar: str) -> dict[str, Any]:
        """The body fields that carry a GBNF grammar to this server (see the module docstring)."""
        check_grammar(grammar)
        mode = self._grammar_mode()
        if mode == "llamacpp":
            return {"grammar": grammar}
        if mode == "vllm":
            return {"structured_outputs": {"grammar": grammar}}
        if mode == "vllm-guided":
            return {"guided_grammar": grammar}
        raise BackendError(f"A request asks for grammar-constrained output, but grammar_mode=none says the server "
                           f"at {self.base_url} cannot constrain it; pass -o grammar_mode=llamacpp or vllm.")

    def _sample(self, request: GenerationRequest, index: int) -> tuple[Completion | None, int]:
        """One request for sample ``index``; (None, 0) when the server sent no choice back."""
        seed = request.seeds[index]
        if request.max_tokens <= 0:  # servers reject max_tokens=0 (or read it as "unlimited")
            return Completion("", index, seed, 0, "length"), 0
        path, payload = self._payload(request, seed)
        return self._post(path, payload, parse=lambda body: parse_completion(body, path == "chat/completions",
                                                                              request, index))

    def _pool(self, jobs: int) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, jobs)),
                                  thread_name_prefix="rationales-openai")

    @property
    def samples_in_flight(self) -> int:
        return self.concurrency

    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        """One HTTP request per (request, seed), ``concurrency`` at a time.

        ``on_sample`` runs in the calling thread as each sample arrives. If a sample fails for
        good, pending ones are cancelled and the BackendError propagates (samples already passed
        to ``on_sample`` stay delivered).
        """
        completions: list[list[Completion]] = [[] for _ in requests]
        prompt_tokens = [0] * len(requests)
        jobs = [(r_i, i) for r_i, req in enumerate(requests) for i in range(req.n)]
        for req in requests:
            if req.grammar is not None:
                self._grammar_fields(req.grammar)  # refuse a bad grammar or mode before any request
        failure: BaseException | None = None
        if jobs:
            self._cancelled.clear()
            pool = self._pool(len(jobs))
            try:
                futures: dict[Future, int] = {
                    pool.submit(self._sample, requests[r_i], i): r_i for r_i, i in jobs}
                for fut in as_completed(futures):
                    r_i = futures[fut]
                    try:
                        comp, p_tokens = fut.result()
                    except CancelledError:
                        continue
                    except BackendError as e:
                        if failure is None:  # give up: cancel what has not started, keep what finishes
                            failure = e
                            self._cancelled.set()
                            for other in futures:
                                other.cancel()
                        continue
                    prompt_tokens[r_i] = max(prompt_tokens[r_i], p_tokens)
                    if comp is None:
                        continue
                    completions[r_i].append(comp)
                    if on_sample:
                        on_sample(r_i, comp)
            finally:
                self._cancelled.set()
                pool.shutdown(wait=True, cancel_futures=True)
                self._cancelled.clear()
        if failure is not None:
            raise failure
        return [GenerationResult(req, sorted(comps, key=lambda c: c.index), prompt_tokens=pt)
                for req, comps, pt in zip(requests, completions, prompt_tokens)]

    # ------------------------------------------------------------ scoring

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """ChatML by default, or the Jinja2 ``chat_template`` given to the constructor."""
        if not self.chat_template:
            return super().render(messages, add_generation_prompt)
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            self._template = env.from_string(self.chat_template)
        return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token="", eos_token="")

    def _echo(self, full: str, top_k: int) -> _Echo:
        """One completions request that echoes ``full`` with per-token logprobs."""
        payload = {"model": self.model, "prompt": full, "max_tokens": 1, "temperature": 0.0,
                   "echo": True, "logprobs": int(top_k), "seed": 0}
        no_echo = (f"The server at {self.base_url} does not return prompt logprobs (completions with "
                   "echo=True and logprobs), which scoring needs; use the llamacpp or transformers "
                   "backend, or a server that supports it (llama-cpp-python's server, vLLM).")
        try:
            body = self._post("completions", payload)
        except BackendError as e:
            if "rejected the request" in str(e):
                raise BackendError(f"{e} -- {no_echo}") from None
            raise
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}

        def listed(key: str) -> list[Any]:
            value = lp.get(key)
            return list(value) if isinstance(value, list) else []

        tokens = [str(t) for t in listed("tokens")]
        values, offsets = listed("token_logprobs"), listed("text_offset")
        tops = listed("top_logprobs") if "top_logprobs" in lp else [None] * len(tokens)
        text = str(choice.get("text") or "")
        if (not tokens or not text.startswith(full)
                or not len(tokens) == len(values) == len(offsets) == len(tops)
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not all(v is None or isinstance(v, (int, float)) for v in values)
                or not all(t is None or isinstance(t, dict) for t in tops)):
            raise BackendError(no_echo)
        # Generated tokens start at len(full) (llama-cpp-python does not list them at all).
        n = sum(1 for o in offsets if int(o) < len(full))
        return _Echo(tokens[:n], values[:n], [int(o) for o in offsets[:n]], tops[:n])

    def _continuation_tokens(self, echo: _Echo, prompt: str, full: str) -> list[int]:
        """Indices of the echoed tokens that overlap the continuation.

        Offsets are anchored at the end of the text: llama-cpp-python's offsets leave out the
        BOS and special tokens' text, which shifts every offset before the continuation.
        """
        if not echo.tokens:
            return []
        last = len(echo.tokens) - 1
        shift = len(full) - (echo.offsets[last] + len(echo.tokens[last]))
        picked = []
        for k in range(last, -1, -1):
            end = (echo.offsets[k + 1] if k < last else echo.offsets[k] + len(echo.tokens[k])) + shift
            if end <= len(prompt):
                break
            picked.append(k)
        return picked[::-1]

    def _aligned(self, full: str, echo: _Echo) -> bool:
        """Whether ``token_logprobs[i]`` really is log P(token i | tokens < i).

        llama-cpp-python's server (0.3.x) reports, for prompts that do not start with a BOS
        token, log P(token i | tokens <= i) instead: every value is shifted by one position
        (abetlen/llama-cpp-python#1983). ``top_logprobs[i - 1]`` then holds the right
        distribution for token i. Which case applies is told apart by where the tokens are the
        top-1 choice; undecided prompts get one calibration request with the same first token.
        """
        key = full[:32]
        with self._lock:
            known = self._alignment.get(key)
        if known is not None:
            return known
        verdict = _alignment_verdict(echo)
        if verdict is None:
            probe = self._echo(key + _CALIBRATION_TEXT, 5)
            verdict = _alignment_verdict(probe)
        verdict = True if verdict is None else verdict  # no signal: assume the standard meaning
        with self._lock:
            self._alignment[key] = verdict
        return verdict

    def _score(self, prompt: str, continuation: str) -> ContinuationScore:
        if not continuation:
            return ContinuationScore(continuation, 0.0, [])
        full = prompt + continuation
        echo = self._echo(full, 5)
        picked = self._continuation_tokens(echo, prompt, full)
        if self._aligned(full, echo):
            values = [float(echo.values[k]) for k in picked if echo.values[k] is not None]
            return ContinuationScore(continuation, float(sum(values)), values)
        for attempt, top_k in enumerate(dict.fromkeys((5, self.echo_top_k))):
            if attempt:
                echo = self._echo(full, top_k)
                picked = self._continuation_tokens(echo, prompt, full)
            shifted = [(echo.tops[k - 1] or {}).get(echo.tokens[k]) if k > 0 else None for k in picked]
            if all(v is not None for v in shifted):
                values = [float(v) for v in shifted]
                return ContinuationScore(continuation, float(sum(values)), values)
        raise BackendError(
            f"The server at {self.base_url} reports prompt logprobs shifted by one token (a known "
            "llama-cpp-python server bug for prompts without a BOS token) and the exact value of a "
            f"continuation token is outside its top {self.echo_top_k} (--backend-opt echo_top_k=N raises "
            "that); score with --backend llamacpp or transformers instead.")

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        """Sum of log P(continuation token | everything before it), one echo request each.

        Tokens straddling the prompt/continuation boundary count toward the continuation.
        """
        text = prompt if isinstance(prompt, str) else self.render(prompt)
        conts = list(continuations)
        if not conts:
            return []
        pool = self._pool(len(conts))
        try:
            futures = [pool.submit(self._score, text, c) for c in conts]
            wait(futures, return_when=FIRST_EXCEPTION)
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ misc

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()
