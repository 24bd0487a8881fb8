"""`zoo list` and `zoo info` answer from the index (zoo/cli/index.json) without importing torch;
the index is what the registry says now; plugins are found through their entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT
from tests.test_registry import linear_plugin, write_plugin
from zoo.cli.index import INDEX_FILE, build_index, index_text, load_index
from zoo.cli.main import main


def test_index_is_current():
    """zoo/cli/index.json is generated from the registry and the cards (`make docs`)."""
    assert INDEX_FILE.read_text() == index_text(build_index()), "zoo/cli/index.json is stale: run `make docs`"


def test_index_holds_what_listing_needs():
    index = build_index()
    cnn = index["models"]["cnn"]
    assert {"name": "channels", "type": "list[int >= 1] (at least 1 item)", "default": [32, 64]} in cnn["arguments"]
    assert ["image", "classification"] in cnn["supports"] and "digits" in cnn["compatible_data"]
    text_csv = {a["name"]: a for a in index["data"]["text_csv"]["arguments"]}
    assert "default" not in text_csv["path"]  # required
    assert index["pretrained"]["cnn-digits"]["weights"]["format"] == "safetensors"
    assert index["pretrained"]["cnn-digits"]["recipe"]["model"]["name"] == "cnn"  # the whole card


def test_listing_imports_neither_torch_nor_lightning():
    code = textwrap.dedent("""
        import sys
        from zoo.cli.main import main
        for argv in (["list"], ["list", "models"], ["list", "pretrained"], ["info", "cnn"], ["info", "digits"]):
            assert main(argv) == 0
        heavy = [m for m in ("torch", "lightning", "numpy", "omegaconf") if m in sys.modules]
        assert not heavy, heavy
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cnn-digits" in proc.stdout and "compatible models" in proc.stdout


def test_installed_plugin_is_listed(tmp_path, monkeypatch, fresh_models, capsys):
    """With a `zoo.models` entry point installed, listing describes the plugin's model too."""
    write_plugin(tmp_path, "zoo_listed_demo", "tiny", "zoo_listed_demo_mod", linear_plugin("tiny_listed"))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_index.cache_clear()
    try:
        assert main(["list", "models"]) == 0 and main(["info", "tiny_listed"]) == 0
    finally:
        load_index.cache_clear()
        sys.modules.pop("zoo_listed_demo_mod", None)
    out = capsys.readouterr().out
    assert "tiny_listed" in out and "third-party package" in out and "cnn" in out
    assert "bias: bool = True" in out and "compatible data: breast_cancer, csv, iris, streaming, wine" in out

