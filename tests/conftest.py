"""Shared fixtures. Tests that run the real embedded model are marked ``model`` and share one
in-process model (two llama.cpp processes on 2 cores slow each other 10-100x)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TEST_MODEL = "smollm2-135m"


@pytest.fixture()
def fake():
    from rationales.backends.fake import FakeBackend

    return FakeBackend()


@pytest.fixture(scope="session")
def small_model():
    """The real SmolLM2-135M-Instruct model, in process, loaded once per test session."""
    from rationales.backends import get_backend

    backend = get_backend("llamacpp", model=TEST_MODEL, n_ctx=4096)
    yield backend
    backend.close()


@pytest.fixture()
def store(tmp_path):
    from rationales.store import Store

    s = Store(tmp_path / "store.sqlite")
    yield s
    s.close()
