"""Prompt templates (Jinja2) that work for chat models and base models alike.

A template renders a transcript whose turns start with a ``<|system|>``, ``<|user|>`` or
``<|assistant|>`` line. For chat models the transcript becomes chat messages (the backend
applies the model's own chat template); for base models it becomes a completion prompt
("Question: ... / Answer: ..." blocks ending in an open "Answer:").

Built-in templates live in ``prompts/templates/*.j2``; any ``.j2`` file path works too, so
users can override a template with their own file. Other modules (judges, PRM, formats,
mistakes-in-context, feedback patching) add their templates to the same folder.

Templates render in Jinja2's ``SandboxedEnvironment`` (a template file cannot reach Python
internals such as ``''.__class__``, and ``range`` is bounded); any failure to read, compile
or render one is a one-line ``TemplateError`` naming the template and what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from ..errors import RationalesError, UnknownNameError
from ..records import content_hash

_ROLE_LINE = re.compile(r"^<\|(system|user|assistant)\|>[ \t]*$", re.MULTILINE)
_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                           trim_blocks=True, lstrip_blocks=True)


class TemplateError(RationalesError):
    """A prompt template could not be read, compiled or rendered."""


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


def _read_template(path: Path, shown: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TemplateError(f"Template {shown} is not UTF-8 text (bad byte at offset {e.start}); re-save it as "
                            "UTF-8.") from e
    except IsADirectoryError as e:
        raise TemplateError(f"Template {shown} is a directory; give a .j2 file or a template name.") from e
    except OSError as e:
        raise TemplateError(f"Cannot read template {shown} ({e.strerror or e}).") from e


def load_template(name_or_path: str) -> tuple[str, jinja2.Template]:
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise TemplateError(f"No template given; use a name ({', '.join(template_names())}) or a .j2 file path.")
    path = Path(name_or_path)
    try:
        is_file = path.suffix == ".j2" and path.exists()
    except (OSError, ValueError):
        is_file = False
    if is_file:
        source, name = _read_template(path, name_or_path), path.stem
    elif path.suffix == ".j2" or "/" in name_or_path or "\\" in name_or_path:
        raise TemplateError(f"No such template file: {name_or_path}; give an existing .j2 file or a template name "
                            f"({', '.join(template_names())}).")
    else:
        candidate = templates_dir() / f"{name_or_path}.j2"
        if name_or_path not in template_names():
            raise UnknownNameError("prompt template", name_or_path, template_names())
        source, name = _read_template(candidate, name_or_path), name_or_path
    try:
        return name, _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"Template {name_or_path} has a syntax error on line {e.lineno}: {e.message}") from e
    except RecursionError as e:
        raise TemplateError(f"Template {name_or_path} nests too deeply to compile; simplify it.") from e
    except Exception as e:  # jinja2 raises a few other kinds on odd sources
        raise TemplateError(f"Template {name_or_path} cannot be compiled ({type(e).__name__}: {e}).") from e


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
        raise TemplateError(f"Template {template} needs a variable that was not given: {e.message}") from e
    except jinja2.exceptions.SecurityError as e:
        raise TemplateError(f"Template {template} tried something templates may not do ({e}); templates may only "
                            "format the given variables.") from e
    except RecursionError as e:
        raise TemplateError(f"Template {template} recursed too deeply while rendering; simplify it.") from e
    except Exception as e:  # a template's own expression failed ({{ 1/0 }}, {{ x + 1 }} on a string...)
        raise TemplateError(f"Template {template} failed while rendering ({type(e).__name__}: {e}); fix the "
                            "template.") from e
    return RenderedPrompt(parse_transcript(text), name)
