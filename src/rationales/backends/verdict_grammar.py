"""Judge verdict grammars on backends without a GBNF engine (transformers).

The judges (``verify.judge.gbnf``) send one family of GBNF grammars::

    root ::= "Feedback: " feedback "[RESULT] " verdict     (or: root ::= " "? verdict)
    feedback ::= [^\\x5B\\x00]+
    verdict ::= "A" | "B"                                    (any list of quoted options)

``parse_verdict_grammar`` recognises exactly that family (anything else is ``None``: the backend
refuses it), and ``VerdictConstraint`` enforces it token by token as a logits processor step:

1. the tokens of ``Feedback:`` are forced first;
2. the feedback is free text, except that no token containing ``[`` may be written; the
   model's end-of-sequence is not allowed there either: its probability moves to the first
   token of `` [RESULT]`` (the model ending its feedback = the model starting its verdict),
   added to that token's own probability;
3. once the suffix has started, only tokens that continue `` [RESULT] <option>`` for some
   option are allowed (a trie over the options' token sequences); the model's own scores pick
   among them (greedy or sampled, as the request says);
4. after a complete option, end-of-sequence is forced.

When the feedback would run into ``max_tokens``, the suffix starts early so the verdict always
fits (as a GBNF-constrained llama.cpp sample would not: it is cut off instead). The verdict is
chosen by the model under the constraint, like llama.cpp's grammar sampling.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_FULL = re.compile(r'\Aroot ::= "Feedback: " feedback "\[RESULT\] " verdict\n'
                   r'feedback ::= \[\^\\x5B\\x00\]\+\n'
                   r'verdict ::= (?P<alts>.+)\n?\Z')
_ONLY = re.compile(r'\Aroot ::= " "\? verdict\nverdict ::= (?P<alts>.+)\n?\Z')
_ALT = re.compile(r'"(?:[^"\\]|\\.)*"')
#: the alternatives as a whole: quoted strings joined by " | " (a " | " inside quotes is an option's text)
_ALTS = re.compile(rf'\A{_ALT.pattern}(?: \| {_ALT.pattern})*\Z')


@dataclass(frozen=True)
class VerdictGrammar:
    options: tuple[str, ...]
    verdict_only: bool = False


def parse_verdict_grammar(grammar: str) -> VerdictGrammar | None:
    """The options of a judge verdict grammar, or None for any other grammar."""
    for pat, only in ((_FULL, False), (_ONLY, True)):
        m = pat.match(grammar)
        if not m:
            continue
        text = m.group("alts").strip()
        if not _ALTS.fullmatch(text):
            return None
        alts = _ALT.findall(text)
        try:
            options = tuple(json.loads(a) for a in alts)
        except json.JSONDecodeError:
            return None
        if not all(isinstance(o, str) and o for o in options):
            return None
        return VerdictGrammar(options, only)
    return None


@dataclass
class _Node:
    children: dict[int, "_Node"] = field(default_factory=dict)
    end: bool = False


class VerdictConstraint:
    """Per-row state machine for one ``VerdictGrammar`` (see the module docstring).

    ``encode(text) -> token ids`` (no special tokens); ``bracket`` is a bool tensor over the
    vocabulary (True where a token's text contains ``[``); ``eos`` the end-of-sequence id.
    ``step(generated, scores)`` masks one row's next-token ``scores`` (1-D tensor) in place,
    given the ids generated so far, and ``max_new`` the row's token budget."""

    def __init__(self, grammar: VerdictGrammar, encode: Callable[[str], list[int]], bracket: Any, eos: int,
                 max_new: int):
        self.g, self.eos, self.bracket, self.max_new = grammar, int(eos), bracket, int(max_new)
        self.prefix = [] if grammar.verdict_only else list(encode("Feedback:"))
        seqs: list[list[int]] = []
        for marker in ([""] if grammar.verdict_only else [" [RESULT]", "[RESULT]"]):
            seqs = [list(encode(marker + " " + o)) for o in grammar.options]
            # the suffix must begin with a token the feedback cannot write (one with '['), so the
            # start of the verdict is unambiguous
            if grammar.verdict_only or all(bool(bracket[s[0]]) for s in seqs if s):
                break
        else:
            raise ValueError("the tokenizer splits '[RESULT]' so that its first token has no '['")
        if not all(seqs):
            raise ValueError("a verdict option encodes to no tokens")
        self.root = _Node()
        for s in seqs:
            node = self.root
            for t in s:
                node = node.children.setdefault(int(t), _Node())
            node.end = True
        self.longest = max(len(s) for s in seqs)
        self.start = -1  # index in the generated ids where the suffix began

    def _node(self, suffix: Sequence[int]) -> _Node | None:
        node = self.root
        for t in suffix:
            node = node.children.get(int(t))
            if node is None:
                return None
        return node

    def step(self, generated: Sequence[int], scores: Any) -> None:
        import torch

        n = len(generated)
        neg = float("-inf")
        if n < len(self.prefix):  # 1. the forced prefix
            keep = self.prefix[n]
            scores.fill_(neg)
            scores[keep] = 0.0
            return
        if self.start < 0 and self.g.verdict_only:
            self.start = len(self.prefix)
        if self.start < 0 and n > len(self.prefix) and int(generated[-1]) in self.root.children:
            self.start = n - 1  # the last token began the suffix
        if self.start < 0:  # 2. free feedback, no '[', EOS becomes the suffix's first token
            first = torch.tensor(sorted(self.root.children), dtype=torch.long, device=scores.device)
            own = scores[first].clone()
            eos_score = scores[self.eos].clone()
            budget_left = self.max_new - n
            scores[self.bracket] = neg
            scores[self.eos] = neg
            if n == len(self.prefix):  # the feedback is not empty
                return
            if budget_left <= self.longest + 1:  # the verdict must start now to fit
                merged = torch.logaddexp(own, eos_score)
                scores.fill_(neg)
                scores[first] = merged
                return
            scores[first] = torch.logaddexp(own, eos_score)
            return
        node = self._node(generated[self.start:])  # 3./4. inside the suffix
        allowed = sorted(node.children) if node is not None else []
        own = scores.clone()
        scores.fill_(neg)
        if node is None or (node.end and not allowed):
            scores[self.eos] = 0.0
            return
        for t in allowed:
            scores[t] = own[t]
        if node.end:
            scores[self.eos] = own[self.eos]


def bracket_mask(tokenizer: Any, vocab_size: int) -> Any:
    """A bool tensor: True for every token id whose text contains ``[``."""
    import torch

    mask = torch.zeros(vocab_size, dtype=torch.bool)
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    for i, p in enumerate(pieces):
        if p is not None and "[" in p:
            mask[i] = True
    return mask


__all__ = ["VerdictGrammar", "parse_verdict_grammar", "VerdictConstraint", "bracket_mask"]
