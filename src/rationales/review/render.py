"""Turning model text into safe HTML: maths as MathML, steps by their character spans,
verdict colours, search trees as nested lists.

Everything a model wrote is escaped. LaTeX is converted on the server with ``latex2mathml``
(no JavaScript, nothing from a CDN) into an element tree that is serialised here with a
whitelist of MathML tags and attributes, because latex2mathml's own string output passes
``\\text{<script>...}`` through unescaped.

Which text counts as maths: ``$$...$$``, ``\\[...\\]``, ``\\(...\\)``, a bare ``\\boxed{...}``,
and ``$...$`` only when its content has a LaTeX sign (``\\ ^ _ {``), so that money ("costs $4
and $5") stays text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ..records import Check, Rationale, Step

MAX_TEX = 2000  # longer "maths" is shown as text

MATHML_TAGS = frozenset("""math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder
munderover mtable mtr mtd mstyle mpadded mphantom menclose merror semantics annotation mlabeledtr mfenced
mmultiscripts mprescripts none""".split())
MATHML_ATTRS = frozenset("""xmlns display displaystyle mathvariant stretchy fence separator lspace rspace accent
accentunder columnalign columnlines columnspacing rowspacing rowlines rowalign frame notation linethickness
scriptlevel minsize maxsize movablelimits symmetric largeop form width height depth align open close separators
columnspan rowspan mathsize mathcolor encoding""".split())
SAFE_VALUE = re.compile(r"^[\w\s.:/#%+,\-]*$")

MATH = re.compile(
    r"\$\$(?P<dd>.+?)\$\$"
    r"|\\\[(?P<br>.+?)\\\]"
    r"|\\\((?P<pa>.+?)\\\)"
    r"|(?P<boxed>\\boxed\{(?:[^{}]|\{[^{}]*\})*\})"
    r"|(?<![\\$\w])\$(?P<d>[^$\n]+?)\$",
    re.DOTALL)
TEXISH = re.compile(r"[\\^_{]")


def _serialise(el: Any, out: list[str]) -> None:
    tag = str(el.tag).split("}")[-1]
    keep = tag in MATHML_TAGS
    if keep:
        attrs = "".join(f' {k}="{html.escape(str(v), quote=True)}"' for k, v in sorted(el.attrib.items())
                        if k in MATHML_ATTRS and SAFE_VALUE.match(str(v)))
        out.append(f"<{tag}{attrs}>")
    if el.text:
        out.append(html.escape(html.unescape(el.text)))
    for child in el:
        _serialise(child, out)
    if keep:
        out.append(f"</{tag}>")
    if el.tail:
        out.append(html.escape(html.unescape(el.tail)))


def tex_to_mathml(tex: str, display: bool = False) -> Markup | None:
    """Safe MathML for one LaTeX formula, or None when it cannot be converted."""
    if not tex.strip() or len(tex) > MAX_TEX:
        return None
    try:
        from latex2mathml.converter import convert_to_element

        el = convert_to_element(tex, display="block" if display else "inline")
        out: list[str] = []
        _serialise(el, out)
    except Exception:  # noqa: BLE001 - LaTeX the converter cannot read (or nested too deep) is shown as text
        return None
    return Markup("".join(out))


def math_html(text: str) -> Markup:
    """Escaped text with its maths as MathML (a formula that does not convert stays text)."""
    out: list[str] = []
    pos = 0
    for m in MATH.finditer(text):
        groups = m.groupdict()
        if groups["d"] is not None and not TEXISH.search(groups["d"]):
            continue
        tex = next(v for k, v in groups.items() if v is not None)
        display = groups["dd"] is not None or groups["br"] is not None
        converted = tex_to_mathml(tex, display)
        if converted is None:
            continue
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<span class='tex' title='{html.escape(m.group(0), quote=True)}'>{converted}</span>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return Markup("".join(out))


# ------------------------------------------------------------------ verdicts


def sign_class(verdict: int | None) -> str:
    if verdict is None:
        return "vnone"
    return "vpos" if verdict > 0 else ("vneg" if verdict < 0 else "vneu")


def sign_text(verdict: int | None) -> str:
    if verdict is None:
        return "?"
    return "+1" if verdict > 0 else ("-1" if verdict < 0 else "0")


@dataclass
class Chip:
    """One verdict on one step, ready to show."""

    kind: str
    by: str
    verdict: int | None
    cls: str
    label: str
    score: str = ""
    detail: str = ""  # e.g. the tool's evaluated expression


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def check_chip(c: Check) -> Chip:
    detail = ""
    if c.kind == "tool":
        claims = c.detail.get("claims") or []
        parts = []
        for cl in claims[:6]:
            value = cl.get("value")
            parts.append(f"{cl.get('expression', '')} → {'undefined' if value is None else _fmt(value)}"
                         f" {'✓' if cl.get('ok') else '✗'}")
        detail = "; ".join(parts) or str(c.detail.get("expression", ""))
    elif c.kind == "human":
        at = c.detail.get("at")
        detail = f"by {c.by}" + (f" at {_time(at)}" if isinstance(at, (int, float)) else "")
    elif c.kind == "judge" and c.detail.get("rationale"):
        text = str(c.detail["rationale"])
        detail = text if len(text) <= 200 else text[:199] + "…"
    elif c.detail.get("sources"):
        detail = ", ".join(f"{k}:{sign_text(v) if isinstance(v, int) or v is None else v}"
                           for k, v in dict(c.detail["sources"]).items())
    return Chip(kind=c.kind, by=c.by, verdict=c.verdict, cls=sign_class(c.verdict), label=sign_text(c.verdict),
                score="" if c.score is None else f"{c.score:.3g}", detail=detail)


def _time(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class StepView:
    index: int
    html: Markup
    chips: list[Chip]
    human: int | None  # this user's label
    others: list[Chip]  # other people's labels
    kinds: dict[str, str]  # kind -> colour class of its latest verdict (for the colour strip)
    agree: dict[str, bool] = field(default_factory=dict)  # auto kind -> agrees with this user's label


def step_views(r: Rationale, user: str) -> list[StepView]:
    views = []
    for s in r.steps:
        chips, others, human, kinds = [], [], None, {}
        for c in s.checks:
            if c.kind == "human":
                if c.by == user:
                    human = c.verdict
                else:
                    others.append(check_chip(c))
                continue
            chips.append(check_chip(c))
            kinds[c.kind] = sign_class(c.verdict)
        agree = {}
        if human:
            for c in s.checks:
                if c.kind != "human" and c.verdict:
                    agree[c.kind] = (c.verdict > 0) == (human > 0)
        views.append(StepView(s.index, math_html(s.text), chips, human, others, kinds, agree))
    return views


def spans_html(r: Rationale) -> Markup:
    """The whole text with each step's character span marked (``data-step``); text outside
    every span is shown plain. Invalid or overlapping spans fall back to the step texts."""
    text = r.text
    steps: list[Step] = sorted(r.steps, key=lambda s: s.span[0])
    ok, end = True, 0
    for s in steps:
        a, b = s.span
        if not (end <= a <= b <= len(text)):
            ok = False
            break
        end = b
    if not ok or not steps:
        if not steps:
            return math_html(text)
        return Markup("").join(Markup("<mark class='span' data-step='{}'>{}</mark>\n").format(s.index, math_html(s.text))
                               for s in r.steps)
    out, pos = [], 0
    for s in steps:
        a, b = s.span
        out.append(math_html(text[pos:a]))
        verdicts = [c.verdict for c in s.checks if c.verdict is not None]
        cls = ("vpos" if verdicts and all(v > 0 for v in verdicts) else
               "vneg" if verdicts and all(v < 0 for v in verdicts) else "vmix" if verdicts else "vnone")
        out.append(Markup("<mark class='span {}' data-step='{}'>{}</mark>").format(cls, s.index, math_html(text[a:b])))
        pos = b
    out.append(math_html(text[pos:]))
    return Markup("").join(out)


def agreement_summary(r: Rationale, user: str) -> dict[str, dict[str, int]]:
    """Per automatic kind on this rationale: steps where it and this user's +1/-1 agree."""
    out: dict[str, dict[str, int]] = {}
    for s in r.steps:
        human = next((c.verdict for c in reversed(s.checks) if c.kind == "human" and c.by == user), None)
        if not human:
            continue
        for c in s.checks:
            if c.kind == "human" or not c.verdict:
                continue
            row = out.setdefault(c.kind, {"agree": 0, "n": 0})
            row["n"] += 1
            row["agree"] += int((c.verdict > 0) == (human > 0))
    return out


# ------------------------------------------------------------------ trees


@dataclass
class TreeNode:
    id: int
    html: Markup
    visits: int
    q: float
    verdict: int | None
    terminal: bool
    answer: str | None
    on_path: bool
    children: list["TreeNode"]
    expression: str = ""


def tree_view(data: dict[str, Any], path_nodes: set[int] | None = None, *, max_nodes: int = 2000) -> TreeNode | None:
    """A saved search tree (``Tree.to_dict()`` JSON: nodes with ``id``/``parent``/``text``/``visits``/
    ``q``/``check``) as nested nodes; ``path_nodes`` marks one rationale's path."""
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        return None
    path_nodes = path_nodes or set()
    built: dict[int, TreeNode] = {}
    root = None
    for d in nodes[:max_nodes]:
        if not isinstance(d, dict) or not isinstance(d.get("id"), int):
            continue
        check = d.get("check") or {}
        verdict = check.get("verdict") if isinstance(check, dict) else None
        expr = str((check.get("detail") or {}).get("expression", "")) if isinstance(check, dict) else ""
        q = d.get("q")
        node = TreeNode(id=d["id"], html=math_html(str(d.get("text") or "")), visits=int(d.get("visits") or 0),
                        q=float(q) if isinstance(q, (int, float)) else 0.0,
                        verdict=verdict if isinstance(verdict, int) else None, terminal=bool(d.get("terminal")),
                        answer=d.get("answer"), on_path=d["id"] in path_nodes, children=[], expression=expr)
        built[node.id] = node
        parent = d.get("parent")
        if parent is None:
            root = root or node
        elif parent in built:
            built[parent].children.append(node)
    return root
