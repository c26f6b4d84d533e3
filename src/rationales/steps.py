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

Layout is never a step, in any mode: a line that holds only a display-maths delimiter
(``\\[``, ``\\]``, ``$$``, ``\\begin{align}``), a code fence, a rule (``---``) or no letter or digit
at all is dropped. A display block (``\\[`` ... ``\\]``, ``$$`` ... ``$$``, ``\\begin{..}`` ...
``\\end{..}``, a fenced code block) opened on a line of its own belongs to the step that
introduces it: in ``lines`` mode its lines join the step before it (a block at the very start
is a step of its own, without its delimiters), and in ``numbered`` mode a marker inside a block
does not start a step.
"""

from __future__ import annotations

import re

from .records import Step

_NUMBERED = re.compile(r"(?m)^[ \t]*(?:(?:step|Step|STEP)\s*\d+\s*[:.)-]|\d+\s*[.)](?!\d)|[-*•]\s+\*\*Step)")
_SENTENCE_END = re.compile(r"(?<!\d)[.!?](?=\s)|(?<=\d)[.!?](?=\s+[A-Z])|\n\s*\n")

MODES = ("auto", "lines", "numbered", "sentences", "delimiter")

#: a line that is layout only: display delimiters, environments, code fences, rules
_LAYOUT_LINE = re.compile(r"(?:\\\[|\\\]|\\\(|\\\)|\$\$|\\begin\{[^{}]*\}(?:\{[^{}]*\})?|\\end\{[^{}]*\}|"
                          r"(?:`{3,}|~{3,})[\w+#.-]*|[-*_=]{3,}|\\\\)")
_CONTENT = re.compile(r"[^\W_]")  # a letter or digit


def is_layout(text: str) -> bool:
    """True when ``text`` (one or more lines) holds nothing but layout: no step."""
    for line in text.split("\n"):
        s = line.strip()
        if s and _CONTENT.search(s) and not _LAYOUT_LINE.fullmatch(s):
            return False
    return True


def _opener(s: str) -> str | None:
    """The kind of display/code block a stripped line opens on its own, or None."""
    if s in ("\\[", "$$"):
        return s
    if s.startswith(("```", "~~~")) and _LAYOUT_LINE.fullmatch(s):
        return s[:3]
    m = re.fullmatch(r"\\begin\{([^{}]*)\}(?:\{[^{}]*\})?", s)
    return "\\end{" + m.group(1) + "}" if m else None


def _closes(kind: str, s: str) -> bool:
    if kind == "\\[":
        return s.endswith("\\]")
    if kind == "$$":
        return s.endswith("$$")
    if kind in ("```", "~~~"):
        return s.startswith(kind)
    return kind in s


def _lines(text: str) -> list[tuple[int, int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line), line.strip()))
        pos += len(line) + 1
    return out


#: a block longer than this many lines is not treated as one (its lines are steps as usual)
_MAX_BLOCK_LINES = 200


def _blocks(lines: list[tuple[int, int, str]]) -> dict[int, int]:
    """Opener line index -> closer line index, for the display/code blocks of the text."""
    out: dict[int, int] = {}
    i = 0
    while i < len(lines):
        kind = _opener(lines[i][2])
        if kind is None:
            i += 1
            continue
        for j in range(i + 1, min(len(lines), i + 1 + _MAX_BLOCK_LINES)):
            if _closes(kind, lines[j][2]):
                out[i] = j
                i = j
                break
        i += 1
    return out


def _line_steps(text: str) -> list[tuple[int, int]]:
    lines = _lines(text)
    blocks = _blocks(lines)
    spans: list[list[int]] = []
    i = 0
    while i < len(lines):
        a, b, s = lines[i]
        if i in blocks:
            j = blocks[i]
            if is_layout(text[lines[i][1]:lines[j][1]]):
                pass  # an empty block: nothing to keep
            elif spans:
                spans[-1][1] = lines[j][1]  # the block belongs to the step that introduces it
            else:
                inner = _trimmed(text, lines[i][1], lines[j][0]) if j > i + 1 else None
                if inner and not is_layout(text[inner[0]:inner[1]]):
                    spans.append(list(inner))
            i = j + 1
            continue
        if s and not is_layout(s):
            spans.append([a, b])
        i += 1
    out = []
    for a, b in spans:
        t = _trimmed(text, a, b)
        if t:
            out.append(t)
    return out


def _in_block(text: str) -> list[tuple[int, int]]:
    """Character ranges strictly inside the text's display/code blocks."""
    lines = _lines(text)
    return [(lines[i][1], lines[j][0]) for i, j in _blocks(lines).items()]


def _drop_layout(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop spans that are layout only and trim stray layout lines (rules, lone braces) from their ends."""
    out = []
    for a, b in spans:
        if is_layout(text[a:b]):
            continue
        while True:  # trailing stray layout lines that close nothing of the step
            nl = text.rfind("\n", a, b)
            if nl < 0:
                break
            last = text[nl + 1:b].strip()
            if is_layout(last) and not any(_closes(k, last) for k in ("\\[", "$$", "```", "~~~")) \
                    and "\\end" not in last:
                t = _trimmed(text, a, nl)
                if t is None:
                    break
                a, b = t
            else:
                break
        out.append((a, b))
    return out


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
        return _line_steps(text)
    if mode == "numbered":
        inside = _in_block(text)
        cuts = [m.start() for m in _NUMBERED.finditer(text) if not any(a <= m.start() < b for a, b in inside)]
        if not cuts:
            return split_spans(text, "lines")
        return _drop_layout(text, _from_cuts(text, cuts))
    if mode == "sentences":
        return _drop_layout(text, _from_cuts(text, [m.end() for m in _SENTENCE_END.finditer(text)]))
    # delimiter
    if not delimiter:
        raise ValueError("segmentation mode 'delimiter' needs a delimiter")
    cuts = []
    for m in re.finditer(re.escape(delimiter), text):
        cuts.extend([m.start(), m.end()])
    spans = _from_cuts(text, cuts)
    return _drop_layout(text, [s for s in spans if text[s[0]:s[1]] != delimiter.strip()])


def segment(text: str, mode: str = "auto", delimiter: str | None = None) -> list[Step]:
    """Split ``text`` into ``Step`` records with character spans."""
    return [Step(index=i, text=text[a:b], span=(a, b))
            for i, (a, b) in enumerate(split_spans(text, mode, delimiter))]
