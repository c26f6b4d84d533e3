"""Prompt templates (Jinja2) that work for chat models and base models alike.

A template renders a transcript whose turns start with a ``<|system|>``, ``<|user|>`` or
``<|assistant|>`` line. For chat models the transcript becomes chat messages (the backend
applies the model's own chat template); for base models it becomes a completion prompt
("Question: ... / Answer: ..." blocks ending in an open "Answer:").

Built-in templates live in ``prompts/templates/*.j2``; any ``.j2`` file path works too, so
users can override a template with their own file. Other modules (judges, PRM, formats,
mistakes-in-context, feedback patching) add their templates to the same folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from ..errors import RationalesError, UnknownNameError
from ..records import content_hash

_ROLE_LINE = re.compile(r"^<\|(system|user|assistant)\|>[ \t]*$", re.MULTILINE)
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True)


def templates_dir() -> Path:
    return Path(str(files("rationales.prompts") / "templates"))


def template_names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.j2"))


@dataclass
class RenderedPrompt:
    messages: list[dict[str, str]]
    template: str

    @property
    def id(self) -> str:
        return content_hash("prompt", self.messages)

    def completion_text(self) -> str:
        """The transcript as a plain completion prompt for base models."""
        out: list[str] = []
        for m in self.messages:
            if m["role"] == "system":
                out.append(m["content"].strip() + "\n\n")
            elif m["role"] == "user":
                out.append(f"Question: {m['content'].strip()}\nAnswer:")
            else:
                out.append(f" {m['content'].strip()}\n\n")
        if self.messages and self.messages[-1]["role"] == "assistant":
            # an open assistant turn (prefix to continue): drop the trailing blank line
            out[-1] = out[-1].rstrip("\n")
        return "".join(out)


def load_template(name_or_path: str) -> tuple[str, jinja2.Template]:
    path = Path(name_or_path)
    if path.suffix == ".j2" and path.exists():
        source, name = path.read_text(encoding="utf-8"), path.stem
    else:
        candidate = templates_dir() / f"{name_or_path}.j2"
        if not candidate.exists():
            raise UnknownNameError("prompt template", name_or_path, template_names())
        source, name = candidate.read_text(encoding="utf-8"), name_or_path
    try:
        return name, _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise RationalesError(f"Template {name_or_path} has a syntax error on line {e.lineno}: {e.message}") from e


def parse_transcript(text: str) -> list[dict[str, str]]:
    marks = list(_ROLE_LINE.finditer(text))
    if not marks:
        return [{"role": "user", "content": text.strip()}]
    messages = []
    for m, nxt in zip(marks, marks[1:] + [None]):
        content = text[m.end(): nxt.start() if nxt else len(text)].strip("\n")
        messages.append({"role": m.group(1), "content": content.strip()})
    return messages


def render(template: str, **variables: Any) -> RenderedPrompt:
    """Render a template by name or path. Common variables: question, context, examples."""
    variables.setdefault("examples", [])
    variables.setdefault("context", None)
    name, tmpl = load_template(template)
    try:
        text = tmpl.render(**variables)
    except jinja2.UndefinedError as e:
        raise RationalesError(f"Template {template} needs a variable that was not given: {e.message}") from e
    return RenderedPrompt(parse_transcript(text), name)
