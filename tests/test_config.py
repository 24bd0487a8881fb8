"""Config files, merging, overrides and validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import ROOT
from zoo.errors import ConfigError
from zoo.fit import resolve
from zoo.registry import check_compatible
from zoo.training.config import load_config, validate

EXPERIMENTS = sorted((ROOT / "configs" / "experiment").glob("*.yaml"))
FRAGMENTS = sorted(p for group in ("model", "data", "trainer") for p in (ROOT / "configs" / group).glob("*.yaml"))


def test_there_are_configs():
    assert len(EXPERIMENTS) >= 6 and FRAGMENTS


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_validates(path):
    cfg, _ = resolve([str(path)], [])
    check_compatible(cfg["model"]["name"], cfg["data"]["name"])
    assert cfg["run"]["name"] == path.stem
    raw = yaml.safe_load(path.read_text())
    # Experiments are device-agnostic: only the command line picks devices.
    assert raw["trainer"].get("accelerator", "auto") == "auto" and raw["trainer"].get("devices", "auto") == "auto"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_saved_config_yaml_is_what_omegaconf_writes(path, monkeypatch):
    """config.yaml and hparams.yaml are written with `yaml_text`, which skips OmegaConf's DictConfig: the text
    is OmegaConf's own, for every experiment, and reads back as the config (an ${oc.env:...} kept as written)."""
    from zoo.training.environment import saved_config, yaml_text

    monkeypatch.setenv("ZOO_TEST_DIR", "/some/where")
    cfg, _ = resolve([str(path)], ["run.dir=${oc.env:ZOO_TEST_DIR}/runs", "run.name=naïve"])
    saved = saved_config(cfg)
    assert saved["run"]["dir"] == "${oc.env:ZOO_TEST_DIR}/runs"
    text = yaml_text(saved)
    assert text == OmegaConf.to_yaml(saved)
    assert OmegaConf.to_container(OmegaConf.create(text)) == saved


@pytest.mark.parametrize("path", FRAGMENTS, ids=[f"{p.parent.name}/{p.stem}" for p in FRAGMENTS])
def test_fragment_merges_into_an_experiment(path):
    base = {"model": {"name": "mlp"}, "data": {"name": "iris"}}  # names only, so any fragment completes it
    from omegaconf import OmegaConf

    validate(OmegaConf.merge(OmegaConf.create(base), load_config([path])))


def test_merge_order_and_overrides(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("model: {name: cnn, channels: [4, 8]}\ndata: {name: digits}\ntrainer: {max_epochs: 1}\n")
    b.write_text("trainer: {max_epochs: 2}\n")
    cfg = validate(load_config([a, b], ["trainer.max_epochs=3", "model.channels=[2,2]", "--seed=7"]))
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["model"]["channels"] == [2, 2] and cfg["seed"] == 7
    assert validate(load_config([a, b]))["trainer"]["max_epochs"] == 2


def test_defaults_are_filled_and_plain():
    cfg = validate(load_config([], ["model.name=mlp", "data.name=iris"]))
    assert cfg["model"]["hidden"] == [128, 64] and cfg["optim"]["name"] == "adamw"
    assert cfg["logger"] == [{"name": "csv"}] and cfg["run"]["dir"] == "runs"
    assert type(cfg) is dict and type(cfg["model"]) is dict


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["modle.name=cnn"], "Unknown key 'modle'. Did you mean 'model'"),
        (["model.chanels=[8]"], "Unknown key 'model.chanels'. Did you mean 'channels'"),
        (["model.dropout=high"], "Invalid value for 'model.dropout'"),
        (["optim.scheduler.warmup=3"], "Unknown key 'optim.scheduler.warmup'. Did you mean 'warmup_steps'"),
        (["optim.name=adamm"], "Unknown optimizer 'adamm'. Did you mean 'adam'"),
        (["trainer.max_epoch=3"], "Unknown key 'trainer.max_epoch'. Did you mean 'max_epochs'"),
        (["trainer.logger=false"], "set by zoo"),
        (["logger.name=tensorbord"], "Unknown logger 'tensorbord'. Did you mean 'tensorboard'"),
        (["model.name=cnnn"], "Unknown model 'cnnn'"),
        (["data.batchsize=3"], "Unknown key 'data.batchsize'. Did you mean 'batch_size'"),
        (["optim.lr=0"], r"Invalid value for 'optim.lr': must be > 0, got 0.0"),
        (["optim.betas=[0.9,1.0]"], r"'optim.betas': each item must be in \[0, 1\), got \[0.9, 1.0\]"),
        (["optim.scheduler.min_lr_ratio=2"], r"'optim.scheduler.min_lr_ratio': must be in \[0, 1\]"),
        (["callbacks.early_stopping.patience=-1"], "'callbacks.early_stopping.patience': must be >= 0"),
        (["model.kernel_size=0"], r"'model.kernel_size': must be >= 1, got 0 \(model 'cnn'\)"),
        (["model.channels=[]"], r"'model.channels': needs at least 1 item, got \[\] \(model 'cnn'\)"),
        (["data.val_fraction=1.5"], r"'data.val_fraction': must be in \(0, 1\), got 1.5 \(data 'digits'\)"),
        (["trainer.max_epochs=many"], r"'trainer.max_epochs': expected int \| None, got 'many' \(str\)"),
        (["trainer.max_epochs=true"], r"'trainer.max_epochs': expected int \| None, got True \(bool\)"),
        (["trainer.precision=bf17"], r"'trainer.precision': expected .*'bf16-mixed'.*, got 'bf17'"),
        (["trainer.gradient_clip_val=[1]"], r"'trainer.gradient_clip_val': expected int \| float \| None"),
        (["trainer.plugins=[x]"], "'trainer.plugins' is set by zoo"),
    ],
)
def test_bad_values_raise_one_line(overrides, match):
    base = ROOT / "configs" / "experiment" / "digits_cnn.yaml"
    with pytest.raises(ConfigError, match=match) as e:
        validate(load_config([base], overrides))
    assert "\n" not in str(e.value)


def bounded_arguments(registry_name: str = "MODELS"):
    """(name, argument, an out-of-range value) for every bounded constructor argument in a registry."""
    import typing

    import zoo.registry
    from zoo.bounds import bound

    registry = getattr(zoo.registry, registry_name)
    for name in registry.names():
        for arg, hint in typing.get_type_hints(registry.get(name).__init__, include_extras=True).items():
            rng, each = bound(hint)
            if rng is not None:
                bad = rng.low - 1 if rng.low > -math.inf else rng.high + 1
                yield name, arg, [bad] if each else bad


@pytest.mark.parametrize("model,arg,bad", list(bounded_arguments()))
def test_out_of_range_model_arguments_fail_validation_and_construction(model, arg, bad):
    from zoo.registry import DATA, MODELS, compatible_data

    data = next(d for d in compatible_data(model) if not hasattr(DATA.get(d), "example"))  # needs no files
    with pytest.raises(ConfigError, match=rf"Invalid value for 'model.{arg}': .*, got"):
        validate({"model": {"name": model, arg: bad}, "data": {"name": data}})
    dm = DATA.build(data)
    dm.prepare_data()
    with pytest.raises(ConfigError, match=rf"Invalid value for 'model.{arg}'"):  # the Python API checks too
        MODELS.build(model, spec=dm.spec.to_dict(), **{arg: bad})


@pytest.mark.parametrize("data,arg,bad", list(bounded_arguments("DATA")))
def test_out_of_range_data_arguments_fail_validation_and_construction(data, arg, bad, tmp_path):
    from zoo.registry import DATA, compatible_models

    cls = DATA.get(data)
    example = cls.example(tmp_path) if hasattr(cls, "example") else {}
    with pytest.raises(ConfigError, match=rf"Invalid value for 'data.{arg}': .*, got"):
        validate({"model": {"name": compatible_models(data)[0]}, "data": {"name": data, **example, arg: bad}})
    with pytest.raises(ConfigError, match=rf"Invalid value for 'data.{arg}'"):  # the Python API checks too
        DATA.build(data, **{**example, arg: bad})


def test_split_fractions_must_leave_a_train_split():
    from zoo.data.images import Digits

    with pytest.raises(ConfigError, match=r"data.val_fraction \+ data.test_fraction must be below 1"):
        Digits(val_fraction=0.5, test_fraction=0.5)


def test_every_dataset_bounds_batch_size_and_fractions():
    """Every dataset bounds its batch size, and the split fractions it takes: torchvision's datasets have an
    official test split (no test_fraction), shards come split already (neither)."""
    import inspect

    names = {(d, a) for d, a, _ in bounded_arguments("DATA")}
    from zoo.registry import DATA

    for data in DATA.names():
        takes = inspect.signature(DATA.get(data).__init__).parameters
        assert (data, "batch_size") in names, data
        assert "eval_batch_size" in takes and (data, "eval_batch_size") in names, data
        for arg in ("val_fraction", "test_fraction"):
            assert arg not in takes or (data, arg) in names, (data, arg)


def test_incompatible_pair_fails_validation_and_print_config():
    from zoo.errors import IncompatibleError

    with pytest.raises(IncompatibleError, match="Model 'vae' cannot train on 'names'"):
        validate({"model": {"name": "vae"}, "data": {"name": "names"}})
    from tests.conftest import run_cli

    proc = run_cli("zoo.fit", "model.name=vae", "data.name=names", "--print-config")
    assert proc.returncode == 2 and proc.stderr.startswith("error: Model 'vae' cannot train on 'names'"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout


def test_every_model_bounds_its_sizes():
    """Layer sizes and dropout are bounded in every built-in model, so bad values fail before training."""
    names = {(m, a) for m, a, _ in bounded_arguments()}
    for model, arg in [("mlp", "hidden"), ("cnn", "channels"), ("cnn", "kernel_size"), ("rnn", "hidden"),
                       ("transformer", "n_head"), ("vae", "latent_dim"), ("gan", "d_steps"), ("mlp", "dropout")]:
        assert (model, arg) in names, (model, arg)


def test_range_reads_as_users_write_it():
    from zoo.bounds import PositiveFloat, PositiveInt, Probability, Range, Widths, describe

    assert describe(PositiveInt) == "int >= 1" and describe(list[PositiveInt] | None) == "list[int >= 1] | None"
    assert describe(Probability) == "float in [0, 1)" and describe(PositiveFloat) == "float > 0"
    assert describe(Widths) == "list[int >= 1] (at least 1 item)"
    assert 0 in Range(0, 1, high_open=True) and 1 not in Range(0, 1, high_open=True) and 1 in Range(0, 1)


def test_saved_config_reproduces(tmp_path):
    base = ROOT / "configs" / "experiment" / "iris_mlp.yaml"
    cfg, _ = resolve([str(base)], ["trainer.max_epochs=2"])
    saved = tmp_path / "config.yaml"
    saved.write_text(OmegaConf.to_yaml(cfg))
    again, _ = resolve([str(saved)], [])
    assert again == cfg
    assert Path(saved).read_text().count("max_epochs: 2") == 1
