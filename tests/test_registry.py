"""The registry: built-ins, entry-point plugins (a real dist-info on sys.path), laziness, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rationales.errors import RationalesError, UnknownNameError
from rationales.registry import PluginError, Registry


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking distribution ``rtest-plugin`` declaring entry points in group
    ``rationales.widgets``: ``good`` (a module that records its import), ``broken`` (raises)."""
    pkg = tmp_path / "rtest_plugin_mod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import sys
        sys.modules.setdefault("rtest_plugin_imported", sys.modules[__name__])
        class Widget:
            kind = "plugin widget"
    """))
    (tmp_path / "rtest_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    dist = tmp_path / "rtest_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rtest-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [rationales.widgets]
        good = rtest_plugin_mod:Widget
        broken = rtest_broken_mod:Thing
        shadow = rtest_plugin_mod:Widget
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("rtest_plugin_mod", "rtest_plugin_imported", "rtest_broken_mod"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    return tmp_path


def make() -> Registry:
    reg: Registry = Registry("widget", "rationales.widgets", hints=["<file.widget>"])
    reg.register("json", "json:dumps", help="lazy builtin")
    reg.register("shadow", "json:loads", help="a builtin a plugin also declares")
    return reg


def test_builtins_are_lazy_and_loaded_on_get() -> None:
    reg: Registry = Registry("widget", "rationales.widgets.none")
    reg.register("enc", "json.encoder:JSONEncoder.encode", help="dotted attribute")
    assert not reg.entry("enc").loaded
    import json.encoder

    assert reg.get("enc") is json.encoder.JSONEncoder.encode
    assert reg.entry("enc").loaded


def test_register_object_and_decorator() -> None:
    reg: Registry = Registry("widget", "rationales.widgets.none")

    @reg.register("deco", help="by decorator")
    def deco() -> str:
        return "x"

    reg.register("obj", len)
    assert reg.get("deco") is deco and reg.get("obj") is len
    assert reg.names() == ["deco", "obj"]
    assert reg.entries()["deco"].help == "by decorator"


def test_bad_registrations_fail() -> None:
    reg: Registry = Registry("widget", "rationales.widgets.none")
    reg.register("a", "json:dumps")
    with pytest.raises(ValueError, match="twice"):
        reg.register("a", "json:loads")
    with pytest.raises(ValueError, match="module:attr"):
        reg.register("b", "json.dumps")


def test_unknown_name_suggests_and_lists() -> None:
    reg = make()
    with pytest.raises(UnknownNameError) as e:
        reg.get("jsno")
    msg = str(e.value)
    assert "Unknown widget 'jsno'" in msg and "Did you mean 'json'?" in msg
    assert "<file.widget>" in msg and "\n" not in msg
    assert isinstance(e.value, RationalesError) and isinstance(e.value, KeyError)
    with pytest.raises(UnknownNameError, match="Known: "):
        reg.get("zzzzzzzz")


def test_entry_point_plugins_are_found_but_not_imported(plugin_dir: Path) -> None:
    reg = make()
    entries = reg.entries()
    assert set(entries) >= {"json", "good", "broken", "shadow"}
    assert entries["good"].source == "rtest-plugin" and entries["good"].target == "rtest_plugin_mod:Widget"
    assert entries["shadow"].source == "builtin"  # a built-in wins over a plugin of the same name
    assert "good" in reg and "nope" not in reg
    assert "rtest_plugin_mod" not in sys.modules  # listing imported nothing
    widget = reg.get("good")
    assert widget.kind == "plugin widget" and "rtest_plugin_mod" in sys.modules
    import json

    assert reg.get("shadow") is json.loads


def test_broken_plugin_is_a_one_line_error(plugin_dir: Path) -> None:
    reg = make()
    with pytest.raises(PluginError) as e:
        reg.get("broken")
    msg = str(e.value)
    assert "'broken'" in msg and "rtest-plugin" in msg and "boom at import" in msg and "\n" not in msg
    assert reg.get("json")  # the rest still works


def test_refresh_sees_a_plugin_installed_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make()
    assert "good" not in reg
    dist = tmp_path / "late_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: late-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rationales.widgets]\ngood = json:dumps\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "good" not in reg  # cached until refreshed
    reg.refresh()
    import json

    assert reg.get("good") is json.dumps


def test_backend_registry_api_and_plugin_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rationales.backends import base

    assert set(base.available_backends()) >= {"fake", "llamacpp", "openai", "transformers"}
    assert base.available_backends()["fake"] == "rationales.backends.fake:FakeBackend"
    assert base.BACKEND_HELP["fake"]
    b = base.get_backend("fake", script=["The answer is 3."])
    assert b.name == "fake"
    with pytest.raises(UnknownNameError, match="Did you mean 'fake'"):
        base.get_backend("fak")
    # a third-party backend declared as an entry point
    (tmp_path / "rtest_backend_mod.py").write_text(textwrap.dedent("""
        from rationales.backends.fake import FakeBackend
        class EchoBackend(FakeBackend):
            name = "echo"
    """))
    dist = tmp_path / "rtest_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rtest-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rationales.backends]\necho = rtest_backend_mod:EchoBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base.BACKENDS.refresh()
    try:
        assert base.available_backends()["echo"] == "rtest_backend_mod:EchoBackend"
        assert base.get_backend("echo").name == "echo"
    finally:
        monkeypatch.undo()
        base.BACKENDS.refresh()


def test_importing_the_package_reads_no_entry_points() -> None:
    """No plugin lookup (and no backend module import) at import time."""
    code = textwrap.dedent("""
        import importlib.metadata as md, sys
        calls = []
        real = md.entry_points
        def spy(*a, **k):
            if str(k.get("group", "")).startswith("rationales"):
                calls.append(k)
            return real(*a, **k)
        md.entry_points = spy
        import rationales.registry
        rationales.registry.entry_points = md.entry_points
        import rationales.backends.base, rationales.backends
        assert not calls, calls
        assert "rationales.backends.llamacpp" not in sys.modules
        assert "rationales.backends.openai" not in sys.modules
        rationales.backends.base.available_backends()
        assert calls, "listing should read the entry points"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
