"""Tool checks of the arithmetic and algebra written in natural-language and LaTeX steps.

Every claim in a step ("20 - 7 = 13", "3 x $4 = $12", "15% of 80 is 12", "\\frac{3}{4} \\times
12 = 9", "\\binom{6}{2} = 15", "7 choose 3 = 35", "5! = 120", "2x + 3x = 5x", "x + 3 = 7, so
x = 4") is found, evaluated exactly, and compared with the value the step claims. This is the
tool check of GroundedPRM (Zhang et al. 2025, papers.md section 5): a math engine executes the
step's computation and the step gets v = +1 when it agrees, -1 when it does not.

The parts, in the order they run:

* ``lexer``: tokens with character spans. Numbers ``1,234.5``, ``.5``, mixed ``1 1/2``, ``½``
  (ASCII digits only, at most 60 digits); currency signs skipped; ``%``/"percent"; operators
  ``+ - − * × · / ÷ ^ ²`` and words (plus, minus, times, "multiplied by", "divided by",
  choose); LaTeX ``\\times \\cdot \\div \\frac \\dfrac \\binom \\sqrt \\left( \\right) \\approx \\pi``;
  factorial ``!`` when it is clearly one. Function application and indexed names (``f(3)``,
  ``T(n-1)``, ``a_2(1)``, ``P(A)``, ``\\log``) and any character that looks like a digit but is
  not one (``①``, a stray superscript) become ``UNK`` tokens: an expression next to one is not
  read. Inequalities and layout end an expression.
* ``parser``: a recursive-descent grammar that builds expression *trees* (tuples), never
  strings to evaluate; units after numbers are skipped ("12 apples", "days/week").
* ``evaluate``: trees to exact sympy numbers, node by node, with bounds on every operation
  (number size, powers and towers such as ``9^9^9^9``, factorials, binomials, degree).
* ``symbolic``: claims with letters: identities by expansion, solutions by substitution,
  named quantities carried across steps (``let s = 12`` ... ``2s = 24``).
* ``claims``: the claim finder (relations ``=``, ``≈``/"about", "is", "equals", "gives";
  a chain ``a = b = c`` gives one claim per link; running arithmetic "2 + 3 = 5 + 1 = 6" is
  read as "2 + 3 = 5" and "5 + 1 = 6"), the comparison, and the checks on records.

What is *not* a claim (no verdict): a relation whose sides have no operation ("5 = 5", "The
answer is 12"), an equation with unknowns that is neither an identity nor solved later
("2x + 3 = 7"), dates and times, list numbering, inequalities, anything the grammar cannot
read or the evaluator refuses. Never guessed.

Comparison (choices where the paper is silent): exact equality, or relative tolerance
``rel_tol`` (default 1e-6; GroundedPRM used 0.1); a claimed number written with d >= 1
decimals also passes when it is the value rounded to d decimals ("10 / 3 = 3.33"); with ``≈``
or "about" the claim passes when rounded to the written precision ("1000/7 ≈ 143", "≈ 140").
Percent sloppiness is accepted both ways ("100 - 20 = 80%", "100% - 20% = 80"). Division by
zero is a wrong claim. A step's verdict is +1 when all its claims hold, -1 when any fails, and
no check at all when it has no claim. Each claim records what was evaluated (``lhs``), its
value, the claimed value and the tolerance used, in ``Check.detail["claims"]``.
"""

from __future__ import annotations

from .claims import CHECK_BY, Claim, check_rationale, check_step, find_claims
from .evaluate import Undefined, Unsupported, evaluate
from .lexer import Tok, tokenize
from .symbolic import Context

__all__ = ["Claim", "Context", "find_claims", "check_step", "check_rationale", "evaluate", "tokenize", "Tok",
           "CHECK_BY", "Undefined", "Unsupported"]
