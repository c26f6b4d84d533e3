"""Segmentation: cut a rationale's free text into steps, keeping character spans.

Modes:
* ``lines``: one step per non-empty line;
* ``numbered``: a step starts at each "1." / "Step 2:" / "2)" marker (text before the first
  marker is its own step), falling back to ``lines`` when there are no markers;
* ``sentences``: sentence boundaries (., !, ? followed by space/newline; decimals kept);
* ``delimiter``: split on a given string (e.g. "\\n\\n" or "<step>");
* ``auto`` (default): ``numbered`` if the text has at least two step markers, else ``lines``.

Spans are (start, end) offsets into the original text with surrounding whitespace trimmed, so
``text[start:end] == step.text`` always holds and a UI can highlight them.
"""

from __future__ import annotations

import re

from .records import Step

_NUMBERED = re.compile(r"(?m)^[ \t]*(?:(?:step|Step|STEP)\s*\d+\s*[:.)-]|\d+\s*[.)](?!\d)|[-*•]\s+\*\*Step)")
_SENTENCE_END = re.compile(r"(?<!\d)[.!?](?=\s)|(?<=\d)[.!?](?=\s+[A-Z])|\n\s*\n")

MODES = ("auto", "lines", "numbered", "sentences", "delimiter")


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _from_cuts(text: str, cuts: list[int]) -> list[tuple[int, int]]:
    bounds = sorted(set([0, *cuts, len(text)]))
    spans = []
    for a, b in zip(bounds, bounds[1:]):
        span = _trimmed(text, a, b)
        if span:
            spans.append(span)
    return spans


def split_spans(text: str, mode: str = "auto", delimiter: str | None = None) -> list[tuple[int, int]]:
    if mode not in MODES:
        from .errors import UnknownNameError

        raise UnknownNameError("segmentation mode", mode, MODES)
    if mode == "auto":
        mode = "numbered" if len(_NUMBERED.findall(text)) >= 2 else "lines"
    if mode == "lines":
        return _from_cuts(text, [m.end() for m in re.finditer(r"\n", text)])
    if mode == "numbered":
        cuts = [m.start() for m in _NUMBERED.finditer(text)]
        if not cuts:
            return split_spans(text, "lines")
        return _from_cuts(text, cuts)
    if mode == "sentences":
        return _from_cuts(text, [m.end() for m in _SENTENCE_END.finditer(text)])
    # delimiter
    if not delimiter:
        raise ValueError("segmentation mode 'delimiter' needs a delimiter")
    cuts = []
    for m in re.finditer(re.escape(delimiter), text):
        cuts.extend([m.start(), m.end()])
    spans = _from_cuts(text, cuts)
    return [s for s in spans if text[s[0]:s[1]] != delimiter.strip()]


def segment(text: str, mode: str = "auto", delimiter: str | None = None) -> list[Step]:
    """Split ``text`` into ``Step`` records with character spans."""
    return [Step(index=i, text=text[a:b], span=(a, b))
            for i, (a, b) in enumerate(split_spans(text, mode, delimiter))]
