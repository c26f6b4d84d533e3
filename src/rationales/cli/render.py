"""Console rendering helpers: model text, task names and paths are printed as text, never
parsed as Rich markup (a rationale with ``[/INST]`` or a path with ``[/]`` prints as is)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def text(value: Any) -> Text:
    """``value`` as literal text (no markup, no emoji codes)."""
    return Text(str(value))


def say(console: Console, *parts: Any, bold: str | None = None) -> None:
    """Print ``bold`` (our own words, in bold) then ``parts`` as literal text, on one line."""
    line = Text()
    if bold:
        line.append(bold, style="bold")
        line.append(" ")
    line.append("".join(str(p) for p in parts))
    console.print(line, soft_wrap=True)


def table(title: Any, columns: list[str], rows: list[list[Any]], *, right: tuple[str, ...] = (),
          nowrap: tuple[str, ...] = (), **kwargs: Any) -> Table:
    """A table whose title, headers and cells are all literal text."""
    t = Table(title=text(title), **kwargs)
    for col in columns:
        t.add_column(text(col), justify="right" if col in right else "left", no_wrap=col in nowrap)
    for row in rows:
        t.add_row(*(c if isinstance(c, Text) else text("" if c is None else c) for c in row))
    return t


def strategies_table(title: str, strategies: dict[str, dict[str, Any]]) -> Table:
    cols = ["strategy", "accuracy", "95% CI", "correct", "tokens", "confidence"]
    rows = [[name, f"{s['accuracy']:.3f}", f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
             f"{s.get('correct', '')}/{s.get('n', '')}", s.get("tokens", ""),
             f"{s['mean_confidence']:.2f}" if "mean_confidence" in s else ""] for name, s in strategies.items()]
    return table(title, cols, rows, right=tuple(cols[1:]))
