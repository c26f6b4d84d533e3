"""Scale-out on Ray Data: any backend, as a pool of Ray actors, behind the same protocol.

``RayBackend`` is a :class:`~rationales.backends.base.Backend` whose ``generate`` ships the
requests it is given to a Ray Data pipeline (``map_batches`` over an actor pool, one backend
instance per actor: a llama.cpp model with its own threads, an OpenAI-compatible client with its
own bounded concurrency, a Hugging Face model on its own GPU) and calls ``on_sample`` on the
driver as each sample streams back. Because every stage (generate, MC rollouts, step search,
GroundedPRM trees, PRM and judge calls) already goes through a backend, every job runs on Ray
unchanged, and everything that makes a run worth having stays where it was:

* the driver filters out stored sample ids *before* dispatch (``rationales.generate``), so only
  missing work reaches the cluster;
* each sample is committed to the store by the driver the moment it arrives (the store stays
  the one source of truth; workers never write to it);
* seeds are explicit per sample, so the same seeds give the same samples on 1 or 100 workers;
* a worker that dies is restarted and its batch retried by Ray (bounded: ``max_restarts``,
  ``max_task_retries``); a sample that arrives twice is committed once (content-addressed ids
  and a per-call set of delivered samples);
* a request that keeps failing is recorded as that request's error and the rest of the job
  goes on; the caller then sees one clean error naming how many samples failed, with every
  finished sample stored.

Executors (``executor=``):

* ``actors`` (default): a persistent pool of Ray actors, each holding one backend, fed batches
  of requests (at most two in flight per actor) and streamed back with ``ray.wait``. The actors
  live as long as the backend, so the many small ``generate`` calls of step search, MCTS and
  MC rollouts cost one remote call each, not a pipeline start.
* ``data``: a Ray Data ``map_batches`` over an actor pool of the same UDF, one pipeline per
  ``generate`` call: for one large bulk call (a whole ``run`` on an autoscaling cluster). Each
  call starts its actors anew (seconds; ``benchmarks/scale.py`` measures it), which is why it is
  not the default.
* ``http``: Ray Data LLM's ``HttpRequestProcessorConfig`` against an OpenAI-compatible server
  (vLLM, llama.cpp server): one HTTP request per sample with its own seed (servers such as
  llama.cpp's ignore ``n``); Ray retries each request ``max_retries`` times with backoff.
* ``vllm``: Ray Data LLM's ``vLLMEngineProcessorConfig`` (GPU clusters; ``model_source`` is the
  model, ``engine_kwargs`` go to vLLM), with ``should_continue_on_error`` so a failed row is
  recorded as an error instead of killing the job.

``logprobs`` and chat rendering go to the pool's actors (the ``data`` executor keeps one actor
for them); the http and vllm executors serve generation only.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import warnings
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from ..backends.base import (Backend, BackendOptions, Completion, ContinuationScore, GenerationRequest,
                             GenerationResult, Messages, OnSample, backend_class, get_backend)
from ..errors import BackendError, RationalesError


class RayOptions(BackendOptions):
    """How to run a backend on Ray. ``inner``/``inner_options`` name the backend each actor holds."""

    inner: str = "llamacpp"
    inner_options: dict[str, Any] = Field(default_factory=dict)
    address: str | None = None  # None: a local Ray with num_cpus; "auto" or ray://host:port: a cluster
    actors: int = Field(2, ge=1, le=4096)
    batch_size: int = Field(4, ge=1, le=10_000)  # requests per actor call (llama.cpp batches them)
    num_cpus: float = Field(1.0, ge=0.0, le=256.0)  # per actor
    num_gpus: float = Field(0.0, ge=0.0, le=64.0)  # per actor
    local_cpus: int | None = Field(None, ge=1, le=4096)  # ray.init(num_cpus=) of a local Ray
    object_store_mb: int = Field(256, ge=64, le=1_000_000)  # a local Ray's object store
    max_restarts: int = Field(4, ge=0, le=100)
    max_task_retries: int = Field(4, ge=0, le=100)
    executor: Literal["actors", "data", "http", "vllm"] = "actors"
    url: str | None = None  # http executor: the server's /v1 base URL
    headers: dict[str, str] = Field(default_factory=dict)
    qps: float | None = Field(None, gt=0.0, le=1e6)
    max_retries: int = Field(3, ge=0, le=20)  # http executor: per request
    model_source: str | None = None  # vllm executor
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v.rstrip("/") if v else v


# ---------------------------------------------------------------- Ray session

def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, object_store_mb: int = 256) -> Any:
    """Connect to a Ray cluster (``address``) or start a small local one; idempotent."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RationalesError("Scale-out needs Ray: pip install 'rationales[ray]'.") from e
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                                  configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 2, object_store_memory=object_store_mb * 2**20,
                     **kwargs)
    except ConnectionError as e:
        raise RationalesError(f"Cannot reach the Ray cluster at {address} ({e}); start it with `ray start "
                              "--head` or drop the address to run a local Ray.") from e
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray


# ---------------------------------------------------------------- worker side

def _completion_row(tag: int, comp: Completion | None, seed: int, index: int, error: str = "") -> dict[str, Any]:
    return {"tag": tag, "index": index, "seed": seed, "text": comp.text if comp else "",
            "tokens": comp.tokens if comp else 0, "finish_reason": comp.finish_reason if comp else "",
            "prompt_tokens": comp.prompt_tokens if comp else 0,
            "logprobs": json.dumps(comp.logprobs) if comp and comp.logprobs is not None else "",
            "error": error, "worker": os.getpid()}


#: the columns of a completion row, in order
ROW_COLUMNS = tuple(_completion_row(0, None, 0, 0))


class GenerateUDF:
    """Ray Data callable class: one backend per actor; a batch of pickled requests in, one row
    per finished sample out. A failing request is retried alone, then returned as error rows."""

    def __init__(self, backend_name: str, backend_options: dict[str, Any]):
        self.backend = get_backend(backend_name, **backend_options)

    def _run(self, requests: list[GenerationRequest], tags: list[int]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for res_i, res in enumerate(self.backend.generate(requests)):
            for comp in res.completions:
                rows.append(_completion_row(tags[res_i], comp, comp.seed, comp.index))
        return rows

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        return self.run(batch)

    def run(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        tags = [int(t) for t in batch["tag"]]
        requests = [pickle.loads(b) for b in batch["request"]]
        try:
            rows = self._run(requests, tags)
        except Exception:  # noqa: BLE001 - isolate the failing request(s), keep the others
            rows = []
            for tag, req in zip(tags, requests):
                try:
                    rows.extend(self._run([req], [tag]))
                except Exception as e:  # noqa: BLE001 - recorded as this request's error
                    msg = f"{type(e).__name__}: {e}"[:500]
                    rows.extend(_completion_row(tag, None, seed, i, msg) for i, seed in enumerate(req.seeds))
        return {c: [r[c] for r in rows] for c in ROW_COLUMNS}


class PoolActor(GenerateUDF):
    """A long-lived actor of the ``actors`` executor: generation batches, ``logprobs``, rendering."""

    def info(self) -> dict[str, Any]:
        return {"model": self.backend.model, "chat": self.backend.chat, "describe": self.backend.describe()}

    def render(self, messages: Messages, add_generation_prompt: bool) -> str:
        return self.backend.render(messages, add_generation_prompt=add_generation_prompt)

    def logprobs(self, prompt: str | Messages, continuations: list[str]) -> list[ContinuationScore]:
        return self.backend.logprobs(prompt, continuations)


# ---------------------------------------------------------------- driver side

class RayBackend(Backend):
    """A backend spread over Ray actors (see the module docstring)."""

    name = "ray"
    Options = RayOptions
    #: several drivers may share one store: ``generate`` claims sample ids before dispatch
    claims_work = True

    @property
    def min_chunk(self) -> int:
        """Requests per ``generate`` call that keep every actor busy (two batches in flight each)."""
        return 2 * self.options.actors * self.options.batch_size

    def __init__(self, **raw: Any):
        self.options: RayOptions = self.parse_options(**raw)
        o = self.options
        # the inner backend's options are checked here, before any actor starts
        backend_class(o.inner).parse_options(**o.inner_options)
        if o.executor == "http" and not o.url:
            raise BackendError("The http executor needs url= (the server's /v1 base URL), e.g. "
                               "-o url=http://127.0.0.1:8000/v1.")
        if o.executor == "vllm" and not o.model_source:
            raise BackendError("The vllm executor needs model_source= (a Hugging Face model name or path).")
        self.ray = ensure_ray(o.address, num_cpus=o.local_cpus, object_store_mb=o.object_store_mb)
        self.name = o.inner  # summaries name the backend that generated, as in a single-process run
        self._pool: list[Any] = []
        self._next = 0
        self._render_cache: dict[str, str] = {}
        self.failed: list[str] = []  # errors of the last generate() call, one per failed sample
        if o.executor in ("actors", "data"):
            # the pool also serves logprobs and rendering for the data executor (one actor there)
            actor = self.ray.remote(PoolActor).options(
                num_cpus=o.num_cpus if o.executor == "actors" else 0, num_gpus=o.num_gpus if o.executor == "actors" else 0,
                max_restarts=o.max_restarts, max_task_retries=o.max_task_retries)
            self._pool = [actor.remote(o.inner, o.inner_options) for _ in range(o.actors if o.executor == "actors" else 1)]
            info = self._call(self._pool[0].info.remote())
            self.model, self.chat = info["model"], info["chat"]
            self._describe = info["describe"]
        else:
            self.model = str(o.inner_options.get("model") or o.model_source or "served")
            self.chat = True
            self._describe = {"backend": o.executor, "model": self.model}

    def _call(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a dead actor or a failing backend: one line
            cause = getattr(e, "cause", None) or e
            if isinstance(cause, RationalesError):
                raise BackendError(str(cause)) from None
            raise BackendError(f"Ray actor for the {self.options.inner} backend failed ({type(cause).__name__}: "
                               f"{str(cause)[:300]}).") from None

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {**self._describe, "ray": {"executor": o.executor, "actors": o.actors, "address": o.address or "local"}}

    # ------------------------------------------------------------ protocol
    def _actor(self) -> Any:
        self._next = (self._next + 1) % len(self._pool)
        return self._pool[self._next]

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        if not self._pool:
            return super().render(messages, add_generation_prompt)
        key = json.dumps([messages, add_generation_prompt], sort_keys=True)
        if key not in self._render_cache:
            self._render_cache[key] = self._call(self._actor().render.remote(messages, add_generation_prompt))
        return self._render_cache[key]

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        if not self._pool:
            raise BackendError(f"The {self.options.executor} executor serves generation only; use the actors "
                               "executor (the default) for checks that need log-probabilities.")
        return self._call(self._actor().logprobs.remote(prompt, list(continuations)))

    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        requests = list(requests)
        results = [GenerationResult(r, []) for r in requests]
        self.failed = []
        if not requests:
            return results
        seen: set[tuple[int, int]] = set()
        for row in self._rows(requests):
            tag, index = int(row["tag"]), int(row["index"])
            if (tag, index) in seen:  # a retried batch may deliver a sample twice
                continue
            seen.add((tag, index))
            if row["error"]:
                self.failed.append(str(row["error"]))
                continue
            logprobs = json.loads(row["logprobs"]) if row.get("logprobs") else None
            comp = Completion(text=str(row["text"]), index=index, seed=int(row["seed"]), tokens=int(row["tokens"]),
                              finish_reason=str(row["finish_reason"] or "stop"), logprobs=logprobs,
                              prompt_tokens=int(row["prompt_tokens"]))
            results[tag].completions.append(comp)
            if on_sample:
                on_sample(tag, comp)
        for res in results:
            res.completions.sort(key=lambda c: c.index)
        if self.failed:
            total = sum(r.n for r in requests)
            raise BackendError(f"{len(self.failed)} of {total} samples failed on the Ray workers (first: "
                               f"{self.failed[0][:200]}); the {total - len(self.failed)} finished ones are stored: "
                               "run the same command again to retry the rest.")
        return results

    # ------------------------------------------------------------ executors
    def _remote_args(self) -> dict[str, Any]:
        o = self.options
        return {"max_restarts": o.max_restarts, "max_task_retries": o.max_task_retries}

    def _rows(self, requests: list[GenerationRequest]) -> Any:
        o = self.options
        import ray.data

        if o.executor == "actors":
            return self._pool_rows(requests)
        if o.executor == "data":
            items = [{"tag": i, "request": pickle.dumps(r)} for i, r in enumerate(requests)]
            n_blocks = max(1, min(len(items), math.ceil(len(items) / o.batch_size)))
            with warnings.catch_warnings():
                # Ray 2.60 deprecates ray_remote_args without a named replacement for restart bounds;
                # unbounded restarts (its default) would spin forever on a backend that cannot load
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
                ds = ray.data.from_items(items, override_num_blocks=n_blocks).map_batches(
                    GenerateUDF, fn_constructor_kwargs={"backend_name": o.inner, "backend_options": o.inner_options},
                    batch_size=o.batch_size, concurrency=o.actors, num_cpus=o.num_cpus, num_gpus=o.num_gpus,
                    **self._remote_args())
            return self._iter(ds)
        items = [{"tag": i, "index": k, "seed": seed, "request": pickle.dumps(r)}
                 for i, r in enumerate(requests) for k, seed in enumerate(r.seeds)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * o.actors)))
        return self._iter(self._llm_processor()(ds))

    def _pool_rows(self, requests: list[GenerationRequest]) -> Any:
        """Batches of requests to the persistent actors, at most two in flight per actor, rows
        yielded as each batch finishes. A batch whose actor died past its restarts becomes error
        rows for its requests (the rest of the job goes on)."""
        o = self.options
        batches = [list(range(i, min(i + o.batch_size, len(requests)))) for i in range(0, len(requests), o.batch_size)]
        queue = list(reversed(batches))
        in_flight: dict[Any, tuple[int, list[int]]] = {}  # ref -> (actor index, request indices)
        load = [0] * len(self._pool)

        def submit() -> None:
            while queue:
                a = min(range(len(self._pool)), key=load.__getitem__)
                if load[a] >= 2:
                    return
                idx = queue.pop()
                batch = {"tag": idx, "request": [pickle.dumps(requests[i]) for i in idx]}
                in_flight[self._pool[a].run.remote(batch)] = (a, idx)
                load[a] += 1

        submit()
        while in_flight:
            [ref], _ = self.ray.wait(list(in_flight), num_returns=1)
            a, idx = in_flight.pop(ref)
            load[a] -= 1
            submit()
            try:
                cols = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the actor is gone for good: these requests failed
                msg = f"Ray worker lost ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
                for i in idx:
                    for k, seed in enumerate(requests[i].seeds):
                        yield _completion_row(i, None, seed, k, msg)
                continue
            keys = list(cols)
            for values in zip(*(cols[k] for k in keys)):
                yield dict(zip(keys, values))

    def _iter(self, ds: Any) -> Any:
        try:
            yield from ds.iter_rows()
        except RationalesError:
            raise
        except Exception as e:  # noqa: BLE001 - Ray wraps worker errors; say it in one line
            raise BackendError(f"The Ray job failed ({type(e).__name__}: {str(e).splitlines()[0][:300]}); every "
                               "finished sample is stored: run the same command again to resume.") from None

    def _llm_processor(self) -> Any:
        """A Ray Data LLM processor for the http / vllm executors (one row per sample)."""
        from ray.data.llm import build_processor

        o = self.options
        model = self.model

        def payload(req: GenerationRequest, seed: int) -> dict[str, Any]:
            body: dict[str, Any] = {"model": model, "temperature": req.temperature, "top_p": req.top_p,
                                    "max_tokens": req.max_tokens, "seed": seed}
            if req.stop:
                body["stop"] = list(req.stop)
            if req.messages is not None:
                body["messages"] = req.messages
            else:
                body["prompt"] = req.prompt
            return body

        if o.executor == "http":
            from ray.data.llm import HttpRequestProcessorConfig

            config = HttpRequestProcessorConfig(
                url=o.url + "/chat/completions", headers=o.headers, qps=o.qps, max_retries=o.max_retries,
                concurrency=o.actors, batch_size=o.batch_size)

            def pre(row: dict[str, Any]) -> dict[str, Any]:
                req = pickle.loads(row["request"])
                body = payload(req, int(row["seed"]))
                if "prompt" in body:  # the chat endpoint takes messages; a raw prompt is one user turn
                    body["messages"] = [{"role": "user", "content": body.pop("prompt")}]
                return {"tag": row["tag"], "index": row["index"], "seed": row["seed"], "payload": body}

            def post(row: dict[str, Any]) -> dict[str, Any]:
                resp = row.get("http_response") or {}
                try:
                    choice = resp["choices"][0]
                    text, error = choice["message"]["content"] or "", ""
                    finish = choice.get("finish_reason") or "stop"
                    usage = resp.get("usage") or {}
                except (KeyError, IndexError, TypeError):
                    text, error, finish, usage = "", f"unreadable server reply: {str(resp)[:200]}", "", {}
                return {"tag": row["tag"], "index": row["index"], "seed": row["seed"], "text": text,
                        "tokens": int(usage.get("completion_tokens") or max(1, len(text.split()))),
                        "finish_reason": finish, "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                        "logprobs": "", "error": error, "worker": 0}

            return build_processor(config, preprocess=pre, postprocess=post)

        from ray.data.llm import vLLMEngineProcessorConfig  # pragma: no cover - needs GPUs and vLLM

        config = vLLMEngineProcessorConfig(  # pragma: no cover
            model_source=o.model_source, engine_kwargs=o.engine_kwargs, concurrency=o.actors,
            batch_size=o.batch_size, should_continue_on_error=True)

        def vpre(row: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
            req = pickle.loads(row["request"])
            sampling = {"temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens,
                        "seed": int(row["seed"]), "stop": list(req.stop) or None}
            prompt = {"messages": req.messages} if req.messages is not None else {"prompt": req.prompt}
            return {"tag": row["tag"], "index": row["index"], "seed": row["seed"], "sampling_params": sampling, **prompt}

        def vpost(row: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
            error = str(row.get("__inference_error__") or "")
            text = str(row.get("generated_text") or "")
            return {"tag": row["tag"], "index": row["index"], "seed": row["seed"], "text": text,
                    "tokens": int(row.get("num_generated_tokens") or max(1, len(text.split()))),
                    "finish_reason": "stop", "prompt_tokens": int(row.get("num_input_tokens") or 0),
                    "logprobs": "", "error": error, "worker": 0}

        return build_processor(config, preprocess=vpre, postprocess=vpost)  # pragma: no cover

    def close(self) -> None:
        for actor in self._pool:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._pool = []


def wrap_with_ray(backend_name: str, backend_options: dict[str, Any], **ray_options: Any) -> RayBackend:
    """``--ray``: the named backend (with its options) run as a Ray actor pool."""
    return RayBackend(inner=backend_name, inner_options=backend_options, **ray_options)


def shutdown() -> None:
    """Stop the local Ray this process started (tests, end of a CLI command)."""
    try:
        import ray
    except ImportError:  # pragma: no cover
        return
    if ray.is_initialized():
        ray.shutdown()


__all__ = ["RayBackend", "RayOptions", "ensure_ray", "wrap_with_ray", "shutdown"]
