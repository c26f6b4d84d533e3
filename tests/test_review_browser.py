"""`rationales review` in a real browser: Playwright driving Debian's Chromium headless
(installed by scripts/install_browser.sh; Playwright's own browser download is never used).

One server per module (uvicorn in a thread on a free 127.0.0.1 port) over a store built with
the fake backend; each test gets a fresh browser context (its own session cookie).
Set REVIEW_SCREENSHOTS=docs to write the README's screenshots while the tests run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("RATIONALES_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: run "
                                                         "scripts/install_browser.sh (as root)")

from test_review_data import build_store  # noqa: E402
from test_review import patch_script  # noqa: E402

from rationales.backends.fake import FakeBackend  # noqa: E402
from rationales.review.app import ReviewConfig, create_app  # noqa: E402
from rationales.store import Store  # noqa: E402

SHOTS = os.environ.get("REVIEW_SCREENSHOTS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    path = tmp_path_factory.mktemp("review") / "review.sqlite"
    info = build_store(path)
    app = create_app(ReviewConfig(store=path, user="ann", allowed_hosts=["127.0.0.1"],
                                  backend_factory=lambda: FakeBackend(script=patch_script, model="fake-patcher"),
                                  backend_label="fake"))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "review server did not start"
        time.sleep(0.05)
    info.update(path=path, url=f"http://127.0.0.1:{port}")
    yield info
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield b
        b.close()


class Watch:
    """Dialogs (alert/confirm) and script errors seen by a page."""

    def __init__(self, page):
        self.dialogs, self.errors = [], []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture()
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10000)
    yield ctx
    ctx.close()


def open_page(context, url):
    page = context.new_page()
    watch = Watch(page)
    page.goto(url)
    return page, watch


def settled(page):
    page.wait_for_function("() => document.body.dataset.pending === undefined || document.body.dataset.pending === '0'")


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"review-{name}.png"))


def human_checks(path, user="ann"):
    """Every human label in the store: {(rationale id, step index): verdict}."""
    with Store(path) as s:
        rows = s.conn.execute("SELECT rationale_id, step_index, verdict FROM checks WHERE kind='human' AND by=?",
                              (user,)).fetchall()
    return {(r, i): v for r, i, v in rows}


# ------------------------------------------------------------------ tests


def test_browse_and_filter(server, context):
    page, watch = open_page(context, server["url"] + "/")
    assert "8 rationales" in page.inner_text("main")
    shot(page, "home")
    page.click("nav.top a[href='/rationales']")
    page.wait_for_url("**/rationales")
    assert page.locator("#rationale-list tr[data-id]").count() == 8
    page.select_option("select[name=correct]", "no")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**correct=no**")
    with Store(server["path"]) as s:
        wrong = {r.id for r in s.rationales() if r.correct is False}
    shown = {page.locator("#rationale-list tr[data-id]").nth(i).get_attribute("data-id")
             for i in range(page.locator("#rationale-list tr[data-id]").count())}
    assert shown == wrong and len(wrong) == 4
    shot(page, "list")
    page.press("body", "/")  # "/" focuses the search box
    page.keyboard.type("7 + 8 = 16")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=7**")
    assert page.locator("#rationale-list tr[data-id]").count() == 1
    page.goto(server["url"] + f"/problem/{server['problems'][0].id}")
    assert page.locator(".card").count() == 3
    assert page.locator("math").count() == 0 and "15 × 1" in page.inner_text("main")
    shot(page, "problem")
    page.goto(server["url"] + f"/rationale/{server['rationales'][6]}")
    # \(x^2 = 3^2\), $3^2 = 9$, \[\frac{18}{2} = 9\] and \boxed{9} as MathML, in the steps and the full text
    assert page.locator(".stext math").count() == 4 and page.locator("#fulltext math").count() == 4
    assert page.locator(".stext menclose[notation=box]").count() == 1 and page.locator(".stext mfrac").count() == 1
    assert not watch.dialogs and not watch.errors


def test_label_steps_with_the_keyboard(server, context):
    assert human_checks(server["path"]) == {}
    first, second = server["rationales"][1], server["rationales"][2]
    page, watch = open_page(context, server["url"] + f"/rationale/{first}?correct=no")
    page.keyboard.press("1")   # step 0 -> +1, moves to step 1
    page.keyboard.press("-")   # step 1 -> -1, moves to step 2
    page.keyboard.press("0")   # step 2 -> 0 (neutral)
    settled(page)
    assert human_checks(server["path"]) == {(first, 0): 1, (first, 1): -1, (first, 2): 0}
    assert page.inner_text("#step-1 [data-role=human]") == "you: -1"
    assert page.inner_text("#nlabelled") == "3"
    assert "tool agrees" not in page.inner_text("#step-1")  # agreement table is live instead
    assert page.locator("#agreement tr").count() >= 2
    page.keyboard.press("k")   # back to step 1
    page.keyboard.press("x")   # clear it
    settled(page)
    assert human_checks(server["path"]) == {(first, 0): 1, (first, 2): 0}
    page.keyboard.press("u")   # undo the clear
    settled(page)
    assert human_checks(server["path"]) == {(first, 0): 1, (first, 1): -1, (first, 2): 0}
    page.keyboard.press("k")   # step 0
    page.keyboard.press("f")   # first error at step 0: later steps unlabelled (PRM800K)
    settled(page)
    assert human_checks(server["path"]) == {(first, 0): -1}
    page.keyboard.press("u")
    settled(page)
    assert human_checks(server["path"]) == {(first, 0): 1, (first, 1): -1, (first, 2): 0}
    shot(page, "rationale")
    page.keyboard.press("n")   # next wrong rationale in the filtered list
    page.wait_for_url(f"**/rationale/{second}?correct=no")
    page.select_option("#after-mode", "-1")
    page.keyboard.press("j")
    page.keyboard.press("f")   # first error at step 1, everything after it -1
    settled(page)
    page.keyboard.press("p")
    page.wait_for_url(f"**/rationale/{first}?correct=no")
    assert page.inner_text("#step-2 [data-role=human]") == "you: 0"  # labels shown after a reload
    assert human_checks(server["path"]) == {(first, 0): 1, (first, 1): -1, (first, 2): 0,
                                            (second, 0): 1, (second, 1): -1, (second, 2): -1}
    assert not watch.dialogs and not watch.errors


def test_write_feedback_and_patch(server, context):
    parent = server["rationales"][4]  # "4 x 3 = 13", wrong
    before = human_checks(server["path"])
    page, watch = open_page(context, server["url"] + f"/rationale/{parent}")
    page.click("textarea[name=feedback]")
    page.keyboard.type("Step 2: 4 x 3 is 12, not 13. Fix it (u, 1, -, f must not label).")
    assert human_checks(server["path"]) == before  # keys typed into the form are text, not shortcuts
    with page.expect_navigation():
        page.click("#apply")
    assert parent not in page.url, page.content()[:300]
    assert "Patch of" in page.inner_text("#parent") and page.inner_text("#answer") == "12"
    patch_url = page.url
    shot(page, "patch")
    page.click("#parent a")
    page.wait_for_url(f"**/rationale/{parent}")
    assert "Step 2: 4 x 3 is 12, not 13." in page.inner_text("#feedback ~ .feedback")
    assert page.locator(f"a.patchlink[href='{patch_url.split(server['url'])[1]}']").count() == 1
    with Store(server["path"]) as s:
        kids = [r for r in s.rationales(parent_id=parent) if r.method == "patch"]
    assert len(kids) == 1 and kids[0].meta["feedback"].startswith("Step 2: 4 x 3 is 12")
    assert not watch.dialogs and not watch.errors


def test_xss_payloads_stay_inert(server, context):
    with Store(server["path"]) as s:
        xr = s.get_rationale(server["xss"])
    urls = [f"/rationale/{xr.id}", f"/problem/{xr.problem_id}", "/rationales?model=evil-model",
            "/tree?key=" + server["tree"]]
    for url in urls:
        page, watch = open_page(context, server["url"] + url)
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img").count() == 0 and page.locator("a[href^='javascript']").count() == 0
        assert page.locator("script").count() <= 2  # review.js and the JSON state
        assert not watch.dialogs and not watch.errors, (url, watch.dialogs, watch.errors)
        page.close()
    page, watch = open_page(context, server["url"] + f"/rationale/{xr.id}")
    assert page.inner_text("#step-0 .stext") == xr.steps[0].text  # the payload, shown as text
    assert page.inner_text("#step-3 .stext") == "</textarea><script>window.__pwned=4</script>"
    page.keyboard.press("1")
    page.fill("textarea[name=feedback]", xr.text)
    with page.expect_navigation():
        page.click("button[name=apply][value='0']")
    assert page.url.endswith(f"/rationale/{xr.id}#feedback")
    settled(page)
    assert page.evaluate("() => window.__pwned") is None and not watch.dialogs and not watch.errors
    assert xr.steps[1].text in page.inner_text("#feedback ~ .feedback")
    with Store(server["path"]) as s:
        got = s.conn.execute("SELECT verdict FROM checks WHERE kind='human' AND rationale_id=?", (xr.id,)).fetchall()
    assert got == [(1,)]


def test_two_tabs_labelling_at_once_lose_nothing(server, context):
    """End to end through the browser. (The test that reliably catches a read-modify-write
    outside the transaction is test_review.py::test_concurrent_writers_lose_no_label: here
    later saves can repair an earlier lost one.)"""
    rid = server["rationales"][5]
    a, wa = open_page(context, server["url"] + f"/rationale/{rid}")
    b, wb = open_page(context, server["url"] + f"/rationale/{rid}")
    b.keyboard.press("j")  # tab b works on step 1, tab a on steps 0 and 2
    for _ in range(5):     # interleaved, without waiting for the saves
        a.keyboard.press("1")
        b.keyboard.press("-")
        a.keyboard.press("j")
        a.keyboard.press("0")
        b.keyboard.press("k")
        a.keyboard.press("k")
        a.keyboard.press("k")
    settled(a)
    settled(b)
    labels = {i: v for (r, i), v in human_checks(server["path"]).items() if r == rid}
    assert labels == {0: 1, 1: -1, 2: 0}
    a.reload()
    assert [a.inner_text(f"#step-{i} [data-role=human]") for i in range(3)] == ["you: +1", "you: -1", "you: 0"]
    # then both tabs fire bursts of saves at once (no waiting between them): each request is a
    # read-modify-write of the whole record, and none may drop the other tab's labels
    burst = """([rid, labels, n]) => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        window.__burst = Promise.all(Array.from({length: n}, (_, k) => fetch("/api/label", {method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
            body: JSON.stringify({rationale_id: rid, op: "set", labels: labels[k % labels.length]})})
            .then(r => r.status)));
    }"""
    other = server["rationales"][3]
    a.evaluate(burst, [other, [{"0": 1}, {"2": 0}], 16])
    b.evaluate(burst, [other, [{"1": -1}], 16])
    assert set(a.evaluate("() => window.__burst")) == {200} and set(b.evaluate("() => window.__burst")) == {200}
    labels = {i: v for (r, i), v in human_checks(server["path"]).items() if r == other}
    assert labels == {0: 1, 1: -1, 2: 0}
    assert not (wa.dialogs or wa.errors or wb.dialogs or wb.errors)


def test_tree_page(server, context):
    rid = server["rationales"][0]
    page, watch = open_page(context, server["url"] + f"/rationale/{rid}")
    page.click("text=search tree of this rationale")
    page.wait_for_url("**/tree?**")
    assert page.locator("ul.tree li").count() == 6
    assert page.locator("ul.tree li.onpath").count() >= 1
    shot(page, "tree")
    assert not watch.dialogs and not watch.errors
