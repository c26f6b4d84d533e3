"""Finding the claims of a text, judging each one, and the checks attached to steps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ...records import Check, Rationale, Step
from .evaluate import Undefined, Unsupported, as_fraction, real_value
from .lexer import EQ, NUM, OF, OP, PCT, RP, SEP, VAR, WORD, Tok, tokenize
from .parser import Expr, Parser, fmt, num_node
from .symbolic import (REWRITE_CUES, SETUP_CUES, TRIAL_CUES, Context, Pending, difference, is_bare_symbol,
                       linear_root, reads_as_equation, solution_holds, sym_value)

CHECK_BY = "sympy"
#: a text longer than this is not read at all (no claims): a step is never this long
MAX_TEXT_CHARS = 20_000
_FAIL = (Unsupported, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError, ArithmeticError)


@dataclass
class Claim:
    """One claim found in a text.

    ``expression``: the claim as written; ``lhs``: the normalised expression that was
    evaluated; ``claimed``: the value the text states for it; ``value``: its exact value (None
    when undefined, e.g. division by zero, or for an identity); ``span``: (start, end) of
    ``expression`` in the text; ``claimed_span``: where the claimed number is written (None
    when the claimed side is an expression); ``ok``: whether the claim holds under
    ``tolerance``; ``kind``: ``arithmetic`` (numbers only), ``identity`` (an algebraic
    rewrite, checked by expansion), ``substitution`` (named quantities replaced by the values
    they were given earlier) or ``solution`` (a value that must solve an earlier equation)."""

    expression: str
    lhs: str
    claimed: float | None
    span: tuple[int, int]
    value: float | None = None
    ok: bool = False
    relation: str = "="
    claimed_span: tuple[int, int] | None = None
    note: str = ""
    kind: str = "arithmetic"
    rhs: str = ""
    tolerance: str = ""

    def why(self) -> str:
        """One line for a person: what was evaluated, its value, the claim, the tolerance."""
        verdict = "holds" if self.ok else "wrong"
        if self.kind == "identity":
            return f"{self.lhs} = {self.rhs}: {self.note} ({verdict})"
        if self.kind in ("solution", "equation"):
            return f"{self.expression}: {self.note}; {self.lhs} gives {_num(self.value)}, " \
                   f"stated {_num(self.claimed)} " \
                   f"({self.tolerance}; {verdict})"
        if self.value is None:
            return f"{self.lhs} has no value ({self.note or 'undefined'}); claimed {_num(self.claimed)} (wrong)"
        extra = f"; {self.note}" if self.note else ""
        return f"{self.lhs} = {_num(self.value)}, claimed {_num(self.claimed)} ({self.tolerance}{extra}; {verdict})"

    def as_dict(self) -> dict[str, Any]:
        d = {"expression": self.expression, "lhs": self.lhs, "value": self.value, "claimed": self.claimed,
             "ok": self.ok, "span": list(self.span), "kind": self.kind, "rhs": self.rhs,
             "tolerance": self.tolerance}
        if self.note:
            d["note"] = self.note
        return d


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:.10g}"


def _float(v: Any) -> float | None:
    """A value for the record (JSON-safe: None when it has no finite float)."""
    try:
        f = float(as_fraction(v)) if not isinstance(v, Fraction) else float(v)
    except (Unsupported, ValueError, OverflowError, TypeError, ArithmeticError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def _close(value: Fraction, claimed: Fraction, rel_tol: float, abs_tol: Fraction = Fraction(1, 10**9)) -> bool:
    if value == claimed:
        return True
    return abs(value - claimed) <= max(abs_tol, Fraction(rel_tol) * max(abs(value), abs(claimed)))


def _rounded(value: Fraction, claimed: Fraction, half: Fraction) -> bool:
    return abs(value - claimed) <= half * (1 + Fraction(1, 10**9)) + Fraction(1, 10**12)


def _zeros(text: str, rhs: Expr) -> int:
    digits = re.sub(r"\D", "", text[rhs.num_spans[0][0]:rhs.num_spans[0][1]], flags=re.ASCII) if rhs.num_spans else ""
    return len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0


def judge(lhs: Expr, rhs: Expr, value: Any, claimed: Any, relation: str, rel_tol: float,
          text: str) -> tuple[bool, str, str]:
    """Does ``value`` (of lhs) match ``claimed`` (of rhs)? -> (ok, note, tolerance used)."""
    if value == claimed:
        return True, "", "exact"
    v, c = as_fraction(value), as_fraction(claimed)
    bare = rhs.ops == 0 and rhs.nums == 1
    candidates = [(c, 1, "")]
    if bare and rhs.pcts == 1 and lhs.pcts == 0:
        candidates.append((c * 100, 100, "percent points"))  # "100 - 20 = 80%"
    if bare and rhs.pcts == 0 and lhs.pcts and lhs.pcts == lhs.nums:
        candidates.append((c / 100, 1, "percent points"))  # "100% - 20% = 80"
    tolerance = f"relative {rel_tol:g}"
    for cand, scale, note in candidates:
        if _close(v, cand, rel_tol):
            return True, note, tolerance
        if bare:
            scale_pct = Fraction(100 if rhs.pcts else 1, scale)
            if rhs.decimals > 0:
                half = Fraction(1, 2) / 10**rhs.decimals / scale_pct
                tolerance = f"±{float(half):g} (rounded to {rhs.decimals} decimals)"
                if _rounded(v, cand, half):
                    return True, (note + " rounded").strip(), tolerance
            elif relation == "≈":
                half = Fraction(1, 2) * 10**_zeros(text, rhs) / scale_pct
                tolerance = f"±{float(half):g} (approximately)"
                if _rounded(v, cand, half):
                    return True, (note + " rounded").strip(), tolerance
    return False, "", tolerance


def pieces(toks: list[Tok]) -> list[list[tuple[int, int, Tok | None]]]:
    """Clauses (split at separators) of pieces (split at relations): [(lo, hi, relation before)]."""
    clauses, cur, lo, rel = [], [], 0, None
    for j, t in enumerate(toks + [Tok(SEP, 0, 0)]):
        if t.kind in (SEP, EQ):
            cur.append((lo, j, rel))
            lo, rel = j + 1, t if t.kind == EQ else None
            if t.kind == SEP:
                if len(cur) > 1:
                    clauses.append(cur)
                cur = []
    return clauses


def _span(toks: list[Tok], left: Expr, right: Expr) -> tuple[int, int]:
    """Token range [first, last] of a claim "left REL right" as written (without trailing units)."""
    end_tok = right.last_num if right.ops == 0 and right.last_num >= 0 and not right.syms else right.end - 1
    if right.ops > 0 or right.syms:
        end_tok = right.end - 1
        while end_tok > right.start and toks[end_tok].kind in (WORD, OF, OP):
            end_tok -= 1
    if end_tok < right.start:
        end_tok = right.end - 1
    if end_tok + 1 < len(toks) and toks[end_tok].kind == NUM and toks[end_tok + 1].kind == PCT:
        end_tok += 1
    seg = toks[left.start:end_tok + 1]
    depth = sum(t.kind == "LP" for t in seg) - sum(t.kind == RP for t in seg)
    while depth > 0 and end_tok + 1 < len(toks) and toks[end_tok + 1].kind == RP:
        end_tok, depth = end_tok + 1, depth - 1  # close "\boxed{12}", "(3 + 4)"
    return left.start, end_tok


def _numeric_claim(text: str, toks: list[Tok], left: Expr, right: Expr, relation: str,
                   rel_tol: float) -> Claim | None:
    if relation == "is" and left.ops == 0:
        return None
    lhs, rhs = (left, right) if left.ops > 0 else (right, left)
    a, b = _span(toks, left, right)
    start, end = toks[a].start, toks[b].end
    expression = text[start:end]
    claimed_span = rhs.num_spans[0] if rhs.ops == 0 and len(rhs.num_spans) == 1 else None
    try:
        value = real_value(lhs.node)
    except Undefined:
        try:
            claimed_f = _float(real_value(rhs.node))
        except (Undefined, *_FAIL):
            claimed_f = None
        return Claim(expression, lhs.src, claimed_f, (start, end), None, False, relation, claimed_span, "undefined",
                     rhs=rhs.src, tolerance="none: the left side has no value")
    except _FAIL:
        return None
    try:
        claimed = real_value(rhs.node)
        ok, note, tol = judge(lhs, rhs, value, claimed, relation, rel_tol, text)
    except (Undefined, *_FAIL):
        return None
    rhs_src = rhs.src
    if not ok and lhs is left and right.ops > 0 and right.lead is not None:
        # running arithmetic "2 + 3 = 5 + 1 = 6": the link claims the leading number
        lead_expr = Expr(fmt(right.lead), num_node(right.lead), right.start, right.start + 1, nums=1,
                         num_spans=right.num_spans[:1])
        import sympy

        lead = sympy.Rational(right.lead.numerator, right.lead.denominator)
        ok, note, tol = judge(lhs, lead_expr, value, lead, relation, rel_tol, text)
        if ok or right.lead != left.lead:  # a rewrite "a x b = a x (c)" is reported as such
            claimed, note, rhs_src = lead, ("running " + note).strip(), fmt(right.lead)
            claimed_span = right.num_spans[0] if right.num_spans else None
    return Claim(expression, lhs.src, _float(claimed), (start, end), _float(value), ok, relation, claimed_span, note,
                 rhs=rhs_src, tolerance=tol)


def _has_quantity(toks: list[Tok], lo: int, hi: int, names: frozenset[str]) -> bool:
    return any(t.kind == VAR or (t.kind == WORD and (t.text in names or t.opword == "*" and t.text in "xX"))
               for t in toks[lo:hi])


def _symbolic_claims(text: str, toks: list[Tok], left: Expr, right: Expr, relation: str, rel_tol: float,
                     ctx: Context, clause_text: str) -> list[Claim]:
    """Claims of a link with named quantities (see ``symbolic``); may update ``ctx``."""
    if relation not in ("=", "≈"):
        return []
    a, b = _span(toks, left, right)
    start, end = toks[a].start, toks[b].end
    expression = text[start:end]
    syms = left.syms | right.syms
    if not syms:
        return []
    # a definition or a solution: "s = 12", "x = 7 - 3"
    for bare, other in ((left, right), (right, left)):
        if is_bare_symbol(bare) and not other.syms:
            if bare is left and left.start > 0 and toks[left.start - 1].kind not in (WORD, EQ, SEP):
                return []  # "\\sum_{k=1}^{5} k = 15": the name is part of something we did not read
            name = bare.node[1]
            try:
                v = as_fraction(real_value(other.node))
            except (Undefined, *_FAIL):
                return []
            if TRIAL_CUES.search(clause_text):
                ctx.values.pop(name, None)
                return []
            out = []
            for p in [p for p in ctx.pending if p.name == name][-1:]:  # the equation it was solved from
                res = solution_holds(p, name, v, other.decimals, rel_tol)
                if res is None:
                    continue
                ok, root = res
                out.append(Claim(f"{p.expression} ⇒ {expression}", p.src, float(v), (start, end),
                                 _float(root) if p.node is not None and root is not None and not root.free_symbols
                                 else None, ok, "=", other.num_spans[0] if len(other.num_spans) == 1 else None,
                                 "substituted into the equation", kind="solution", rhs=f"{name} = {fmt(v)}",
                                 tolerance=f"relative {rel_tol:g}" if other.decimals == 0 else
                                 f"±{0.5 * 10 ** -other.decimals:g} (rounded to {other.decimals} decimals)"))
            ctx.pending = [p for p in ctx.pending if p.name != name]
            ctx.values[name] = v
            return out
    known = syms <= set(ctx.values)
    if known and not SETUP_CUES.search(text):
        try:
            value = real_value(left.node, _table(ctx)) if left.ops > 0 or right.ops == 0 else None
            lhs, rhs = (left, right) if value is not None else (right, left)
            value = real_value(lhs.node, _table(ctx))
            claimed = real_value(rhs.node, _table(ctx))
            ok, note, tol = judge(lhs, rhs, value, claimed, relation, rel_tol, text)
        except Undefined:
            return [Claim(expression, left.src, None, (start, end), None, False, relation, None, "undefined",
                          kind="substitution", rhs=right.src, tolerance="none: the left side has no value")]
        except _FAIL:
            return []
        subs = ", ".join(f"{k} = {fmt(ctx.values[k])}" for k in sorted(syms))
        return [Claim(expression, lhs.src, _float(claimed), (start, end), _float(value), ok, relation,
                      rhs.num_spans[0] if rhs.ops == 0 and len(rhs.num_spans) == 1 else None,
                      (f"{note}; " if note else "") + f"with {subs}", kind="substitution", rhs=rhs.src, tolerance=tol)]
    if relation != "=":
        return []
    d = difference(left, right, ctx)
    if d is None:
        return []
    if d == 0:
        return [Claim(expression, left.src, None, (start, end), None, True, relation, None,
                      "expands to the same polynomial", kind="identity", rhs=right.src, tolerance="exact")]
    unknown = syms - set(ctx.values)
    if REWRITE_CUES.search(text) and left.syms == right.syms and left.ops > 0 and right.ops > 0 \
            and not TRIAL_CUES.search(clause_text) and not reads_as_equation(d):
        return [Claim(expression, left.src, None, (start, end), None, False, relation, None,
                      "the two sides differ after expansion", kind="identity", rhs=right.src, tolerance="exact")]
    if len(unknown) == 1:
        try:
            import sympy

            node = ("-", left.node, right.node)
            sym_value(node, ctx, True)  # must be computable
        except (Undefined, *_FAIL, sympy.SympifyError):
            return []
        name = next(iter(unknown))
        new = Pending(node, name, f"{left.src} = {right.src}", expression, ctx.step)
        before = [p for p in ctx.pending if p.name == name]
        ctx.pending.append(new)
        if before and not TRIAL_CUES.search(clause_text):
            # an equation rewritten into another: both must have the same solution
            r_old, r_new = linear_root(before[-1].node, name), linear_root(node, name)
            if r_old is not None and r_new is not None:
                ok = _close(as_fraction(r_old), as_fraction(r_new), rel_tol)
                return [Claim(f"{before[-1].expression} ⇒ {expression}", new.src, _float(r_new), (start, end),
                              _float(r_old), ok, "=", None, f"solutions {name} = {fmt(as_fraction(r_old))} and "
                              f"{name} = {fmt(as_fraction(r_new))}", kind="equation", rhs=before[-1].src,
                              tolerance=f"relative {rel_tol:g}")]
    return []


def _table(ctx: Context) -> dict[str, Any]:
    import sympy

    return {k: sympy.Rational(v.numerator, v.denominator) for k, v in ctx.values.items()}


def find_claims(text: str, rel_tol: float = 1e-6, context: Context | None = None) -> list[Claim]:
    """All claims written in ``text`` (see the package docstring), each evaluated. ``context``
    carries named quantities and open equations from earlier steps (and is updated)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        return []
    ctx = context if context is not None else Context()
    toks = tokenize(text, ctx.letters)
    ctx.letters = ctx.letters | {t.text for t in toks if t.kind == VAR and len(t.text) == 1}
    claims: list[Claim] = []
    for clause in pieces(toks):
        names = ctx.names()
        parser = Parser(toks, text, names=names)
        lefts = [parser.suffix(lo, hi) if lo < hi else None for lo, hi, _ in clause]
        rights = [parser.prefix(lo, hi) if lo < hi else None for lo, hi, _ in clause]
        sym_parser: Parser | None = None
        for k in range(len(clause) - 1):
            rel_tok = clause[k + 1][2]
            relation = rel_tok.op if rel_tok is not None else "="
            left, right = lefts[k], rights[k + 1]
            if left is not None and right is not None and (left.ops > 0 or right.ops > 0):
                c = _numeric_claim(text, toks, left, right, relation, rel_tol)
                if c is not None:
                    claims.append(c)
                    continue
            (llo, lhi, _), (rlo, rhi, _) = clause[k], clause[k + 1]
            if llo >= lhi or rlo >= rhi:
                continue
            if not (_has_quantity(toks, llo, lhi, ctx.names()) or _has_quantity(toks, rlo, rhi, ctx.names())):
                continue
            names = ctx.names()
            if sym_parser is None or sym_parser.names != names:
                sym_parser = Parser(toks, text, symbolic=True, names=names)
            sl, sr = sym_parser.suffix(llo, lhi), sym_parser.prefix(rlo, rhi)
            if sl is None or sr is None:
                continue
            clause_text = text[toks[clause[0][0]].start if clause[0][0] < len(toks) else 0:toks[sl.start].start]
            claims.extend(_symbolic_claims(text, toks, sl, sr, relation, rel_tol, ctx, clause_text))
    return claims


# ------------------------------------------------------------------ checks on records


def check_step(step: Step, rel_tol: float = 1e-6, *, context: Context | None = None) -> Check | None:
    """A ``Check(kind="tool")`` for the step's claims, or None when it has none.

    verdict +1 when every claim holds, -1 when any fails; ``detail["claims"]`` lists each
    claim (expression, lhs: what was evaluated, value, claimed, tolerance, kind, ok) and
    ``detail["expression"]`` is the first wrong claim (or the first claim when all hold).
    ``context`` carries named quantities from earlier steps (``check_rationale`` passes one)."""
    try:
        claims = find_claims(step.text, rel_tol=rel_tol, context=context)
    except RecursionError:  # never expected (the parser is bounded); a step must never stop a run
        return None
    if not claims:
        return None
    wrong = [c for c in claims if not c.ok]
    first = (wrong or claims)[0]
    return Check(kind="tool", by=CHECK_BY, verdict=-1 if wrong else 1,
                 score=sum(c.ok for c in claims) / len(claims),
                 detail={"claims": [c.as_dict() for c in claims], "expression": first.expression,
                         "evaluated": first.lhs, "value": first.value, "claimed": first.claimed,
                         "tolerance": first.tolerance, "why": first.why(), "rel_tol": rel_tol})


def check_rationale(r: Rationale, rel_tol: float = 1e-6) -> Rationale:
    """Attach tool checks to every step of ``r`` (in place; also returned). Named quantities
    and open equations carry from step to step. Earlier tool checks by this checker are
    replaced, so re-checking never duplicates them."""
    ctx = Context()
    for step in r.steps:
        step.checks = [c for c in step.checks if not (c.kind == "tool" and c.by == CHECK_BY)]
        check = check_step(step, rel_tol=rel_tol, context=ctx)
        if check is not None:
            step.checks.append(check)
        ctx.next_step()
    return r


__all__ = ["Claim", "find_claims", "check_step", "check_rationale", "judge", "pieces", "CHECK_BY", "MAX_TEXT_CHARS"]
