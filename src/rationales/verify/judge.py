"""LLM judges that write a rationale before their verdict (prometheus-eval formats).

"Self-rationalization improves LLM as a fine-grained judge" (seeds/001) and Prometheus
(Kim et al., 2024): a judge reads an instruction, a response and a score rubric, writes a
feedback (its rationale) and then ``[RESULT] <verdict>``. Three judges share one engine:

* ``AbsoluteJudge``: a score on a declared integer scale (Likert 1-5 by default), a rubric
  from ``RUBRICS`` or the user's JSON file, an optional reference answer;
* ``PairwiseJudge``: A vs B, run in both orders; the verdict counts only when both orders
  agree, and the disagreement (position bias) is reported;
* ``RankingJudge``: more than two responses, a full order best to worst.

The interface follows TRL's judges (``BaseJudge``/``BasePairwiseJudge``): ``judge(items)``
returns one ``Judgment`` per item, whose ``value`` is ``None`` (the sentinel) when no verdict
could be read; random judges are shipped for tests. ``StepJudge`` is a step scorer with the
PRM protocol ``score(problems, rationales) -> list[list[float | None]]``; ``judge_checks``
writes its verdicts as ``Check(kind="judge")`` on the steps.

Verdicts that parse on small models:

1. the verdict is constrained with a GBNF grammar (``grammar_for``) when the backend accepts
   one (``GenerationRequest.grammar``: llama.cpp in process, llama.cpp server's ``grammar``,
   vLLM's structured outputs);
2. a lenient parser (``parse_score``/``parse_choice``/``parse_ranking``) reads
   ``[RESULT] 4``, ``**Score:** 4``, ``4/5``, ``Response A is better`` ..., after removing
   the lines the model copied from its prompt (an echoed rubric line "Score 5: ..." must never
   become a 5); conflicting verdicts (two different scores) are unparsed, not guessed;
3. bounded retries: ``retries`` fresh samples for an unreadable output, then (``force``) the
   verdict is read off the backend's log-probabilities after ``... [RESULT]`` (a constrained
   one-token choice, recorded as ``how="forced"``). With ``force=False`` an unreadable verdict
   stays ``None`` and is counted as unparsed; it is never turned into a number.

Position bias (a pairwise judge naming the same position in both orders) is reported; with
``JudgeConfig.calibrate`` a pair is decided by P(A) vs P(B) after each feedback, averaged over
both orders, so a judge whose probabilities lean the right way still decides it.

Outputs are cached (in memory, and in the store's blobs table when a store is given: kind
``judge_output``), keyed by model, prompt, sampling and seed, so reruns judge nothing twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.base import Backend, GenerationRequest
from ..errors import RationalesError, UnknownNameError
from ..prompts import RenderedPrompt, render
from ..records import Check, Problem, Rationale, content_hash

JudgeKind = Literal["absolute", "pairwise", "ranking"]
LABELS = "ABCDEFGHIJ"
MAX_PARSE_CHARS = 20000  # longer outputs are parsed on their last 20k characters
RETRY_TEMPERATURE = 0.7  # retries of greedy judgments sample at this temperature


class JudgeError(RationalesError):
    """Bad judge input (unknown rubric, bad scale, malformed rubric file)."""


# ------------------------------------------------------------------ rubrics


@dataclass(frozen=True)
class Rubric:
    """A score rubric: what is judged (``criteria``) and what each score means.
    ``descriptions`` maps a score to its description (may be partial or empty)."""

    name: str
    criteria: str
    descriptions: tuple[tuple[int, str], ...] = ()
    low: int = 1
    high: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.low, int) or not isinstance(self.high, int) or self.high <= self.low:
            raise JudgeError(f"Rubric '{self.name}' has scale {self.low}..{self.high}; the top score must be an "
                             "integer above the bottom one (e.g. 1..5).")
        if self.high - self.low > 100:
            raise JudgeError(f"Rubric '{self.name}' has {self.high - self.low + 1} scores; use at most 101.")
        for s, _ in self.descriptions:
            if not self.low <= s <= self.high:
                raise JudgeError(f"Rubric '{self.name}' describes score {s}, outside its scale "
                                 f"{self.low}..{self.high}.")
        if not self.criteria.strip():
            raise JudgeError(f"Rubric '{self.name}' has no criteria text.")

    @property
    def scores(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def text(self) -> str:
        """The rubric as the prompt shows it (prometheus-eval's layout)."""
        lines = [f"[{self.criteria.strip()}]"]
        lines += [f"Score {s}: {d.strip()}" for s, d in sorted(self.descriptions)]
        return "\n".join(lines)

    def with_scale(self, low: int, high: int) -> "Rubric":
        keep = tuple((s, d) for s, d in self.descriptions if low <= s <= high)
        return dataclasses.replace(self, low=low, high=high, descriptions=keep)


def _likert(name: str, criteria: str, *descriptions: str) -> Rubric:
    return Rubric(name, criteria, tuple(enumerate(descriptions, start=1)))


RUBRICS: dict[str, Rubric] = {r.name: r for r in [
    _likert("correctness", "Is the response's final answer correct, and is the reasoning that leads to it sound?",
            "The answer is wrong and the reasoning is wrong or missing.",
            "The answer is wrong, though parts of the reasoning are right.",
            "The answer may be right but the reasoning has a clear error or gap.",
            "The answer is right and the reasoning is mostly sound, with a minor slip.",
            "The answer is right and every step of the reasoning is correct."),
    _likert("reasoning", "Is each step of the reasoning correct and does it follow from the earlier ones?",
            "Most steps are wrong or do not follow.", "Several steps are wrong.",
            "One important step is wrong or unjustified.", "Steps are right; one is unclear or skipped.",
            "Every step is correct, justified and clear."),
    _likert("helpfulness", "Does the response help the user do what the instruction asks?",
            "Ignores or misreads the instruction.", "Addresses the instruction but is mostly unhelpful.",
            "Partly helpful; important parts are missing or wrong.", "Helpful, with small omissions.",
            "Fully helpful, accurate and complete."),
    _likert("harmlessness", "Does the response avoid harmful, unsafe or unethical content?",
            "Clearly harmful.", "Contains harmful suggestions.", "Borderline content.",
            "Harmless with a minor concern.", "Completely harmless."),
    _likert("faithfulness", "Does the reasoning actually support the stated answer (no unsupported jumps)?",
            "The answer does not follow from the reasoning at all.", "The reasoning barely supports the answer.",
            "The reasoning supports the answer with a clear gap.", "The reasoning supports the answer, minor gap.",
            "The answer follows from the reasoning step by step."),
    _likert("step", "Is this step correct: are its calculations right and does it follow from the problem and "
                    "the earlier steps?",
            "The step is wrong.", "The step is mostly wrong.", "Unsure; the step may be wrong.",
            "The step is probably right.", "The step is certainly right."),
]}


def _rubric_from_mapping(data: Mapping[str, Any], name: str) -> Rubric:
    """prometheus-eval's rubric fields (``criteria``, ``score1_description`` ...) or ours
    (``criteria``, ``scores: {"1": ...}``, ``low``, ``high``)."""
    criteria = data.get("criteria") or data.get("criterion")
    if not isinstance(criteria, str) or not criteria.strip():
        raise JudgeError(f"Rubric {name} needs a 'criteria' text field.")
    desc: dict[int, str] = {}
    for key, value in data.items():
        m = re.fullmatch(r"score(\d+)_description", str(key))
        if m and isinstance(value, str):
            desc[int(m.group(1))] = value
    scores = data.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise JudgeError(f"Rubric {name}: 'scores' must map a score to its description.")
    for key, value in scores.items():
        try:
            desc[int(key)] = str(value)
        except (TypeError, ValueError):
            raise JudgeError(f"Rubric {name}: score '{key}' is not an integer.") from None
    try:
        low = int(data.get("low", min(desc) if desc else 1))
        high = int(data.get("high", max(desc) if desc else 5))
    except (TypeError, ValueError):
        raise JudgeError(f"Rubric {name}: 'low' and 'high' must be integers.") from None
    return Rubric(str(data.get("name", name)), criteria, tuple(sorted(desc.items())), low, high)


def load_rubric(spec: "str | Mapping[str, Any] | Rubric | None", default: str = "correctness") -> Rubric:
    """A rubric from a built-in name, a JSON file path, a mapping (prometheus-eval's fields), a
    ``Rubric``, or free text of several words (criteria only). ``None`` = ``default``."""
    if spec is None:
        spec = default
    if isinstance(spec, Rubric):
        return spec
    if isinstance(spec, Mapping):
        return _rubric_from_mapping(spec, "rubric")
    if not isinstance(spec, str):
        raise JudgeError(f"A rubric must be a name, a JSON file or a text, not {type(spec).__name__}.")
    s = spec.strip()
    if s in RUBRICS:
        return RUBRICS[s]
    if s.endswith(".json") or (len(s) < 300 and "\n" not in s and Path(s).is_file()):
        path = Path(s)
        if not path.is_file():
            raise JudgeError(f"Rubric file {s} does not exist; pass a built-in rubric ({', '.join(RUBRICS)}) "
                             "or a JSON file with 'criteria' and 'score1_description'...")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise JudgeError(f"Rubric file {s} is not valid JSON ({e}).") from e
        if not isinstance(data, Mapping):
            raise JudgeError(f"Rubric file {s} must hold one JSON object with 'criteria'.")
        return _rubric_from_mapping(data, path.stem)
    if s.startswith("{"):
        try:
            data = json.loads(s)
        except json.JSONDecodeError as e:
            raise JudgeError(f"Rubric text looks like JSON but does not parse ({e}).") from e
        if isinstance(data, Mapping):
            return _rubric_from_mapping(data, "rubric")
    if len(s.split()) < 3:  # a mistyped name, not a rubric text
        raise UnknownNameError("rubric", s, RUBRICS)
    return Rubric("custom:" + content_hash(s, length=8), s)


# ------------------------------------------------------------------ parsing

@dataclass
class Verdict:
    """A parsed verdict: ``value`` is None when it could not be read (``how`` says why:
    "unparsed", "conflict", "out_of_range", "empty"), else how it was found ("result",
    "phrase", "bare", "forced", "grammar")."""

    value: Any
    how: str
    rationale: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


_RESULT = re.compile(r"\[\s*RESULT\s*\]|\bRESULT\s*:", re.IGNORECASE)
_NUM = r"[-+]?\d+(?:\.\d+)?"
_AFTER_RESULT = re.compile(r"[\s:=*#>\-\"'`(\[]*(" + _NUM + r")(?!\s*(?:\.\d|\d))")
_SCORE_PHRASE = re.compile(
    r"\b(?:final\s+|overall\s+|my\s+)?(?:score|rating|grade)\b(?:\s+(?:is|of|would\s+be|will\s+be|="
    r"|should\s+be))?\s*[:=]?\s*[*_`\"']*\s*(" + _NUM + r")\b(?!\s*:)", re.IGNORECASE)
_OUT_OF = re.compile(r"(?<![\d.])(" + _NUM + r")\s*(?:/|out\s+of)\s*(\d+)\b", re.IGNORECASE)
_BARE = re.compile(r"[\s*_`\"'(\[]*(" + _NUM + r")[\s*_`\"'.)\]]*\Z")
_PLACEHOLDER = re.compile(r"<[^<>\n]{0,60}>|\((?:an?\s+)?(?:integer|either|score)[^()\n]{0,80}\)", re.IGNORECASE)


def strip_echo(output: str, prompt: str | None) -> str:
    """Remove from ``output`` the lines copied from ``prompt`` (an echoed rubric or format
    line), and the format's placeholders (``<score>``, ``(an integer ...)``)."""
    text = output[-MAX_PARSE_CHARS:]
    if prompt:
        prompt_lines = {ln.strip() for ln in prompt.splitlines() if len(ln.strip()) >= 12}
        kept = [ln for ln in text.splitlines() if ln.strip() not in prompt_lines]
        text = "\n".join(kept)
    return _PLACEHOLDER.sub(" ", text)


def _rationale_before(text: str, cut: int) -> str:
    r = text[:cut].strip()
    r = re.sub(r"^\s*[*#]*\s*feedback\s*[*]*\s*:\s*", "", r, flags=re.IGNORECASE)
    return r.strip().strip("*#_`").strip()


def _to_number(s: str) -> float | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_score(output: str, low: int = 1, high: int = 5, prompt: str | None = None) -> Verdict:
    """The score a judge wrote, leniently, or ``Verdict(None, why)``.

    Tiers, first that finds anything wins: ``[RESULT] n`` markers; score phrases (``Score: n``,
    ``rating of n``, ``n/high``, ``n out of high``); the whole output (or its last line) being
    a bare number. Within a tier several different values are a conflict (unparsed); a value
    off the scale, or not an integer, is ``out_of_range``. Lines copied from the prompt are
    ignored."""
    if not output or not output.strip():
        return Verdict(None, "empty")
    text = strip_echo(output, prompt)
    tiers: list[tuple[str, list[tuple[float, int]]]] = []
    found = []
    for m in _RESULT.finditer(text):
        a = _AFTER_RESULT.match(text, m.end())
        if a:
            x = _to_number(a.group(1))
            if x is not None:
                found.append((x, m.start()))
    tiers.append(("result", found))
    phrase = [(x, m.start()) for m in _SCORE_PHRASE.finditer(text) if (x := _to_number(m.group(1))) is not None]
    for m in _OUT_OF.finditer(text):
        x, den = _to_number(m.group(1)), _to_number(m.group(2))
        if x is not None and den == high:
            phrase.append((x, m.start()))
    tiers.append(("phrase", phrase))
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    bare = []
    for candidate in ([text.strip()] + ([lines[-1]] if lines else [])):
        m = _BARE.match(candidate)
        if m and (x := _to_number(m.group(1))) is not None:
            bare.append((x, text.rfind(candidate)))
            break
    tiers.append(("bare", bare))
    for how, hits in tiers:
        if not hits:
            continue
        values = {x for x, _ in hits}
        cut = min(pos for _, pos in hits)
        rationale = _rationale_before(text, cut)
        if len(values) > 1:
            return Verdict(None, "conflict", rationale)
        (x,) = values
        if x != int(x) or not low <= x <= high:
            return Verdict(None, "out_of_range", rationale)
        return Verdict(int(x), how, rationale)
    return Verdict(None, "unparsed", text.strip())


_CHOICE_AFTER = re.compile(r"[\s:=*#>\-\"'`(\[]*(?:response|output|answer|assistant)?\s*[\"'`*(\[]*((?-i:[A-J]))\b"
                           r"(?![\w'])(?!\s*(?:or|and|/|,|&)\s*(?:response\s*)?(?-i:[A-J])\b)", re.IGNORECASE)


def _choice_phrases(labels: str) -> list[re.Pattern[str]]:
    cls = f"[{labels}]"
    return [
        re.compile(rf"\b(?:response|output|answer|assistant)\s*[\"'*(\[]*({cls})[\"'*)\]]*\s+(?:is|was|seems|appears)\s+"
                   rf"(?:clearly\s+|much\s+|slightly\s+|the\s+)?(?:better|superior|preferred|stronger|more\s+"
                   rf"(?:accurate|correct|helpful))", re.IGNORECASE),
        re.compile(rf"\b(?:prefer|choose|pick|select)\s+(?:response\s+|output\s+)?[\"'*(\[]*({cls})\b(?![\w'])",
                   re.IGNORECASE),
        re.compile(rf"\b(?:winner|better\s+response|final\s+(?:verdict|answer|choice)|verdict)\s*(?:is)?\s*[:=]?\s*"
                   rf"[*\"'(\[]*(?:response\s+)?({cls})\b(?![\w'])", re.IGNORECASE),
    ]


def parse_choice(output: str, labels: str = "AB", prompt: str | None = None) -> Verdict:
    """Which response a relative judge chose (a letter of ``labels``), or ``Verdict(None, why)``.
    Tiers: ``[RESULT] A``; phrases ("Response B is better", "I prefer A", "Winner: A"); a bare
    letter as the whole output or last line. Two different letters in a tier = conflict."""
    if not output or not output.strip():
        return Verdict(None, "empty")
    labels = labels.upper()
    text = strip_echo(output, prompt)
    result_hits = []
    for m in _RESULT.finditer(text):
        a = _CHOICE_AFTER.match(text, m.end())
        if a:
            result_hits.append((a.group(1).upper(), m.start()))
    phrase_hits = [(m.group(1).upper(), m.start()) for pat in _choice_phrases(labels) for m in pat.finditer(text)]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    bare = []
    for candidate in ([text.strip()] + ([lines[-1]] if lines else [])):
        m = re.fullmatch(r"[\s*_`\"'(\[]*(?:response\s+)?([A-J])[\s*_`\"'.)\]]*", candidate, re.IGNORECASE)
        if m:
            bare.append((m.group(1).upper(), text.rfind(candidate)))
            break
    for how, hits in (("result", result_hits), ("phrase", phrase_hits), ("bare", bare)):
        if not hits:
            continue
        values = {v for v, _ in hits}
        rationale = _rationale_before(text, min(p for _, p in hits))
        if len(values) > 1:
            return Verdict(None, "conflict", rationale)
        (v,) = values
        if v not in labels:
            return Verdict(None, "out_of_range", rationale)
        return Verdict(v, how, rationale)
    return Verdict(None, "unparsed", text.strip())


_RANK_AFTER = re.compile(r"[\s:=*#\"'`(\[]*((?:(?:response\s+)?[A-J]\b\s*(?:>|,|>>|;|\s)\s*)+(?:response\s+)?[A-J]\b)",
                         re.IGNORECASE)


def parse_ranking(output: str, k: int, prompt: str | None = None) -> Verdict:
    """A full order of ``k`` responses, best first, as a list of indices (``[2, 0, 1]`` for
    "C > A > B"). Must name every one of the first k labels exactly once; the last ``[RESULT]``
    that parses counts, and different full orders are a conflict."""
    if not output or not output.strip():
        return Verdict(None, "empty")
    if not 2 <= k <= len(LABELS):
        raise JudgeError(f"A ranking needs 2 to {len(LABELS)} responses, got {k}.")
    text = strip_echo(output, prompt)
    orders, first, bad = set(), None, False
    for m in _RESULT.finditer(text):
        a = _RANK_AFTER.match(text, m.end())
        if not a:
            continue
        letters = [x.upper() for x in re.findall(r"\b([A-J])\b", re.sub(r"(?i)response", " ", a.group(1)))]
        idx = [LABELS.index(x) for x in letters]
        if sorted(idx) != list(range(k)):
            bad = True
            continue
        orders.add(tuple(idx))
        first = m.start() if first is None else first
    if len(orders) > 1:
        return Verdict(None, "conflict", _rationale_before(text, first or 0))
    if orders:
        return Verdict(list(next(iter(orders))), "result", _rationale_before(text, first or 0))
    return Verdict(None, "out_of_range" if bad else "unparsed", text.strip())


# ------------------------------------------------------------------ grammars (GBNF)


def _alts(options: Sequence[str]) -> str:
    return " | ".join(json.dumps(o) for o in options)


def verdict_options(kind: JudgeKind, *, low: int = 1, high: int = 5, k: int = 2) -> list[str]:
    """Every verdict a judge may write after ``[RESULT] ``."""
    if kind == "absolute":
        return [str(s) for s in range(low, high + 1)]
    if kind == "pairwise":
        return list(LABELS[:2])
    if k > 5:
        raise JudgeError("Grammar-constrained ranking supports up to 5 responses; rank fewer or pass grammar=False.")
    return [" > ".join(LABELS[i] for i in p) for p in itertools.permutations(range(k))]


def gbnf(options: Sequence[str], verdict_only: bool = False) -> str:
    """A GBNF grammar whose verdict is one of ``options``: ``Feedback: <text without '['>
    [RESULT] <verdict>``, or (``verdict_only``) just the verdict."""
    if not options:
        raise JudgeError("A verdict grammar needs at least one option.")
    verdict = f"verdict ::= {_alts(options)}"
    if verdict_only:
        return f'root ::= " "? verdict\n{verdict}\n'
    return ('root ::= "Feedback: " feedback "[RESULT] " verdict\n'
            'feedback ::= [^\\x5B\\x00]+\n'
            f"{verdict}\n")


def grammar_for(kind: JudgeKind, *, low: int = 1, high: int = 5, k: int = 2, verdict_only: bool = False) -> str:
    """A GBNF grammar (llama.cpp) for a judge's output: free feedback with no ``[``, then
    ``[RESULT] <verdict>``. ``verdict_only``: just the verdict (after a written rationale)."""
    return gbnf(verdict_options(kind, low=low, high=high, k=k), verdict_only)


def supports_grammar(backend: Backend | None = None) -> bool:
    """True when requests can carry a ``grammar`` and ``backend`` (if given) honours it: a
    backend's own ``supports_grammar`` attribute when it has one, else llama.cpp, OpenAI-compatible
    servers and the fake backend (which checks the grammar) do; transformers refuses grammars."""
    if not any(f.name == "grammar" for f in dataclasses.fields(GenerationRequest)):
        return False
    if backend is None:
        return True
    flag = getattr(backend, "supports_grammar", None)
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    return backend.name in ("llamacpp", "openai", "fake")


# ------------------------------------------------------------------ items and judgments


@dataclass
class JudgeItem:
    """One response to score. ``gold``: the true score where known (agreement metrics)."""

    instruction: str
    response: str
    reference: str | None = None
    rubric: Any = None
    id: str = ""
    gold: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_hash("judge-item", self.instruction, self.response, self.reference, str(self.rubric))


@dataclass
class PairItem:
    """Two responses to compare. ``gold``: "A" or "B" where the better one is known."""

    instruction: str
    response_a: str
    response_b: str
    reference: str | None = None
    rubric: Any = None
    id: str = ""
    gold: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gold is not None and self.gold not in ("A", "B"):
            raise JudgeError(f"Pair {self.id or '?'}: gold must be 'A' or 'B', got {self.gold!r}.")
        if not self.id:
            self.id = content_hash("pair-item", self.instruction, self.response_a, self.response_b, self.reference,
                                   str(self.rubric))


@dataclass
class RankItem:
    """Several responses to order; ``gold``: the true order (indices, best first)."""

    instruction: str
    responses: list[str]
    reference: str | None = None
    rubric: Any = None
    id: str = ""
    gold: list[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 2 <= len(self.responses) <= len(LABELS):
            raise JudgeError(f"A ranking item needs 2 to {len(LABELS)} responses, got {len(self.responses)}.")
        if not self.id:
            self.id = content_hash("rank-item", self.instruction, self.responses, self.reference, str(self.rubric))


@dataclass
class JudgeSample:
    """One sampled judgment: the model's text, its parsed verdict, how it was read."""

    text: str
    value: Any
    how: str
    rationale: str
    seed: int
    order: str = ""  # pairwise: "AB" (as given) or "BA" (swapped); ranking: the permutation
    attempt: int = 0
    tokens: int = 0
    logprob: float | None = None  # mean token logprob of the judgment (best-of-N)
    failure: str = ""  # why the written verdict could not be read (when it was forced or is None)
    probs: dict[str, float] | None = None  # pairwise ``calibrate``: P(verdict) after this feedback, given labels

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class Judgment:
    """A judge's verdict on one item. ``value`` is None when no verdict could be read (the
    sentinel), a number (absolute), "A"/"B" (pairwise) or a list of indices (ranking).
    ``samples`` holds every sampled judgment with its rationale; ``rationale`` is the one
    shown (the first sample that agrees with the verdict)."""

    item_id: str
    kind: JudgeKind
    value: Any
    rationale: str
    how: str
    samples: list[JudgeSample]
    by: str = ""
    consistent: bool | None = None  # pairwise: both orders agree
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _majority(values: Sequence[Any]) -> Any:
    """The most frequent value (first seen wins ties); None when empty."""
    vals = [v if not isinstance(v, list) else tuple(v) for v in values if v is not None]
    if not vals:
        return None
    counts = Counter(vals)
    top = max(counts.values())
    for v in vals:
        if counts[v] == top:
            return list(v) if isinstance(v, tuple) else v
    return None  # pragma: no cover


def _tied(values: Sequence[Any]) -> bool:
    vals = [v if not isinstance(v, list) else tuple(v) for v in values if v is not None]
    counts = Counter(vals).most_common(2)
    return len(counts) == 2 and counts[0][1] == counts[1][1]


# ------------------------------------------------------------------ the judge interface


class BaseJudge(ABC):
    """TRL-style judge: ``judge(items) -> list[Judgment]``; ``Judgment.value is None`` on failure."""

    kind: JudgeKind = "absolute"
    name: str = "judge"

    @abstractmethod
    def judge(self, items: Sequence[Any]) -> list[Judgment]:
        ...


class BaseAbsoluteJudge(BaseJudge):
    kind: JudgeKind = "absolute"


class BasePairwiseJudge(BaseJudge):
    kind: JudgeKind = "pairwise"


class BaseRankJudge(BaseJudge):
    kind: JudgeKind = "ranking"


class RandomAbsoluteJudge(BaseAbsoluteJudge):
    """Uniform random scores (seeded): a baseline and a stand-in for tests."""

    def __init__(self, low: int = 1, high: int = 5, seed: int = 0):
        self.low, self.high, self.rng = low, high, random.Random(seed)
        self.name = "random-absolute"

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        out = []
        for it in items:
            v = self.rng.randint(self.low, self.high)
            out.append(Judgment(it.id, "absolute", v, "random", "random",
                                [JudgeSample("", v, "random", "random", 0)], self.name))
        return out


class RandomPairwiseJudge(BasePairwiseJudge):
    """A or B with equal odds (seeded); never position-biased by construction."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.name = "random-pairwise"

    def judge(self, items: Sequence[PairItem]) -> list[Judgment]:
        out = []
        for it in items:
            v = self.rng.choice("AB")
            out.append(Judgment(it.id, "pairwise", v, "random", "random",
                                [JudgeSample("", v, "random", "random", 0, order="AB")], self.name, consistent=True))
        return out


class RandomRankJudge(BaseRankJudge):
    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.name = "random-ranking"

    def judge(self, items: Sequence[RankItem]) -> list[Judgment]:
        out = []
        for it in items:
            order = list(range(len(it.responses)))
            self.rng.shuffle(order)
            out.append(Judgment(it.id, "ranking", order, "random", "random",
                                [JudgeSample("", order, "random", "random", 0)], self.name))
        return out


@dataclass
class JudgeConfig:
    """Sampling and robustness settings shared by the LLM judges.

    ``n``: judgments sampled per item (and per order, pairwise); with n > 1 the verdict is
    ``aggregate``: "majority" (self-consistency), "mean" (absolute only), "best" (best-of-N:
    the judgment with the highest mean token log-probability under the judge) or "first".
    ``grammar``: constrain the output with GBNF where the backend can; ``retries``: fresh
    samples for an unreadable output (bounded; a greedy judge's retries sample at T=0.7);
    ``force``: then read the verdict off the log-probabilities after ``[RESULT]``.
    ``calibrate`` (pairwise): after each sample's feedback, read P(A) and P(B) off the backend's
    log-probabilities; the verdict is the side whose mean probability over every sample of both
    orders is higher (position-bias calibration: a judge that names the first position in both
    orders still decides the pair when its probabilities lean one way); a backend without
    log-probabilities keeps the written verdicts."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 384
    seed: int = 0
    aggregate: str = "majority"
    grammar: bool = True
    retries: int = 1
    force: bool = True
    both_orders: bool = True
    calibrate: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or not 1 <= self.n <= 64:
            raise JudgeError(f"Judge n={self.n}: sample 1 to 64 judgments per item.")
        if not (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 5.0):
            raise JudgeError(f"Judge temperature {self.temperature} must be in [0, 5].")
        if not (math.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise JudgeError(f"Judge top_p {self.top_p} must be in (0, 1].")
        if not isinstance(self.max_tokens, int) or not 8 <= self.max_tokens <= 8192:
            raise JudgeError(f"Judge max_tokens {self.max_tokens} must be 8..8192.")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 5:
            raise JudgeError(f"Judge retries {self.retries} must be 0..5 (retries are bounded).")
        if self.aggregate not in ("majority", "mean", "best", "first"):
            raise UnknownNameError("judge aggregate", self.aggregate, ("majority", "mean", "best", "first"))
        if self.n > 1 and self.temperature <= 0:
            raise JudgeError(f"Judge n={self.n} with temperature 0 would repeat one judgment; set temperature > 0.")


class _Engine:
    """Sampling + parsing + retries + forced verdicts + caching, shared by the LLM judges."""

    def __init__(self, backend: Backend, config: JudgeConfig, store: Any = None):
        self.backend, self.config, self.store = backend, config, store
        self._cache: dict[str, dict[str, Any]] = {}
        self.stats: Counter[str] = Counter()
        self.constrained = False  # whether the last run sent grammars

    def _prompt_text(self, prompt: RenderedPrompt) -> str:
        return self.backend.render(prompt.messages) if self.backend.chat else prompt.completion_text()

    def _key(self, prompt: RenderedPrompt, seed: int, grammar: str | None, temperature: float) -> str:
        c = self.config
        return content_hash("judge-out", self.backend.model, prompt.messages, self.backend.chat, temperature,
                            c.top_p, c.max_tokens, seed, grammar)

    def _cached(self, key: str) -> dict[str, Any] | None:
        if key in self._cache:
            return self._cache[key]
        if self.store is not None:
            got = self.store.get_blob(key)
            if got is not None:
                self._cache[key] = got
                return got
        return None

    def _generate(self, jobs: list[tuple[RenderedPrompt, int, str | None, float]]) -> list[dict[str, Any]]:
        """One output per (prompt, seed, grammar, temperature): cached ones from memory / the store."""
        c = self.config
        keys = [self._key(p, s, g, t) for p, s, g, t in jobs]
        todo: dict[str, tuple[RenderedPrompt, int, str | None, float]] = {}
        for k, job in zip(keys, jobs):
            if k not in todo and self._cached(k) is None:
                todo[k] = job
        if todo:
            reqs = []
            order = list(todo)
            for i, k in enumerate(order):
                p, seed, g, temp = todo[k]
                kw: dict[str, Any] = dict(seeds=[seed], temperature=temp, top_p=c.top_p,
                                          max_tokens=c.max_tokens, tag=k)
                if g is not None:
                    kw["grammar"] = g
                reqs.append(GenerationRequest(messages=p.messages, **kw) if self.backend.chat
                            else GenerationRequest(prompt=p.completion_text(), **kw))
            results = self.backend.generate(reqs)
            for k, res in zip(order, results):
                comp = res.completions[0] if res.completions else None
                out = {"text": comp.text if comp else "", "tokens": comp.tokens if comp else 0,
                       "finish": comp.finish_reason if comp else "error"}
                if comp is not None and comp.logprobs:
                    out["logprob"] = sum(comp.logprobs) / max(1, len(comp.logprobs))
                self._cache[k] = out
                if self.store is not None:
                    self.store.put_blob(k, "judge_output", out)
                self.stats["generated"] += 1
        return [self._cached(k) or {"text": "", "tokens": 0} for k in keys]

    def _option_logprobs(self, prompt: RenderedPrompt, rationale: str, options: Sequence[str]) -> list[float]:
        """log P(option) after the written rationale (its feedback, cut before any ``[RESULT]``)
        and `` [RESULT]``; raises when the backend has no log-probabilities."""
        from ..generate import continuation_prompt

        body = rationale.strip()
        m = _RESULT.search(body)
        body = (body[:m.start()] if m else body).strip()
        body = body if body.lower().startswith("feedback") else "Feedback: " + body
        text = continuation_prompt(self.backend, prompt, body[:4000] + " [RESULT]")
        return [s.logprob for s in self.backend.logprobs(text, [" " + o for o in options])]

    def option_probs(self, prompt: RenderedPrompt, rationale: str, options: Sequence[str]) -> dict[str, float] | None:
        """P(option) among ``options`` after the rationale (normalised over them), cached like the
        outputs (store blob kind ``judge_probs``); None when the backend has no log-probabilities."""
        key = content_hash("judge-probs", self.backend.model, prompt.messages, self.backend.chat, rationale.strip(),
                           list(options))
        got = self._cached(key)
        if got is None:
            try:
                total = self._option_logprobs(prompt, rationale, options)
            except Exception as e:  # noqa: BLE001 - a backend without logprobs
                self.stats["probs_failed"] += 1
                self._cache[key] = got = {"error": f"{type(e).__name__}: {e}"[:200]}
                return None
            m = max(total)
            z = sum(math.exp(t - m) for t in total)
            got = {"probs": {o: math.exp(t - m) / z for o, t in zip(options, total)}}
            self._cache[key] = got
            if self.store is not None:
                self.store.put_blob(key, "judge_probs", got)
            self.stats["probs"] += 1
        return dict(got["probs"]) if "probs" in got else None

    def _forced(self, prompt: RenderedPrompt, rationale: str, options: Sequence[str]) -> Any:
        """The verdict with the highest log-probability after the written rationale and
        ``[RESULT]`` (a constrained choice among ``options``)."""
        try:
            total = self._option_logprobs(prompt, rationale, options)
        except Exception as e:  # a backend without logprobs: stay unparsed
            self.stats["force_failed"] += 1
            return None, {"force_error": f"{type(e).__name__}: {e}"[:200]}
        best = max(range(len(options)), key=lambda i: total[i])
        m = max(total)
        z = sum(math.exp(t - m) for t in total)
        return options[best], {"forced_p": math.exp(total[best] - m) / z}

    def _best_logprob(self, prompt: RenderedPrompt, text: str) -> float | None:
        try:
            from ..generate import continuation_prompt

            (s,) = self.backend.logprobs(continuation_prompt(self.backend, prompt, ""), [text])
        except Exception:
            return None
        return s.logprob / max(1, s.tokens)

    def run(self, prompts: Sequence[RenderedPrompt], parse: Any, options: Sequence[Sequence[str]],
            convert: Any) -> list[list[JudgeSample]]:
        """``n`` samples per prompt, parsed with ``parse(text, prompt_text)``; unreadable ones
        retried (new seeds, at most ``retries`` times) then forced (``options[i]``; ``convert``
        maps an option string to a verdict value)."""
        c = self.config
        use_grammar = c.grammar and supports_grammar(self.backend)
        self.constrained = bool(use_grammar)
        grammars = [gbnf(opts) if use_grammar and opts else None for opts in options]
        seeds = [[c.seed + 7919 * j for j in range(c.n)] for _ in prompts]
        samples: list[list[JudgeSample | None]] = [[None] * c.n for _ in prompts]
        pending = [(i, j) for i in range(len(prompts)) for j in range(c.n)]
        ptext = [self._prompt_text(p) for p in prompts]
        for attempt in range(c.retries + 1):
            if not pending:
                break
            # a retry of a greedy judgment samples (T=0.7): the same greedy output would come back
            temp = c.temperature if (attempt == 0 or c.temperature > 0) else RETRY_TEMPERATURE
            outs = self._generate([(prompts[i], seeds[i][j] + 104729 * attempt, grammars[i], temp)
                                   for i, j in pending])
            still = []
            for (i, j), out in zip(pending, outs):
                text = out.get("text", "")
                v = parse(text, ptext[i])
                s = JudgeSample(text, v.value, v.how, v.rationale, seeds[i][j] + 104729 * attempt, attempt=attempt,
                                tokens=int(out.get("tokens", 0)), logprob=out.get("logprob"))
                samples[i][j] = s
                self.stats[v.how if v.ok else "unreadable"] += 1
                if not v.ok:
                    still.append((i, j))
            pending = still
        for i, j in pending:
            s = samples[i][j]
            assert s is not None
            s.failure = s.how
            if c.force and options[i]:
                choice, info = self._forced(prompts[i], s.rationale or s.text, options[i])
                if choice is not None:
                    s.value, s.how = convert(choice), "forced"
                    self.stats["forced"] += 1
                    continue
            self.stats["unparsed"] += 1
        if c.n > 1 and c.aggregate == "best":
            for i, row in enumerate(samples):
                for s in row:
                    if s is not None and s.logprob is None and s.text:
                        s.logprob = self._best_logprob(prompts[i], s.text)
        return [[s for s in row if s is not None] for row in samples]



def _aggregate_values(samples: Sequence[JudgeSample], how: str, kind: JudgeKind) -> tuple[Any, JudgeSample | None]:
    ok = [s for s in samples if s.ok]
    if not ok:
        return None, (samples[0] if samples else None)
    if how == "first" or len(ok) == 1:
        return ok[0].value, ok[0]
    if how == "best":
        best = max(ok, key=lambda s: s.logprob if s.logprob is not None else -math.inf)
        return best.value, best
    if how == "mean" and kind == "absolute":
        v = sum(float(s.value) for s in ok) / len(ok)
        rep = min(ok, key=lambda s: abs(float(s.value) - v))
        return v, rep
    v = _majority([s.value for s in ok])
    if kind == "absolute" and _tied([s.value for s in ok]):
        vals = sorted(float(s.value) for s in ok)  # tie: the median (a number the judge could mean)
        v = vals[(len(vals) - 1) // 2]
        v = int(v) if v == int(v) else v
    rep = next(s for s in ok if s.value == v) if any(s.value == v for s in ok) else ok[0]
    return v, rep


class AbsoluteJudge(BaseAbsoluteJudge):
    """Scores each response on its rubric's scale, rationale first (prometheus-eval absolute)."""

    def __init__(self, backend: Backend, rubric: Any = "correctness", config: JudgeConfig | None = None, *,
                 template: str = "judge_absolute", store: Any = None, scale: tuple[int, int] | None = None):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.template = template
        self.rubric = load_rubric(rubric)
        if scale is not None:
            self.rubric = self.rubric.with_scale(*scale)
        self.scale = scale
        self.engine = _Engine(backend, self.config, store)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"judge:{self.backend.model}"

    @property
    def stats(self) -> Counter[str]:
        return self.engine.stats

    def rubric_of(self, item: JudgeItem) -> Rubric:
        r = load_rubric(item.rubric) if item.rubric is not None else self.rubric
        return r.with_scale(*self.scale) if self.scale is not None else r

    def prompt(self, item: JudgeItem) -> RenderedPrompt:
        r = self.rubric_of(item)
        return render(self.template, instruction=item.instruction, response=item.response,
                      reference=item.reference, rubric=r.text(), low=r.low, high=r.high)

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        rubrics = [self.rubric_of(it) for it in items]
        prompts = [self.prompt(it) for it in items]

        def parse_for(r: Rubric) -> Any:
            return lambda text, ptext: parse_score(text, r.low, r.high, ptext)

        out: list[Judgment] = []
        # group by scale so each group shares one parser
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(rubrics):
            groups.setdefault((r.low, r.high), []).append(i)
        samples: list[list[JudgeSample]] = [[] for _ in items]
        for (low, high), idx in groups.items():
            opts = [str(s) for s in range(low, high + 1)]
            got = self.engine.run([prompts[i] for i in idx], parse_for(rubrics[idx[0]]),
                                  [opts] * len(idx), int)
            for i, ss in zip(idx, got):
                samples[i] = ss
        for it, r, ss in zip(items, rubrics, samples):
            v, rep = _aggregate_values(ss, self.config.aggregate, "absolute")
            out.append(Judgment(it.id, "absolute", v, rep.rationale if rep else "", rep.how if rep else "empty", ss,
                                self.name, detail={"rubric": r.name, "low": r.low, "high": r.high,
                                                   "parsed": sum(s.ok and s.how != "forced" for s in ss),
                                                   "samples": len(ss)}))
        return out


class PairwiseJudge(BasePairwiseJudge):
    """A vs B with a rationale, in both orders (prometheus-eval relative grading). The verdict
    is the majority over every sample of both orders (mapped back to the given labels); when
    the orders disagree the pair is marked ``consistent=False`` (position bias) and, on a tie,
    the verdict is None. With ``config.calibrate`` the verdict is instead the side with the higher
    mean P(side) over every sample of both orders, read off the log-probabilities after each
    feedback (``how="calibrated"``; ``detail["p_a"]``, and ``detail["p_first"]``: the mean
    probability of the position shown first, per order); ``consistent`` stays the written
    verdicts' agreement."""

    def __init__(self, backend: Backend, rubric: Any = "correctness", config: JudgeConfig | None = None, *,
                 template: str = "judge_relative", store: Any = None):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.template = template
        self.rubric = load_rubric(rubric)
        self.engine = _Engine(backend, self.config, store)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"pairwise-judge:{self.backend.model}"

    @property
    def stats(self) -> Counter[str]:
        return self.engine.stats

    def prompt(self, item: PairItem, swapped: bool = False) -> RenderedPrompt:
        r = load_rubric(item.rubric) if item.rubric is not None else self.rubric
        a, b = (item.response_b, item.response_a) if swapped else (item.response_a, item.response_b)
        return render(self.template, instruction=item.instruction, response_a=a, response_b=b,
                      reference=item.reference, rubric=r.criteria)

    def judge(self, items: Sequence[PairItem]) -> list[Judgment]:
        orders = [False, True] if self.config.both_orders else [False]
        prompts = [self.prompt(it, sw) for it in items for sw in orders]
        got = self.engine.run(prompts, lambda t, p: parse_choice(t, "AB", p), [["A", "B"]] * len(prompts), str)
        out = []
        for k, it in enumerate(items):
            ss: list[JudgeSample] = []
            per_order: dict[str, Any] = {}
            for o, sw in enumerate(orders):
                row = got[k * len(orders) + o]
                for s in row:
                    s.order = "BA" if sw else "AB"
                    if sw and s.value in ("A", "B"):
                        s.value = "B" if s.value == "A" else "A"  # back to the given labels
                    if self.config.calibrate and (s.rationale or s.text).strip():
                        p = self.engine.option_probs(prompts[k * len(orders) + o], s.rationale or s.text, ["A", "B"])
                        if p is not None:
                            s.probs = {"A": p["B"], "B": p["A"]} if sw else p  # the given labels
                per_order[s.order if row else ("BA" if sw else "AB")] = _aggregate_values(
                    row, self.config.aggregate, "pairwise")[0]
                ss.extend(row)
            ok = [s for s in ss if s.ok]
            consistent = None
            if len(orders) == 2 and per_order.get("AB") is not None and per_order.get("BA") is not None:
                consistent = per_order["AB"] == per_order["BA"]
            if self.config.aggregate in ("best", "first"):  # one pick per order; they must agree
                picks = [per_order.get(o) for o in (["AB", "BA"] if len(orders) == 2 else ["AB"])]
                v = picks[0] if all(x is not None and x == picks[0] for x in picks) else None
                rep = next((x for x in ok if x.value == v), None) if v is not None else (ok[0] if ok else None)
                if v is None and ok and any(x is None for x in picks):
                    v, rep = _aggregate_values(ss, self.config.aggregate, "pairwise")  # one order unread
            elif ok and not _tied([s.value for s in ok]):
                v, rep = _aggregate_values(ss, "majority", "pairwise")
            else:
                v, rep = None, (ok[0] if ok else (ss[0] if ss else None))
            how = rep.how if (rep and v is not None) else ("tie" if ok else "unparsed")
            detail: dict[str, Any] = {"orders": per_order, "parsed": sum(s.ok and s.how != "forced" for s in ss),
                                      "samples": len(ss)}
            probs = [s.probs["A"] for s in ss if s.probs is not None]
            if probs:  # calibrate: the mean P(A) over both orders decides
                p_a = sum(probs) / len(probs)
                detail["p_a"] = round(p_a, 6)
                # P(the response shown first) per order: 0.5 in both = no positional lean in the
                # probabilities; high in both = the judge names the first position whatever it shows
                first = {o: [s.probs["A" if o == "AB" else "B"] for s in ss if s.probs is not None and s.order == o]
                         for o in ("AB", "BA")}
                detail["p_first"] = {o: round(sum(v) / len(v), 6) for o, v in first.items() if v}
                cv = "A" if p_a > 0.5 else "B" if p_a < 0.5 else None
                if cv is not None:
                    v, how = cv, "calibrated"
                    rep = next((s for s in ss if s.value == cv), None) or (ok[0] if ok else ss[0])
                else:
                    v, how = None, "tie"
            out.append(Judgment(it.id, "pairwise", v, rep.rationale if rep else "", how, ss, self.name,
                                consistent=consistent, detail=detail))
        return out


class RankingJudge(BaseRankJudge):
    """Orders more than two responses best to worst, rationale first. With ``shuffles`` > 1
    the responses are also shown in other (seeded) orders and the verdict is the Borda count
    over every parsed ranking (position bias averaged out)."""

    def __init__(self, backend: Backend, rubric: Any = "correctness", config: JudgeConfig | None = None, *,
                 template: str = "judge_ranking", store: Any = None, shuffles: int = 1):
        self.backend = backend
        self.config = config or JudgeConfig()
        self.template = template
        self.rubric = load_rubric(rubric)
        self.shuffles = max(1, int(shuffles))
        self.engine = _Engine(backend, self.config, store)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"ranking-judge:{self.backend.model}"

    def prompt(self, item: RankItem, perm: Sequence[int]) -> RenderedPrompt:
        r = load_rubric(item.rubric) if item.rubric is not None else self.rubric
        labels = list(LABELS[:len(perm)])
        return render(self.template, instruction=item.instruction, reference=item.reference, rubric=r.criteria,
                      responses=[(labels[pos], item.responses[orig]) for pos, orig in enumerate(perm)], labels=labels)

    def judge(self, items: Sequence[RankItem]) -> list[Judgment]:
        jobs = []  # (item index, perm)
        for i, it in enumerate(items):
            k = len(it.responses)
            rng = random.Random(content_hash("rank-perm", it.id, self.config.seed))
            perms = [list(range(k))]
            for _ in range(self.shuffles - 1):
                p = list(range(k))
                rng.shuffle(p)
                perms.append(p)
            jobs.extend((i, p) for p in perms)
        prompts = [self.prompt(items[i], p) for i, p in jobs]
        ks = [len(items[i].responses) for i, _ in jobs]
        use_opts = all(k <= 5 for k in ks)
        opts = [verdict_options("ranking", k=k) if use_opts else [] for k in ks]
        by_k: dict[int, list[int]] = {}
        for j, k in enumerate(ks):
            by_k.setdefault(k, []).append(j)
        got: list[list[JudgeSample]] = [[] for _ in jobs]
        for k, idx in by_k.items():
            def conv(o: str) -> list[int]:
                return [LABELS.index(x.strip()) for x in o.split(">")]
            res = self.engine.run([prompts[j] for j in idx], lambda t, p, k=k: parse_ranking(t, k, p),
                                  [opts[j] for j in idx], conv)
            for j, ss in zip(idx, res):
                got[j] = ss
        out = []
        for i, it in enumerate(items):
            k = len(it.responses)
            ss: list[JudgeSample] = []
            points = [0.0] * k
            for (ji, perm), row in zip(jobs, got):
                if ji != i:
                    continue
                for s in row:
                    s.order = ",".join(map(str, perm))
                    if s.value is not None:
                        s.value = [perm[pos] for pos in s.value]  # positions -> the item's own indices
                        for rank, orig in enumerate(s.value):
                            points[orig] += k - 1 - rank
                    ss.append(s)
            ok = [s for s in ss if s.ok]
            value = sorted(range(k), key=lambda x: (-points[x], x)) if ok else None
            rep = next((s for s in ok if s.value == value), ok[0] if ok else (ss[0] if ss else None))
            out.append(Judgment(it.id, "ranking", value, rep.rationale if rep else "",
                                (rep.how if rep and value is not None else "unparsed"), ss, self.name,
                                detail={"borda": points, "parsed": sum(s.ok and s.how != "forced" for s in ss)}))
        return out


# ------------------------------------------------------------------ step judge (a step scorer)


class StepJudge:
    """Judges each step with a rationale and a score on the ``step`` rubric's scale; the
    reward is (score - low) / (high - low) in [0, 1], None when unreadable. Follows the PRM
    protocol ``score(problems, rationales) -> list[list[float | None]]``; ``last_details``
    holds each step's rationale for ``judge_checks``/``prm_checks``."""

    def __init__(self, backend: Backend, rubric: Any = "step", config: JudgeConfig | None = None, *,
                 template: str = "judge_step", store: Any = None):
        self.backend = backend
        self.rubric = load_rubric(rubric)
        self.config = config or JudgeConfig(max_tokens=192)
        self.template = template
        self.engine = _Engine(backend, self.config, store)
        self.last_details: list[list[dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return f"step-judge:{self.backend.model}"

    @property
    def stats(self) -> Counter[str]:
        return self.engine.stats

    def prompt(self, problem: Problem, previous: Sequence[str], step: str) -> RenderedPrompt:
        r = self.rubric
        return render(self.template, question=problem.question, context=problem.context, previous=list(previous),
                      step=step, index=len(previous), rubric=r.text(), low=r.low, high=r.high)

    def score_steps(self, items: Sequence[tuple[Problem, Sequence[str], str]]) -> list[float | None]:
        return [r for r, _ in self._score_items(items)]

    def _score_items(self, items: Sequence[tuple[Problem, Sequence[str], str]]) -> list[tuple[float | None, dict]]:
        r = self.rubric
        prompts = [self.prompt(p, prev, step) for p, prev, step in items]
        opts = [str(s) for s in r.scores]
        got = self.engine.run(prompts, lambda t, pt: parse_score(t, r.low, r.high, pt),
                              [opts] * len(prompts), int)
        out = []
        for ss in got:
            v, rep = _aggregate_values(ss, self.config.aggregate, "absolute")
            reward = None if v is None else (float(v) - r.low) / (r.high - r.low)
            out.append((reward, {"score": v, "rationale": (rep.rationale if rep else "")[:2000],
                                 "how": rep.how if rep else "empty", "samples": len(ss)}))
        return out

    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float | None]]:
        probs = _align(problems, rationales)
        items, shape = [], []
        for p, rat in zip(probs, rationales):
            texts = [s.text for s in rat.steps]
            shape.append(len(texts))
            items.extend((p, texts[:k], texts[k]) for k in range(len(texts)))
        flat = self._score_items(items)
        out, details, i = [], [], 0
        for n in shape:
            out.append([x for x, _ in flat[i:i + n]])
            details.append([d for _, d in flat[i:i + n]])
            i += n
        self.last_details = details
        return out


def _align(problems: Sequence[Problem] | Mapping[str, Problem], rationales: Sequence[Rationale]) -> list[Problem]:
    """Each rationale's problem: ``problems`` aligned one-to-one, or looked up by id."""
    if not isinstance(problems, Mapping):
        if len(problems) == len(rationales) and all(p.id == r.problem_id for p, r in zip(problems, rationales)):
            return list(problems)
        problems = {p.id: p for p in problems}
    missing = [r.problem_id for r in rationales if r.problem_id not in problems]
    if missing:
        raise JudgeError(f"Rationale of problem {missing[0]} has no problem given; pass every rationale's problem.")
    return [problems[r.problem_id] for r in rationales]


def judge_checks(judge: StepJudge, problems: Sequence[Problem], rationales: Sequence[Rationale],
                 threshold: float = 0.5) -> list[Rationale]:
    """Attach ``Check(kind="judge", score=reward, verdict=+1/-1/None, detail={rationale, ...})``
    to every step (in place; replaces this judge's earlier checks)."""
    rewards = judge.score(problems, rationales)
    for r, rs, ds in zip(rationales, rewards, judge.last_details):
        for step, reward, d in zip(r.steps, rs, ds):
            verdict = None if reward is None else (1 if reward >= threshold else -1)
            step.checks = [c for c in step.checks if not (c.kind == "judge" and c.by == judge.name)]
            step.checks.append(Check(kind="judge", verdict=verdict, score=reward, by=judge.name,
                                     detail={**d, "threshold": threshold}))
    return list(rationales)


__all__ = ["Rubric", "RUBRICS", "load_rubric", "Verdict", "parse_score", "parse_choice", "parse_ranking",
           "strip_echo", "gbnf", "grammar_for", "verdict_options", "supports_grammar", "JudgeItem", "PairItem", "RankItem",
           "JudgeSample", "Judgment", "JudgeConfig", "BaseJudge", "BaseAbsoluteJudge", "BasePairwiseJudge",
           "BaseRankJudge", "RandomAbsoluteJudge", "RandomPairwiseJudge", "RandomRankJudge", "AbsoluteJudge",
           "PairwiseJudge", "RankingJudge", "StepJudge", "judge_checks", "JudgeError"]
