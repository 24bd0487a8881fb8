"""Loading never runs code: checkpoints are read with weights_only=True, weights are safetensors whose
metadata can only name registered models, and every torch.load in zoo says weights_only=True."""

from __future__ import annotations

import ast
import json

import pytest
import torch

import zoo
from tests.conftest import ROOT
from zoo.cli import main
from zoo.errors import ConfigError, ZooError


class Payload:
    """Unpickling this calls builtins.exec, which writes the marker file: code run by loading a file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


@pytest.fixture
def evil_checkpoint(tmp_path):
    """A file shaped like a zoo checkpoint whose hyper-parameters unpickle into code execution."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"zoo": {"model": "mlp"}, "state_dict": {}, "hyper_parameters": {"spec": Payload(marker)}}, path)
    return path, marker


def test_a_checkpoint_that_would_run_code_is_refused(evil_checkpoint, capsys):
    path, marker = evil_checkpoint
    with pytest.raises(ZooError, match=r"Refused to load .*evil.ckpt: unpickling it would import exec, which could run code"):
        zoo.load(path)
    for command in (["test", "--ckpt", str(path)], ["predict", "--ckpt", str(path), str(path)],
                    ["sample", "--ckpt", str(path)], ["export", "--ckpt", str(path), "--format", "onnx",
                                                      str(path.parent / "out")]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: Refused to load") and err.count("\n") == 1, err
    assert not marker.exists() and not (path.parent / "out").exists()
    # The file is a real exploit: an unrestricted unpickler runs its code.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_weights_metadata_can_only_name_registered_models(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    meta = {"model": "os.system", "hyper_parameters": {"spec": {}}}
    save_file({"x": torch.zeros(1)}, str(path), metadata={"zoo": json.dumps(meta)})
    with pytest.raises(ConfigError, match="Unknown model 'os.system'. .*Available: cnn, diffusion, gan"):
        zoo.load(path)


def test_every_torch_load_in_zoo_is_weights_only():
    """A static guard: each torch.load call under zoo/ passes weights_only=True, and nothing calls pickle.load."""
    calls = []
    for path in (ROOT / "zoo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if (owner, node.func.attr) == ("torch", "load"):
                    kw = {k.arg: k.value for k in node.keywords}
                    ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                    calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", ok))
                assert (owner, node.func.attr) not in {("pickle", "load"), ("pickle", "loads")}, path
    assert calls and all(ok for _, ok in calls), calls
