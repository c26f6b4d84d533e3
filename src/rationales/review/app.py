"""The review app (Starlette): browse, read, label, write feedback, patch, export.

``create_app(ReviewConfig(store=...))`` returns an ASGI app; ``rationales review`` serves it
with uvicorn. Pages are Jinja2 templates with autoescaping on; the only script is the app's
own ``static/review.js`` (keyboard labelling). Reads and writes go through
``rationales.store.Store``, one connection per server thread, so each label write is its own
``BEGIN IMMEDIATE`` transaction that SQLite serialises against every other writer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..answers import normalize
from ..errors import RationalesError
from ..records import Rationale
from ..store import Store
from . import labels as L
from . import queries as Q
from . import render as R
from .security import CSRF_FIELD, SecurityMiddleware

PACKAGE_DIR = Path(__file__).parent
TEMPLATES = PACKAGE_DIR / "templates"


@dataclass
class ReviewConfig:
    """Settings of one review server. ``backend_factory`` builds the backend that patches
    rationales with feedback, on first use (None: patching is off)."""

    store: str | Path
    user: str = "reviewer"
    token: str | None = None
    allowed_hosts: list[str] | None = None  # None: any Host header (tests); the CLI sets it
    backend_factory: Callable[[], Any] | None = None
    backend_label: str = ""
    patch_max_tokens: int = 512

    def __post_init__(self) -> None:
        self.user = (self.user or "").strip()
        if not self.user or len(self.user) > 100:
            raise RationalesError("The labeller name (--user) must be 1-100 characters.")
        if self.token is not None and len(self.token) < 8:
            raise RationalesError("The review token (--token) must be at least 8 characters.")
        if not 1 <= self.patch_max_tokens <= 1 << 16:
            raise RationalesError("patch_max_tokens must be between 1 and 65536.")
        if not Path(self.store).is_file():
            raise RationalesError(f"Store {self.store} does not exist; pass --store with a rationales SQLite file "
                                  "(made by rationales run / verify / compare).")
        Store(self.store, create=False).close()  # an unreadable store fails here, in one line, not per page


class _Stores:
    """One ``Store`` connection per server thread (SQLite connections are not shared)."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        self.all: list[Store] = []
        self.lock = threading.Lock()

    def get(self) -> Store:
        st = getattr(self.local, "store", None)
        if st is None:
            st = Store(self.path)
            self.local.store = st
            with self.lock:
                self.all.append(st)
        return st

    def close(self) -> None:
        with self.lock:
            for st in self.all:
                st.close()
            self.all.clear()


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["math"] = R.math_html
    env.filters["sign"] = R.sign_text
    env.filters["signcls"] = R.sign_class
    env.filters["num"] = lambda x, d=3: "" if x is None else (f"{x:.{d}g}" if isinstance(x, float) else str(x))
    env.filters["when"] = lambda t: "" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
    env.filters["short"] = lambda s, n=90: s if len(s or "") <= n else (s[:n - 1] + "…")
    env.globals["qs"] = lambda d: urlencode({k: v for k, v in d.items() if v not in (None, "")})
    return env


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def create_app(cfg: ReviewConfig) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    stores = _Stores(Path(cfg.store))
    env = _env()
    patch_lock = threading.Lock()
    backend_box: dict[str, Any] = {}

    def html(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("title", "")
        body = env.get_template(name).render(user=cfg.user, csrf=request.scope.get("state", {}).get("csrf", ""),
                                             csrf_field=CSRF_FIELD, store_path=str(cfg.store), request=request, **ctx)
        return HTMLResponse(body, status_code=status)

    def error(request: Request, message: str, status: int = 400) -> HTMLResponse:
        return html(request, "error.html", status=status, title="error", message=message)

    def filters_of(request: Request) -> Q.Filters:
        return Q.Filters.from_params(dict(request.query_params))

    # ---------------------------------------------------------------- pages
    def home(request: Request) -> Response:
        st = stores.get()
        kinds = dict(st.conn.execute("SELECT kind, COUNT(*) FROM checks GROUP BY kind ORDER BY kind").fetchall())
        facets = Q.facets(st)
        sources = set(facets["source"])
        runs = []
        for run in reversed(st.runs()[-50:]):
            conf = run["config"] if isinstance(run.get("config"), dict) else {}
            summ = run["summary"] if isinstance(run.get("summary"), dict) else {}
            task, model = conf.get("task") or summ.get("task"), summ.get("model") or conf.get("model")
            link = {"source": task if task in sources else "", "model": model or ""}
            runs.append({**run, "task": task, "model": model, "link": link,
                         "accuracy": _dig(summ, "strategies", "greedy", "accuracy")})
        return html(request, "home.html", title="review", counts={t: st.count(t) for t in ("problems", "rationales")},
                    kinds=kinds, progress=Q.progress(st, cfg.user), agreement=Q.agreement(st),
                    runs=runs, trees=Q.tree_keys(st)[:100], facets=facets)

    def rationales_page(request: Request) -> Response:
        try:
            f = filters_of(request)
        except Q.FilterError as e:
            return error(request, str(e))
        st = stores.get()
        rows, total = Q.list_rationales(st, f, cfg.user)
        return html(request, "rationales.html", title="rationales", rows=rows, total=total, f=f,
                    params=f.params(), facets=Q.facets(st), page_size=Q.PAGE_SIZE,
                    prev_page=f.params(page=f.page - 1) if f.page > 0 else None,
                    next_page=f.params(page=f.page + 1) if (f.page + 1) * Q.PAGE_SIZE < total else None)

    def problems_page(request: Request) -> Response:
        qp = request.query_params
        page = qp.get("page", "0")
        if not page.isdigit():
            return error(request, f"page={page!r} must be a whole number >= 0.")
        st = stores.get()
        rows, total = Q.list_problems(st, source=qp.get("source", ""), q=qp.get("q", ""), page=int(page))
        return html(request, "problems.html", title="problems", rows=rows, total=total,
                    source=qp.get("source", ""), q=qp.get("q", ""), sources=Q.facets(st)["source"], page=int(page),
                    more=(int(page) + 1) * Q.PAGE_SIZE < total)

    def problem_page(request: Request) -> Response:
        st = stores.get()
        pid = request.path_params["pid"]
        problem = st.get_problem(pid)
        if problem is None:
            return error(request, f"No problem with id {pid!r} in this store.", 404)
        internal = request.query_params.get("internal") == "1"
        rs = [r for r in st.rationales(problem_id=pid) if internal or r.method not in Q.HIDDEN_METHODS]
        rs.sort(key=lambda r: (r.method, not r.sampling.greedy, r.sample_index, r.id))  # greedy first
        votes = []
        by_method: dict[str, list[Rationale]] = {}
        for r in rs:
            by_method.setdefault(r.method, []).append(r)
        for method, group in by_method.items():
            answered = [r for r in group if r.answer is not None]
            if len(group) < 2 or not answered:
                continue
            key = {r.id: normalize(r.answer) or r.answer for r in answered}  # "15", "15.0", "$15" vote together
            tally = Counter(key[r.id] for r in answered)
            top, count = tally.most_common(1)[0]
            right = next((r.correct for r in answered if key[r.id] == top), None)
            votes.append({"method": method, "answer": top, "share": count / len(answered), "correct": right,
                          "tally": tally.most_common(8), "n": len(group)})
        cards = [{"r": r, "steps": R.step_views(r, cfg.user)} for r in rs]
        hidden = sum(1 for r in st.rationales(problem_id=pid) if r.method in Q.HIDDEN_METHODS) if not internal else 0
        return html(request, "problem.html", title="problem", problem=problem, cards=cards, votes=votes,
                    hidden=hidden)

    def rationale_page(request: Request) -> Response:
        st = stores.get()
        rid = request.path_params["rid"]
        r = st.get_rationale(rid)
        if r is None:
            return error(request, f"No rationale with id {rid!r} in this store.", 404)
        try:
            f = filters_of(request)
        except Q.FilterError as e:
            return error(request, str(e))
        prev_id, next_id, pos, total = Q.neighbours(st, f, cfg.user, rid)
        params = f.params(page=0)
        link = (lambda i: None if i is None else f"/rationale/{i}" + (f"?{urlencode(params)}" if params else ""))
        problem = st.get_problem(r.problem_id)
        parent = st.get_rationale(r.parent_id) if r.parent_id else None
        patches = [c for c in st.rationales(parent_id=r.id) if c.method == "patch"]
        state = {"rid": r.id, "n_steps": len(r.steps), "prev": link(prev_id), "next": link(next_id),
                 "labels": {str(k): v for k, v in Q.human_labels(st, r.id, cfg.user).items()}}
        return html(request, "rationale.html", title=f"rationale {r.id}", r=r, problem=problem, parent=parent,
                    patches=patches, steps=R.step_views(r, cfg.user), spans=R.spans_html(r), state=state,
                    pos=pos, total=total, prev_url=link(prev_id), next_url=link(next_id), params=params,
                    progress=Q.progress(st, cfg.user, totals=False), agree=R.agreement_summary(r, cfg.user),
                    feedback=Q.feedback_of(st, r.id), trees=Q.trees_of(st, r.id),
                    can_patch=cfg.backend_factory is not None, backend_label=cfg.backend_label,
                    after_modes=L.AFTER_MODES)

    def tree_page(request: Request) -> Response:
        st = stores.get()
        key = request.query_params.get("key", "")
        data = st.get_blob(key) if key else None
        if not isinstance(data, dict):
            return error(request, f"No saved tree {key!r} in this store.", 404)
        rid = request.query_params.get("rationale", "")
        path_nodes: set[int] = set()
        if rid:
            r = st.get_rationale(rid)
            for s in r.steps if r else []:
                for c in s.checks:
                    if isinstance(c.detail.get("node"), int):
                        path_nodes.add(c.detail["node"])
        root = R.tree_view(data, path_nodes)
        return html(request, "tree.html", title="search tree", key=key, data=data, root=root, rid=rid,
                    n_nodes=len(data.get("nodes") or []))

    # ---------------------------------------------------------------- actions
    async def label_api(request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "Send a JSON object."}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "Send a JSON object."}, status_code=400)

        def work() -> dict[str, Any]:
            st = stores.get()
            rid = str(body.get("rationale_id") or "")
            op = body.get("op", "set")
            r = st.get_rationale(rid)
            if r is None:
                raise L.LabelError(f"No rationale with id {rid!r} in this store.")
            if op == "set":
                raw = body.get("labels")
                if not isinstance(raw, dict):
                    raise L.LabelError('op "set" needs "labels": {"step index": 1 | 0 | -1 | null}.')
                try:
                    changes = {int(k): (None if v is None else int(v)) for k, v in raw.items()}
                except (TypeError, ValueError):
                    raise L.LabelError("Labels must map step indexes to 1, 0, -1 or null.") from None
            elif op in ("first_error", "all_correct"):
                step = body.get("step") if op == "first_error" else None
                if op == "first_error" and not isinstance(step, int):
                    raise L.LabelError('op "first_error" needs "step": the index of the first wrong step.')
                indexes = [s.index for s in r.steps]
                if step is not None and step not in indexes:
                    raise L.LabelError(f"Rationale {rid} has no step {step}.")
                first = None if step is None else indexes.index(step)
                marks = L.first_error_changes(len(indexes), first, str(body.get("after", "unlabelled")))
                changes = {indexes[i]: v for i, v in marks.items()}
            else:
                raise L.LabelError(f"Unknown op {op!r}: use set, first_error or all_correct.")
            before, after = L.apply_labels(st, rid, cfg.user, changes)
            rr = st.get_rationale(rid)
            return {"previous": {str(k): v for k, v in before.items()},
                    "labels": {str(k): v for k, v in after.items()},
                    "agreement": R.agreement_summary(rr, cfg.user) if rr else {},
                    "progress": Q.progress(st, cfg.user, totals=False)}

        try:
            return JSONResponse(await run_in_threadpool(work))
        except RationalesError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    async def feedback_post(request: Request) -> Response:
        rid = request.path_params["rid"]
        form = await request.form()
        text = str(form.get("feedback") or "")
        apply = form.get("apply") == "1"
        back = str(form.get("back") or "")

        def work() -> str:
            st = stores.get()
            row = L.add_feedback(st, rid, cfg.user, text)
            if not apply:
                return f"/rationale/{rid}" + (f"?{back}" if back else "") + "#feedback"
            if cfg.backend_factory is None:
                raise RationalesError("Patching is off: start rationales review with --backend/--model to apply "
                                      "feedback (it was stored).")
            patch_id = _patch(st, rid, row)
            L.set_feedback_patch(st, row["key"], patch_id)
            return f"/rationale/{patch_id}"

        def _patch(st: Store, rid: str, row: dict[str, Any]) -> str:
            from ..jobs.methods.patch import FeedbackItem, patch_rationales, resolve_items

            with patch_lock:
                if "backend" not in backend_box:
                    backend_box["backend"] = cfg.backend_factory()
                triples = resolve_items([FeedbackItem(rid, row["feedback"], source="review")], st)
                (res,) = patch_rationales(triples, backend_box["backend"], st, max_tokens=cfg.patch_max_tokens)
            return res.patch.id

        try:
            target = await run_in_threadpool(work)
        except RationalesError as e:
            return error(request, str(e), 400)
        return RedirectResponse(target, status_code=303)

    # ---------------------------------------------------------------- exports
    def export_human(request: Request) -> Response:
        st = stores.get()
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in Q.human_label_rows(st))
        return Response(body, media_type="application/x-ndjson",
                        headers={"content-disposition": 'attachment; filename="human_labels.jsonl"'})

    def export_feedback(request: Request) -> Response:
        st = stores.get()
        body = "".join(json.dumps({"rationale_id": f["rationale_id"], "feedback": f["feedback"], "by": f.get("by"),
                                   "at": f.get("at"), "patch_id": f.get("patch_id")}, ensure_ascii=False) + "\n"
                       for f in Q.all_feedback(st))
        return Response(body, media_type="application/x-ndjson",
                        headers={"content-disposition": 'attachment; filename="feedback.jsonl"'})

    def shutdown() -> None:
        stores.close()
        be = backend_box.pop("backend", None)
        if be is not None and hasattr(be, "close"):
            be.close()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        shutdown()

    routes = [
        Route("/", home), Route("/rationales", rationales_page), Route("/problems", problems_page),
        Route("/problem/{pid}", problem_page), Route("/rationale/{rid}", rationale_page),
        Route("/tree", tree_page),
        Route("/api/label", label_api, methods=["POST"]),
        Route("/rationale/{rid}/feedback", feedback_post, methods=["POST"]),
        Route("/export/human_labels.jsonl", export_human), Route("/export/feedback.jsonl", export_feedback),
        Mount("/static", app=StaticFiles(directory=str(TEMPLATES / "static")), name="static"),
    ]
    async def internal_error(request: Request, exc: Exception) -> Response:
        # a bug of ours: one line, no traceback in the page; stored work is untouched
        return Response(f"internal error {type(exc).__name__}: {exc}. Stored labels and feedback are kept; "
                        "rerun with RATIONALES_DEBUG=1 for the traceback and report it.", status_code=500,
                        media_type="text/plain")

    debug = bool(os.environ.get("RATIONALES_DEBUG"))
    app = Starlette(routes=routes, lifespan=lifespan, debug=debug,
                    exception_handlers={} if debug else {Exception: internal_error},
                    middleware=[Middleware(SecurityMiddleware, token=cfg.token, allowed_hosts=cfg.allowed_hosts)])
    app.state.close = shutdown
    return app
