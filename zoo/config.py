"""Config loading and validation: YAML files + key=value overrides -> one plain, checked dict.

    cfg = load_config(["configs/experiment/digits_cnn.yaml"], ["trainer.max_epochs=3"])
    cfg = validate(cfg)        # unknown keys, wrong types and unknown names raise ConfigError

The schema is a set of dataclasses checked by OmegaConf. Model and data sections are checked
against the registered class's constructor signature, so a config can only name registered
entries and pass primitives: there is no `_target_` and no way to run arbitrary code.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from zoo.bounds import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    check_bounds,
)
from zoo.errors import ConfigError, choose, did_you_mean


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | cosine | linear | step | onecycle
    warmup_steps: NonNegativeInt = 0
    min_lr_ratio: Fraction = 0.0  # cosine/linear decay floor, as a fraction of lr
    step_size: PositiveInt = 1000  # step: decay every this many optimizer steps
    gamma: PositiveFloat = 0.1


@dataclass
class OptimConfig:
    name: str = "adamw"  # adam | adamw | sgd
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    betas: list[Probability] = field(default_factory=lambda: [0.9, 0.999])
    eps: PositiveFloat = 1e-8
    momentum: Probability = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class CheckpointConfig:
    monitor: str | None = None  # default: the model's choice (val/loss for every built-in model)
    mode: str | None = None  # min | max
    every_n_train_steps: NonNegativeInt | None = None  # also save last.ckpt every N steps
    every_n_epochs: NonNegativeInt | None = 1


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    monitor: str | None = None  # default: the checkpoint monitor
    mode: str | None = None
    patience: NonNegativeInt = 5
    min_delta: NonNegativeFloat = 0.0


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    lr_monitor: bool = True
    samples_every_n_epochs: NonNegativeInt = 1  # generative models and LMs write samples this often


@dataclass
class RunConfig:
    dir: str = "runs"  # run dirs go to <dir>/<name>/<YYYYmmdd-HHMMSS>
    name: str | None = None  # default: the experiment file's name, else <data>_<model>
    resume: bool = False  # continue the latest run of this name from its last.ckpt


@dataclass
class Config:
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
    logger: Any = None  # None: csv; false or []: no logger; a mapping or a list of mappings
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Keys of the model section that fit consumes itself instead of passing to the constructor.
FIT_MODEL_KEYS = {"name": None, "compile": False}
# Trainer arguments that fit builds from other sections.
MANAGED_TRAINER_KEYS = {"logger": "logger", "callbacks": "callbacks", "default_root_dir": "run.dir"}


def load_config(paths: list[str | Path], overrides: list[str] | None = None) -> DictConfig:
    """Return the merge of YAML files (left to right) and `key=value` overrides (last wins)."""
    cfg = OmegaConf.create()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        except Exception as e:
            raise ConfigError(f"Cannot read config {path}: {first_line(e)}") from None
    items = [o.removeprefix("--") for o in overrides or []]  # wandb agent passes --key=value
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' is not of the form key=value (for example trainer.max_epochs=3)")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(items))
    except Exception as e:
        raise ConfigError(f"Cannot parse overrides: {first_line(e)}") from None
    return cfg


def first_line(e: BaseException) -> str:
    """Return the first non-empty line of an exception message."""
    msg = getattr(e, "msg", None) or str(e)
    return next((line.strip() for line in msg.splitlines() if line.strip()), type(e).__name__)


def checked(schema: type, values: Any, where: str) -> dict[str, Any]:
    """Return `values` merged over the dataclass `schema`'s defaults, or raise a one-line ConfigError.

    Checks keys and types (OmegaConf), then the bounds that the schema's type hints declare (zoo.bounds).
    """
    if not isinstance(values, (dict, DictConfig)):
        raise ConfigError(f"'{where}' must be a mapping, got {values!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
    except ConfigKeyError as e:
        valid = [f.name for f in dataclasses.fields(e.object_type)] if e.object_type else []
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"Unknown key '{prefix}{e.full_key}'.{did_you_mean(str(e.key), valid)} Valid keys: {', '.join(valid)}"
        ) from None
    except OmegaConfBaseException as e:
        key = f"{where}.{e.full_key}" if where and e.full_key else (e.full_key or where)
        raise ConfigError(f"Invalid value for '{key}': {first_line(e)}") from None
    out = OmegaConf.to_container(merged, resolve=True)
    check_schema_bounds(schema, out, f"{where}." if where else "")
    return out


def check_schema_bounds(schema: type, values: dict[str, Any], prefix: str) -> None:
    """Check `values` against the bounds in a dataclass's hints, and in those of its nested dataclasses."""
    hints = typing.get_type_hints(schema, include_extras=True)
    check_bounds(hints, values, prefix)
    for name, hint in hints.items():
        if dataclasses.is_dataclass(hint) and isinstance(values.get(name), dict):
            check_schema_bounds(hint, values[name], f"{prefix}{name}.")


def signature_schema(fn: Any, skip: tuple[str, ...] = ("self", "spec", "optim")) -> type:
    """Return a dataclass with one field per keyword argument of `fn` (types, bounds and defaults)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    fields = []
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = list(p.default) if isinstance(p.default, tuple) else p.default
        if p.default is inspect.Parameter.empty:
            f = field()
        elif isinstance(default, (list, dict)):
            f = field(default_factory=lambda d=default: d.copy())
        else:
            f = field(default=default)
        fields.append((name, hints.get(name, Any), f))
    return dataclasses.make_dataclass(f"{getattr(fn, '__qualname__', 'fn')}_args", fields)


def check_entry(section: str, values: dict[str, Any], registry: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Check a `model` or `data` section: a registered name and keys of its constructor."""
    values = dict(values)
    if "name" not in values or not values["name"]:
        raise ConfigError(f"'{section}.name' is required. Available: {', '.join(registry.names())}")
    name = str(values["name"])
    cls = registry.get(name)
    own = {k: values.pop(k) for k in list(extra) if k in values}
    where = f"{section}"
    try:
        kwargs = checked(signature_schema(cls.__init__), values, where)
    except ConfigError as e:
        raise ConfigError(f"{e} ({section} '{name}')") from None
    return {**{k: v for k, v in extra.items() if k != "name"}, **own, "name": name, **kwargs}


def validate(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """Return the config as plain containers with defaults filled in, or raise ConfigError."""
    from zoo.registry import DATA, MODELS

    raw = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    out = checked(Config, raw, "")
    out["model"] = check_entry("model", out["model"], MODELS, FIT_MODEL_KEYS)
    out["data"] = check_entry("data", out["data"], DATA, {"name": None})
    from zoo.optim import OPTIMIZERS, SCHEDULERS

    choose("optimizer", out["optim"]["name"], OPTIMIZERS)
    choose("scheduler", out["optim"]["scheduler"]["name"], SCHEDULERS)
    out["trainer"] = check_trainer(out["trainer"])
    from zoo.loggers import check_loggers

    out["logger"] = check_loggers(out["logger"])
    return out


def check_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """Check that trainer keys are `lightning.Trainer` arguments that zoo does not manage itself."""
    import lightning

    valid = [n for n in inspect.signature(lightning.Trainer.__init__).parameters if n != "self"]
    for key in trainer:
        if key in MANAGED_TRAINER_KEYS:
            raise ConfigError(f"'trainer.{key}' is set by zoo; use the '{MANAGED_TRAINER_KEYS[key]}' section instead")
        if key not in valid:
            raise ConfigError(f"Unknown key 'trainer.{key}'.{did_you_mean(key, valid)} See lightning.Trainer arguments")
    return trainer


def to_yaml(cfg: dict[str, Any]) -> str:
    """Return the config as YAML text."""
    return OmegaConf.to_yaml(OmegaConf.create(cfg))
