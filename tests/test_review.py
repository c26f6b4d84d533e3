"""`rationales review`: pages, filters, labels, CSRF/token checks, escaping, feedback and
patching, exports, over a real store, through Starlette's TestClient (plus the CLI served
for real in a subprocess)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser

import pytest

pytest.importorskip("starlette")
pytest.importorskip("latex2mathml")

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from test_review_data import XSS, build_store  # noqa: E402

from rationales.backends.fake import FakeBackend  # noqa: E402
from rationales.review import labels as L  # noqa: E402
from rationales.review.app import ReviewConfig, create_app  # noqa: E402
from rationales.review.queries import Filters, FilterError, human_label_rows  # noqa: E402
from rationales.review.render import MATHML_ATTRS, MATHML_TAGS, math_html, tree_view  # noqa: E402
from rationales.store import Store  # noqa: E402

CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture()
def built(tmp_path):
    path = tmp_path / "review.sqlite"
    info = build_store(path)
    info["path"] = path
    return info


def client(path, **kw):
    return TestClient(create_app(ReviewConfig(store=path, user=kw.pop("user", "ann"), **kw)))


def csrf_of(c: TestClient) -> str:
    return CSRF_RE.search(c.get("/").text).group(1)


def label(c, token, rid, **body):
    return c.post("/api/label", json={"rationale_id": rid, **body}, headers={"X-CSRF-Token": token})


def human(path, rid, user="ann"):
    with Store(path) as s:
        r = s.get_rationale(rid)
    return {st.index: [(c.verdict, c.by) for c in st.checks if c.kind == "human" and c.by == user] for st in r.steps}


# ------------------------------------------------------------------ pages and filters


def test_pages_render_with_the_store_contents(built):
    with client(built["path"]) as c:
        home = c.get("/")
        assert home.status_code == 200 and "4 problems" in home.text and "8 rationales" in home.text
        assert "grounded_mcts" in home.text  # the saved tree is listed
        assert 'href="/rationales?source=demo&amp;model=fake-model"' in home.text  # the run, linked to its rationales
        lst = c.get("/rationales")
        assert "8 rationales match" in lst.text
        assert all(rid[:10] in lst.text for rid in built["rationales"])
        probs = c.get("/problems")
        assert "Tom has 7 apples" in probs.text and "A pen costs $3" in probs.text
        apples = built["problems"][0]
        page = c.get(f"/problem/{apples.id}").text
        assert page.count("class=\"card ") == 3  # the three samples side by side
        # vote over the 3 samples: 15, 16, -1 -> one each; answers and scores shown
        assert "15 × 1" in page and "16 × 1" in page and "-1 × 1" in page and "judge" in page
        rid = built["rationales"][1]  # 7 + 8 = 16: the tool check fails
        r = c.get(f"/rationale/{rid}").text
        assert "7 + 8 = 16 → 15 ✗" in r  # the tool's evaluated expression
        assert 'class="chip vneg" data-kind="tool"' in r and 'data-kind="mc"' in r and 'data-kind="prm"' in r
        assert r.count('class="step"') == 3
        assert c.get("/rationale/nope").status_code == 404
        assert "No problem" in c.get("/problem/nope").text


def test_filters_select_exactly_the_matching_rationales(built):
    ids = built["rationales"]
    with Store(built["path"]) as s:
        truth = {r.id: r for r in s.rationales()}

    def listed(c, **params):
        text = c.get("/rationales", params=params).text
        return set(re.findall(r'<tr data-id="([0-9a-f]+)">', text))

    with client(built["path"]) as c:
        assert listed(c, correct="no") == {i for i, r in truth.items() if r.correct is False}
        assert listed(c, correct="yes") == {i for i, r in truth.items() if r.correct is True}
        assert listed(c, source="maths") == {ids[6]}
        assert listed(c, model="evil-model") == {built["xss"]}
        assert listed(c, model="fake-model", method="cot") == set(ids)
        assert listed(c, outcome="ok") == {i for i, r in truth.items() if r.outcome == "ok"}
        # PRM: first step's reward is 0.9 - 0.1 k for the k-th sample; judge = 1 + k % 5
        assert listed(c, prm_min="0.55") == set(ids[:4])
        assert listed(c, prm_max="0.45") == set(ids[5:7])
        assert listed(c, judge_min="4", judge_max="5") == {ids[3], ids[4]}
        # text search over the rationale text, the question and the answer
        assert listed(c, q="7 + 8 = 16") == {ids[1]}
        assert listed(c, q="pen") == set(ids[3:6])
        assert listed(c, q="100%_x") == set()
        assert listed(c, problem_id=built["problems"][1].id) == set(ids[3:6])
        # nothing disagrees yet (each step has one checker); a human -1 against the tool's +1 does
        assert listed(c, disagree="1") == set()
        token = csrf_of(c)
        assert label(c, token, ids[0], labels={"1": -1}).status_code == 200
        assert listed(c, disagree="1") == {ids[0]}
        # unlabelled: every rationale with steps, until one is fully labelled by this user
        assert listed(c, unlabelled="1") == set(truth)
        assert label(c, token, ids[0], op="all_correct").status_code == 200
        assert listed(c, unlabelled="1") == set(truth) - {ids[0]}
        bad = c.get("/rationales", params={"prm_min": "abc"})
        assert bad.status_code == 400 and "prm_min=&#39;abc&#39; is not a number" in bad.text


def test_next_and_previous_follow_the_filtered_list_and_survive_labelling(built):
    ids = built["rationales"]
    with client(built["path"]) as c:
        page = c.get(f"/rationale/{ids[2]}", params={"correct": "no"}).text
        assert f'href="/rationale/{ids[1]}?correct=no" id="prev"' in page
        assert f'href="/rationale/{ids[4]}?correct=no" id="next"' in page and "2 / 4 in this list" in page
        label(c, csrf_of(c), ids[1], op="all_correct")  # rewriting a record must not reorder the list
        page = c.get(f"/rationale/{ids[2]}", params={"correct": "no"}).text
        assert f'href="/rationale/{ids[1]}?correct=no" id="prev"' in page and "2 / 4 in this list" in page
        outside = c.get(f"/rationale/{ids[0]}", params={"correct": "no"}).text
        assert "not in the current filter (4 match)" in outside and f'href="/rationale/{ids[1]}?correct=no"' in outside


def test_derived_records_are_listed_only_when_asked_for(built):
    from rationales.records import Rationale

    with Store(built["path"]) as s:
        parent = s.get_rationale(built["rationales"][0])
        s.put_rationale(Rationale(id="rollout1", problem_id=parent.problem_id, prompt_id="p", model="fake-model",
                                  method="mc_rollout", parent_id=parent.id, text="rollout text", correct=False))
    with client(built["path"]) as c:
        assert "rollout1" not in c.get("/rationales").text and "8 rationales match" in c.get("/rationales").text
        assert '<tr data-id="rollout1">' in c.get("/rationales", params={"internal": "1"}).text
        only = c.get("/rationales", params={"method": "mc_rollout"}).text
        assert '<tr data-id="rollout1">' in only and "1 rationale matches" in only
        page = c.get(f"/problem/{parent.problem_id}").text
        assert page.count('class="card ') == 3 and "1 derived records" in page and "rollout text" not in page
        assert c.get(f"/problem/{parent.problem_id}", params={"internal": "1"}).text.count('class="card ') == 4


def test_filters_parse_and_roundtrip():
    f = Filters.from_params({"correct": "no", "prm_min": "0", "disagree": "on", "q": " x ", "page": "2"})
    assert (f.correct, f.prm_min, f.disagree, f.q, f.page) == ("no", 0.0, True, "x", 2)
    assert Filters.from_params(f.params()) == f
    assert f.params(page=0) == {"correct": "no", "disagree": "1", "prm_min": "0", "q": "x"}
    for bad in ({"correct": "maybe"}, {"judge_max": "inf"}, {"page": "-1"}):
        with pytest.raises(FilterError):
            Filters.from_params(bad)


FILTER_KEYS = ["source", "model", "correct", "disagree", "unlabelled", "judge_min", "prm_max", "q", "page", "other"]


@settings(max_examples=200, deadline=2000)
@given(st.dictionaries(st.sampled_from(FILTER_KEYS), st.text(max_size=30)))
def test_filter_parsing_of_any_url_never_crashes_and_round_trips(params):
    try:
        f = Filters.from_params(params)
    except FilterError as e:
        assert str(e)  # one line saying which parameter and what is expected
        return
    assert Filters.from_params(f.params()) == f
    assert Filters.from_params(params) == f  # deterministic


def test_text_search_and_odd_parameters_are_answered_not_crashed(built):
    with client(built["path"]) as c:
        for q in ("%", "q_z", "q\\z", "'; DROP TABLE rationales; --", "\x00%", "ü" * 600, "[a-z]*"):
            res = c.get("/rationales", params={"q": q})
            assert res.status_code == 200 and "0 rationales match" in res.text, q
        assert "8 rationales match" in c.get("/rationales", params={"q": "\x00"}).text  # a bare NUL is no filter
        res = c.get("/rationales", headers={"Cookie": "rv_session=\x7f; bad cookie;;=="})
        assert res.status_code == 200
        assert c.get("/problems", params={"page": "x"}).status_code == 400
    with Store(built["path"]) as s:
        assert s.count("rationales") == 8


# ------------------------------------------------------------------ labels


def test_labels_are_human_checks_with_who_and_when(built):
    rid = built["rationales"][1]
    with client(built["path"]) as c:
        token = csrf_of(c)
        before = time.time()
        res = label(c, token, rid, labels={"0": 1, "1": -1})
        assert res.status_code == 200, res.text
        data = res.json()
        assert data["labels"] == {"0": 1, "1": -1, "2": None} and data["previous"] == {"0": None, "1": None}
        # agreement with the checkers: the tool said -1 on step 1 (agrees), prm +1 on step 0 (agrees)
        assert data["agreement"] == {"prm": {"agree": 1, "n": 1}, "tool": {"agree": 1, "n": 1}}
        assert data["progress"]["steps"] == 2
        home = c.get("/").text  # store-wide agreement of people with each checker
        assert re.search(r"<tr><td>prm</td><td>1</td><td>1</td>", home) and re.search(r"<tr><td>tool</td><td>1</td>", home)
        assert "2 steps labelled (of 27)" in home and "0 rationales fully and 1 partly labelled (of 8)" in home
    with Store(built["path"]) as s:
        r = s.get_rationale(rid)
        checks = [c for st in r.steps for c in st.checks if c.kind == "human"]
        assert [(c.verdict, c.by) for c in checks] == [(1, "ann"), (-1, "ann")]
        assert all(before <= c.detail["at"] <= time.time() for c in checks)
        # the automatic checks are untouched, and the flat checks table agrees with the record
        assert [c.kind for c in r.steps[1].checks] == ["tool", "human"]
        rows = s.conn.execute("SELECT step_index, verdict, by FROM checks WHERE kind='human' AND rationale_id=? "
                              "ORDER BY step_index", (rid,)).fetchall()
        assert rows == [(0, 1, "ann"), (1, -1, "ann")]


def test_first_error_modes_undo_and_bad_requests(built):
    rid = built["xss"]  # 6 steps
    with client(built["path"]) as c:
        token = csrf_of(c)
        r = label(c, token, rid, labels={"5": 0}).json()
        r = label(c, token, rid, op="first_error", step=2, after="unlabelled").json()
        assert r["labels"] == {"0": 1, "1": 1, "2": -1, "3": None, "4": None, "5": None}
        assert r["previous"]["5"] == 0
        r2 = label(c, token, rid, op="first_error", step=2, after="-1").json()
        assert r2["labels"] == {"0": 1, "1": 1, "2": -1, "3": -1, "4": -1, "5": -1}
        # undo = put back what the response said was there before
        r3 = label(c, token, rid, op="set", labels=r2["previous"]).json()
        assert r3["labels"] == r["labels"]
        assert label(c, token, rid, op="set", labels=r["previous"]).json()["labels"]["5"] == 0
        for body, msg in (({"labels": {"9": 1}}, "no step 9"), ({"labels": {"0": 5}}, "expected +1, 0, -1"),
                          ({"op": "first_error", "step": 9}, "no step 9"), ({"op": "zap"}, "Unknown op"),
                          ({"op": "first_error", "step": 1, "after": "x"}, "after='x'"),
                          ({"labels": {"a": 1}}, "step indexes")):
            res = label(c, token, rid, **body)
            assert res.status_code == 400 and msg in res.json()["error"], (body, res.text)
        assert label(c, token, "missing", labels={"0": 1}).status_code == 400
        assert c.post("/api/label", content="not json", headers={"X-CSRF-Token": token}).status_code == 400
    assert human(built["path"], rid)[5] == [(0, "ann")]


def test_first_error_changes():
    assert L.first_error_changes(4, 1) == {0: 1, 1: -1, 2: None, 3: None}
    assert L.first_error_changes(3, 0, "-1") == {0: -1, 1: -1, 2: -1}
    assert L.first_error_changes(2, None) == {0: 1, 1: 1}
    with pytest.raises(L.LabelError):
        L.first_error_changes(2, 2)


def test_two_labellers_each_keep_their_own_label(built):
    rid = built["rationales"][0]
    with client(built["path"], user="ann") as a, client(built["path"], user="bob") as b:
        assert label(a, csrf_of(a), rid, labels={"0": 1}).status_code == 200
        assert label(b, csrf_of(b), rid, labels={"0": -1}).status_code == 200
        page = a.get(f"/rationale/{rid}").text
        assert 'title="human by bob' in page  # the other person's label is shown, not taken as ann's
    assert human(built["path"], rid)[0] == [(1, "ann")] and human(built["path"], rid, "bob")[0] == [(-1, "bob")]


def test_concurrent_writers_lose_no_label(built):
    """Two connections (two tabs' server threads) add labels to one rationale at the same time:
    every write adds a label no later write repeats (a new labeller each time), so a lost
    update would lose a label for good. None is lost, because each read-modify-write runs
    inside one BEGIN IMMEDIATE transaction."""
    rid = built["xss"]
    barrier = threading.Barrier(2)
    errors = []

    def worker(name, step, value):
        s = Store(built["path"])
        try:
            barrier.wait()
            for k in range(40):
                L.apply_labels(s, rid, f"{name}{k}", {step: value})
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=("a", 0, 1)), threading.Thread(target=worker, args=("b", 3, -1))]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so that races show if there are any
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    with Store(built["path"]) as s:
        r = s.get_rationale(rid)
    got = {(st.index, c.by, c.verdict) for st in r.steps for c in st.checks if c.kind == "human"}
    assert got == {(0, f"a{k}", 1) for k in range(40)} | {(3, f"b{k}", -1) for k in range(40)}


# ------------------------------------------------------------------ safety


def test_state_changing_requests_need_the_csrf_token_and_same_origin(built):
    rid = built["rationales"][0]
    with client(built["path"]) as c:
        token = csrf_of(c)
        body = {"rationale_id": rid, "labels": {"0": 1}}
        assert c.post("/api/label", json=body).status_code == 403
        assert c.post("/api/label", json=body, headers={"X-CSRF-Token": "x" * 43}).status_code == 403
        assert c.post("/api/label", json=body, headers={"X-CSRF-Token": token,
                                                         "Origin": "http://evil.example"}).status_code == 403
        assert c.post("/api/label", json=body, headers={"X-CSRF-Token": token,
                                                         "Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert c.post(f"/rationale/{rid}/feedback", data={"feedback": "x"}).status_code == 403
        # a fresh client (no session cookie) cannot reuse someone else's token
        with client(built["path"]) as other:
            assert other.post("/api/label", json=body, headers={"X-CSRF-Token": token}).status_code == 403
        assert human(built["path"], rid)[0] == []
        ok = c.post("/api/label", json=body, headers={"X-CSRF-Token": token, "Origin": "http://testserver",
                                                      "Sec-Fetch-Site": "same-origin"})
        assert ok.status_code == 200
        assert c.get("/api/label").status_code == 405  # state changes are POST only
    assert human(built["path"], rid)[0] == [(1, "ann")]


def test_token_is_checked_on_every_request(built):
    secret = "s3cret-token-123"
    with client(built["path"], token=secret) as c:
        assert c.get("/").status_code == 401
        assert c.get("/static/review.js").status_code == 401
        assert c.get("/export/human_labels.jsonl").status_code == 401
        assert c.get("/", params={"token": "wrong-token-1"}).status_code == 401
        assert c.get("/", params={"token": secret}).status_code == 200  # sets the cookie
        assert c.get("/rationales").status_code == 200
    with client(built["path"], token=secret) as c:
        assert c.get("/", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with pytest.raises(Exception, match="at least 8"):
        ReviewConfig(store=built["path"], token="short")


def test_only_the_served_host_names_are_answered(built):
    with client(built["path"], allowed_hosts=["127.0.0.1", "localhost", "::1"]) as c:
        assert c.get("/", headers={"Host": "evil.example:8765"}).status_code == 400
        assert c.get("/", headers={"Host": "127.0.0.1.evil.example"}).status_code == 400
        assert c.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200
        assert c.get("/", headers={"Host": "[::1]:8765"}).status_code == 200
        assert c.get("/", headers={"Host": "LOCALHOST"}).status_code == 200


def test_model_text_is_escaped_everywhere(built):
    with client(built["path"]) as c:
        xp = c.get(f"/rationale/{built['xss']}")
        assert "default-src 'none'; script-src 'self'" in xp.headers["content-security-policy"]
        pages = [xp.text, c.get("/rationales").text, c.get(f"/problem/{built['problems'][0].id}").text,
                 c.get(f"/problem/{_xss_problem(built)}").text, c.get("/tree", params={"key": built["tree"]}).text]
        token = csrf_of(c)
        label(c, token, built["xss"], labels={"0": 1})
        c.post(f"/rationale/{built['xss']}/feedback", data={"csrf": token, "feedback": XSS, "apply": "0"})
        pages.append(c.get(f"/rationale/{built['xss']}").text)
    for text in pages:
        assert "<script>window" not in text and "<script>alert" not in text and "<script>x" not in text
        assert "<img src" not in text and 'href="javascript' not in text and "<u>7</u>" not in text
        assert "</textarea><script>" not in text
        # the only script tags are the app's own file and the JSON state block
        assert set(re.findall(r"<script[^>]*>", text)) <= {'<script src="/static/review.js" defer>',
                                                            '<script type="application/json" id="review-state">'}
    xss_page = pages[0]
    assert "&lt;script&gt;window.__pwned=1" in xss_page and "&lt;img src=x onerror=" in xss_page
    assert "&lt;/textarea&gt;" in xss_page and "&lt;u&gt;7&lt;/u&gt;" in xss_page
    assert re.search(r"<mtext>&lt;img\ssrc=y\sonerror=alert\(5\)&gt;</mtext>", xss_page)  # \text{} in maths, escaped
    assert pages[-1].count("&lt;script&gt;window.__pwned=1") >= 3  # steps, full text, feedback


def _xss_problem(built):
    with Store(built["path"]) as s:
        return s.get_rationale(built["xss"]).problem_id


# ------------------------------------------------------------------ maths and trees


def test_maths_becomes_mathml_and_money_stays_text():
    out = str(math_html(r"so \(x^2\) and $$\frac{1}{2}$$ then \boxed{42}; it costs $4 and $5."))
    assert out.count("<math ") == 3 and "<mfrac>" in out and 'notation="box"' in out
    assert "it costs $4 and $5." in out
    assert "<math" not in str(math_html("A pen costs $3 and a book $12."))
    broken = str(math_html(r"\(\frac{1}{\)"))
    assert "<math" not in broken and r"\(\frac{1}{\)" in broken
    assert str(math_html("<b>&</b>")) == "&lt;b&gt;&amp;&lt;/b&gt;"
    # deep nesting and long formulas: bounded time, text when they cannot be converted
    for text in ("$$" + "{" * 990 + "x" + "}" * 990 + "$$", "\\(" + "\\sqrt{" * 330 + "x" + "}" * 330 + "\\)",
                 "\\(" + "x+" * 1500 + "\\)"):
        t0 = time.time()
        out = str(math_html(text))
        assert time.time() - t0 < 2 and ("<math" in out or text[:20] in out)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@settings(max_examples=150, deadline=2000)
@given(st.lists(st.sampled_from(["$", "\\", "(", ")", "[", "]", "{", "}", "^", "_", "<", ">", "&", '"', "'",
                                  "=", " ", "a", "1", "/", "\\text", "\\frac", "\\boxed", "$$", "<script>",
                                  "<img src=x onerror=alert(1)>", "javascript:", "\\mathrm", "\n"]),
                max_size=40).map("".join))
@example("$\\text{<script>alert(1)</script>}$ \\(\\mathrm{<img src=x onerror=alert(1)>}\\) $$\\text{a&b}$$")
def test_math_html_never_lets_markup_through(text):
    t0 = time.time()
    out = str(math_html(text))
    assert time.time() - t0 < 1.0
    assert out == str(math_html(text))  # deterministic
    parser = _Tags()
    parser.feed(out)
    for tag, attrs in parser.tags:
        assert tag in MATHML_TAGS or tag == "span", (tag, out)
        assert set(attrs) <= (MATHML_ATTRS | {"class", "title"}), (attrs, out)
        if tag == "span":
            assert attrs.get("class") == "tex"
    # the visible text (tags stripped, entities decoded) is the input's text, nothing added
    assert "<script" not in re.sub(r"<[^>]+>", "", out)


def test_tree_view_builds_the_saved_tree(built):
    with Store(built["path"]) as s:
        data = s.get_blob(built["tree"])
    root = tree_view(data, {1, 2, 4})
    assert [n.id for n in root.children] == [1, 5]
    assert [n.id for n in root.children[0].children] == [2, 3]
    assert root.children[0].children[0].on_path and not root.children[0].children[1].on_path
    assert root.children[0].children[1].verdict == -1 and root.children[0].children[1].expression == "7 + 8 = 16"
    assert tree_view({"nodes": "junk"}) is None and tree_view({}) is None
    with client(built["path"]) as c:
        rid = built["rationales"][0]
        page = c.get(f"/rationale/{rid}").text
        assert "search tree of this rationale" in page
        tree = c.get("/tree", params={"key": built["tree"], "rationale": rid}).text
        assert tree.count("<li class=") == 6 and "N=3 Q=0.5" in tree and "tool -1" in tree and "→ <b>15</b>" in tree
        assert c.get("/tree", params={"key": "nope"}).status_code == 404


# ------------------------------------------------------------------ feedback, patching, exports


ANSWER_SYSTEM = "You answer a question using only the rationale"


def patch_script(prompt, seed, index):
    if ANSWER_SYSTEM in prompt:
        return "The answer is " + prompt.split("RESULT=")[-1].split()[0]
    if "Old rationale:" in prompt and "A pen costs" in prompt:
        return "1. One pen costs $3.\n2. Four pens cost 4 x 3 = 12 dollars.\n3. RESULT=12 done"
    if "Old rationale:" in prompt:
        return "1. Tom starts with 7 apples.\n2. He buys 8 more: 7 + 8 = 15.\n3. RESULT=15 done"
    return "The answer is 0."


def test_feedback_is_stored_and_patches_at_once(built):
    parent = built["rationales"][1]  # answer 16, wrong
    made = []

    def factory():
        made.append(1)
        return FakeBackend(script=patch_script, model="fake-patcher")

    with client(built["path"], backend_factory=factory, backend_label="fake:fake-patcher") as c:
        token = csrf_of(c)
        assert not made  # the backend is loaded on the first patch only
        saved = c.post(f"/rationale/{parent}/feedback", data={"csrf": token, "feedback": "Step 2: 7 + 8 is 15.",
                                                             "apply": "0"}, follow_redirects=False)
        assert saved.status_code == 303 and saved.headers["location"].startswith(f"/rationale/{parent}")
        assert not made
        res = c.post(f"/rationale/{parent}/feedback", data={"csrf": token, "feedback": "Step 2 adds wrong: 7 + 8 = 15.",
                                                           "apply": "1"}, follow_redirects=False)
        assert res.status_code == 303 and made == [1]
        patch_id = res.headers["location"].rsplit("/", 1)[1]
        page = c.get(res.headers["location"]).text
        assert "Patch of" in page and f"/rationale/{parent}" in page and "Step 2 adds wrong" in page
        assert '<b id="answer">15</b>' in page
        parent_page = c.get(f"/rationale/{parent}").text
        assert f"/rationale/{patch_id}" in parent_page and "patched rationale" in parent_page
        empty = c.post(f"/rationale/{parent}/feedback", data={"csrf": token, "feedback": "  "})
        assert empty.status_code == 400 and "Feedback is empty" in empty.text
        rows = [json.loads(x) for x in c.get("/export/feedback.jsonl").text.splitlines()]
    assert [(r["rationale_id"], r["feedback"], r["by"], r["patch_id"]) for r in rows] == [
        (parent, "Step 2: 7 + 8 is 15.", "ann", None), (parent, "Step 2 adds wrong: 7 + 8 = 15.", "ann", patch_id)]
    with Store(built["path"]) as s:
        patch = s.get_rationale(patch_id)
    assert patch.parent_id == parent and patch.method == "patch" and patch.correct is True
    assert patch.meta["feedback"] == "Step 2 adds wrong: 7 + 8 = 15." and patch.meta["feedback_source"] == "review"


def test_feedback_without_a_backend_is_stored_and_says_how_to_patch(built):
    rid = built["rationales"][2]
    with client(built["path"]) as c:
        token = csrf_of(c)
        assert "start with --backend/--model" in c.get(f"/rationale/{rid}").text
        res = c.post(f"/rationale/{rid}/feedback", data={"csrf": token, "feedback": "wrong sign", "apply": "1"})
        assert res.status_code == 400 and "Patching is off" in res.text
        assert "wrong sign" in c.get(f"/rationale/{rid}").text


def test_export_writes_exactly_the_human_labels(built):
    a, b = built["rationales"][0], built["rationales"][4]
    with client(built["path"]) as c:
        token = csrf_of(c)
        label(c, token, a, labels={"0": 1, "2": 0})
        label(c, token, b, op="first_error", step=1)
        res = c.get("/export/human_labels.jsonl")
    assert res.headers["content-disposition"].startswith("attachment")
    rows = [json.loads(x) for x in res.text.splitlines()]
    assert [(r["rationale_id"], r["by"], r["labels"]) for r in rows] == sorted(
        [(a, "ann", [1, None, 0]), (b, "ann", [1, -1, None])])
    assert rows == list(human_label_rows(Store(built["path"])))
    assert all(len(r["steps"]) == len(r["labels"]) == len(r["spans"]) for r in rows)


def test_human_labels_feed_the_stepwise_export(built):
    stepwise = pytest.importorskip("rationales.data.stepwise")
    rid = built["rationales"][3]
    with client(built["path"]) as c:
        label(c, csrf_of(c), rid, op="first_error", step=2)
    with Store(built["path"]) as s:
        rows = stepwise.stepwise_rows(s, label_source="human")
    mine = [r for r in rows if rid in json.dumps(r)]
    assert len(mine) == 1 and mine[0]["labels"] == [True, True, False]


# ------------------------------------------------------------------ the command


def test_cli_serves_prints_its_url_and_stops_on_ctrl_c(built):
    import urllib.request

    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "rationales", "review", "--store", str(built["path"]),
                             "--port", "0", "--user", "cli-user"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, line + proc.stderr.read()
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(m.group(1) + "rationales", timeout=5) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert "8 rationales match" in body and "labeller <b>cli-user</b>" in body
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "review server stopped" in err and "Traceback" not in err


def test_cli_refuses_other_hosts_without_a_token_and_missing_stores(built, tmp_path, capsys):
    from rationales.cli import main

    assert main(["review", "--store", str(built["path"]), "--host", "0.0.0.0"]) == 2
    assert main(["review", "--store", str(tmp_path / "none.sqlite"), "--port", "0"]) == 2
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert main(["review", "--store", str(junk), "--port", "0"]) == 2
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["review", "--store", str(built["path"]), "--port", str(busy.getsockname()[1])]) == 2
    out = capsys.readouterr().err
    assert "does not exist" in out and "Cannot open store" in out and "--token" in out and "Traceback" not in out
    assert "pass another --port" in out
