"""Registry behaviour: strict names, did-you-mean, wildcards, and entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from zoo.errors import ConfigError
from zoo.registry import DATA, MODELS, Registry


def test_builtins_registered():
    assert {"mlp", "cnn"} <= set(MODELS.names())
    assert {"digits", "iris", "wine", "breast_cancer", "diabetes"} <= set(DATA.names())


def test_duplicate_name_raises():
    reg = Registry("model", builtins="zoo.models", group="zoo.none")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("B", (), {}))


def test_unknown_name_did_you_mean_and_full_list():
    with pytest.raises(ConfigError) as e:
        MODELS.get("cnnn")
    msg = str(e.value)
    assert "Unknown model 'cnnn'" in msg and "Did you mean 'cnn'?" in msg
    for name in MODELS.names():
        assert name in msg
    with pytest.raises(ConfigError, match="Did you mean 'digits'"):
        DATA.get("digit")


def test_wildcards():
    assert MODELS.names("c*") == [n for n in MODELS.names() if n.startswith("c")]
    assert "cnn" in MODELS.names("c*") and "mlp" not in MODELS.names("c*")
    assert DATA.names("*_cancer") == ["breast_cancer"]
    assert MODELS.names("nothing*") == []


def test_build_passes_kwargs():
    spec = DATA.build("iris").spec
    model = MODELS.build("mlp", spec=spec.to_dict(), hidden=[7])
    assert model.body[0].out_features == 7


def write_plugin(root, dist: str, entry: str, module: str, source: str) -> None:
    """Write an installed-distribution layout (dist-info + module) under `root`."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo.models]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def linear_plugin(name: str) -> str:
    """Return the source of a plugin module that registers a one-layer model as `name`."""
    return textwrap.dedent(f"""
        from torch import nn
        from zoo.registry import MODELS
        from zoo.models.base import TaskModel

        @MODELS.register("{name}")
        class TinyLinear(TaskModel):
            '''A single linear layer, shipped by a third-party package.'''
            supports = frozenset({{("tabular", "classification")}})

            def __init__(self, spec, *, bias: bool = True, optim=None):
                super().__init__(spec, optim)
                self.save_hyperparameters()
                self.fc = nn.Linear(self.spec.input_shape[0], self.spec.output_dim, bias=bias)

            def forward(self, x):
                return self.fc(self.standardize(x))
    """)


def test_entry_point_plugin(tmp_path, monkeypatch, fresh_models):
    write_plugin(tmp_path, "zoo_plugin_demo", "tiny", "zoo_plugin_demo_mod", linear_plugin("tiny_linear"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny_linear" in fresh_models.names()
    model = fresh_models.build("tiny_linear", spec=DATA.build("iris").spec.to_dict())
    assert model.fc.in_features == 4
    sys.modules.pop("zoo_plugin_demo_mod", None)


def test_broken_plugin_warns_and_names_it(tmp_path, monkeypatch, fresh_models):
    write_plugin(tmp_path, "zoo_broken_demo", "broken", "zoo_broken_demo_mod", "raise ImportError('missing dep')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="broken.*zoo_broken_demo_mod"):
        names = fresh_models.names()
    assert "cnn" in names  # the zoo still works
