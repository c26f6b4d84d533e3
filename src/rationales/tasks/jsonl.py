"""Reading user JSON / JSONL files, with one-line errors that say what to fix.

Every reader of a user's JSON or JSONL file (task files, ProcessBench files, feedback files,
fake-backend scripts) goes through here, so they all refuse the same bad inputs the same way:
text that is not UTF-8, lines that are not valid JSON, lines that are not objects (``42``,
``[1, 2]``, ``null``), nesting deeper than ``MAX_DEPTH``, integers longer than Python's
4,300-digit conversion limit, and lone surrogates (``"\\ud800"``, which no UTF-8 store or JSON
output can hold: they become U+FFFD).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RationalesError, TaskError

MAX_DEPTH = 64  # nesting of arrays/objects accepted in one record


def clean_text(s: str) -> str:
    """``s`` with lone surrogates replaced by U+FFFD (valid surrogate pairs are kept)."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_json(value: Any, depth: int = 0) -> Any:
    """A copy of a parsed JSON value with every string cleaned (see ``clean_text``); raises
    ``ValueError`` when it nests deeper than ``MAX_DEPTH``."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value]
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), type(value).__name__)


def parse_json_text(text: str, where: str, error: type[RationalesError] = TaskError) -> Any:
    """``json.loads`` with the failure modes turned into ``error(message)``; ``where`` names
    the place ("data.jsonl line 3") in the message."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg} at column {e.colno}); fix or remove it.") from e
    except RecursionError as e:
        raise error(f"{where}: nests too deeply to read (over {MAX_DEPTH} levels); flatten it.") from e
    except ValueError as e:  # int longer than sys.get_int_max_str_digits()
        raise error(f"{where}: holds an integer too long to read ({e}); write it as a string.") from e
    try:
        return clean_json(value)
    except (ValueError, RecursionError) as e:
        raise error(f"{where}: {e}; flatten it (at most {MAX_DEPTH} levels).") from e


def read_text(path: str | Path, what: str = "file", error: type[RationalesError] = TaskError) -> str:
    """The file's text (UTF-8, a leading BOM dropped), or ``error`` saying why it cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError as e:
        raise error(f"The {what} {path} is a directory; give a file.") from e
    except FileNotFoundError as e:
        raise error(f"The {what} {path} does not exist.") from e
    except OSError as e:
        raise error(f"Cannot read the {what} {path} ({e.strerror or e}).") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"The {what} {path} is not UTF-8 text (bad byte at offset {e.start}); "
                    "re-save it as UTF-8.") from e
    return text


def read_jsonl_numbered(path: str | Path, what: str = "file", error: type[RationalesError] = TaskError,
                        require_object: bool = True) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line; with ``require_object`` every line must
    be a JSON object."""
    path = Path(path)
    rows = []
    for n, line in enumerate(read_text(path, what, error).splitlines(), 1):
        if not line.strip():
            continue
        value = parse_json_text(line, f"{path} line {n}", error)
        if require_object and not isinstance(value, dict):
            raise error(f"{path} line {n}: expected a JSON object, got {_describe(value)}; each line of a {what} "
                        "must be one JSON object.")
        rows.append((n, value))
    return rows


def read_jsonl(path: str | Path, what: str = "file", error: type[RationalesError] = TaskError,
               require_object: bool = True) -> list[Any]:
    """One JSON value per non-blank line; with ``require_object`` every line must be an object."""
    return [v for _, v in read_jsonl_numbered(path, what, error, require_object)]


def read_json(path: str | Path, what: str = "file", error: type[RationalesError] = TaskError) -> Any:
    """The whole file as one JSON value."""
    path = Path(path)
    return parse_json_text(read_text(path, what, error), str(path), error)


__all__ = ["MAX_DEPTH", "clean_text", "clean_json", "parse_json_text", "read_text", "read_jsonl",
           "read_jsonl_numbered", "read_json"]
