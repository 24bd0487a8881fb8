"""Config loading and validation: YAML files + key=value overrides -> one plain, checked dict.

    cfg = load_config(["configs/experiment/digits_cnn.yaml"], ["trainer.max_epochs=3"])
    cfg = validate(cfg)        # unknown keys, wrong types and unknown names raise ConfigError
    datamodule, model = build_data_and_model(cfg)   # what the model and data sections name

The schema is a set of dataclasses checked by OmegaConf: the sections below, and `OptimConfig`
from zoo/models/optim.py (the optimizer builder's own defaults). Model and data sections are
checked against the registered class's constructor signature, trainer values against
`lightning.Trainer`'s, so a config can only name registered entries and pass primitives: there
is no `_target_` and no way to run arbitrary code.
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

from zoo.bounds import NonNegativeFloat, NonNegativeInt, PositiveInt, check_bounds
from zoo.errors import ConfigError, ZooError, choose, did_you_mean, first_line
from zoo.models.optim import OPTIMIZERS, SCHEDULERS, OptimConfig
from zoo.registry import DATA, MODELS, check_compatible, check_spec_compatible, data_kind
from zoo.training.environment import ENV_KEY, env_values
from zoo.training.trainer_args import check_trainer


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
    baseline: bool = False  # also fit the data's classical baselines on the same splits (results.json "baselines")


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
    fast_path: Any = "auto"  # auto | on | off: several optimizer steps per Lightning step (zoo/training/fastpath.py)


# -- the logger section: csv (default), tensorboard, wandb ---------------------------------------


@dataclass
class CSVConfig:
    name: str = "csv"


@dataclass
class TensorBoardConfig:
    name: str = "tensorboard"
    log_graph: bool = False


@dataclass
class WatchConfig:
    log: str | None = None  # gradients | parameters | all; None disables watching
    log_freq: PositiveInt = 100


@dataclass
class WandbConfig:
    name: str = "wandb"
    project: str = "zoo"
    entity: str | None = None
    run_name: str | None = None  # default: the run dir's experiment/timestamp
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    mode: str | None = None  # online | offline | disabled; default: online with an API key, else offline
    log_model: Any = False  # false | true | all: upload checkpoints as artifacts
    watch: WatchConfig = field(default_factory=WatchConfig)


LOGGERS = {"csv": CSVConfig, "tensorboard": TensorBoardConfig, "wandb": WandbConfig}

# Keys of the model section that fit consumes itself instead of passing to the constructor.
FIT_MODEL_KEYS = {"name": None, "compile": False}


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
        raise invalid_value(e, where) from None
    try:
        out = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve: ${nope}, ${oc.env:UNSET}
        raise invalid_value(e, where) from None
    check_schema_bounds(schema, out, f"{where}." if where else "")
    return out


def invalid_value(e: OmegaConfBaseException, where: str) -> ConfigError:
    """Return the one-line ConfigError for a value OmegaConf refused, naming its full key."""
    key = f"{where}.{e.full_key}" if where and e.full_key else (e.full_key or where)
    return ConfigError(f"Invalid value for '{key}': {first_line(e)}")


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
    """Return the config as plain containers with defaults filled in, or raise ConfigError.

    Checks keys, types and bounds of every section, the model's and the data's names and
    arguments, that the model can train on the data (and, with run.baseline, that baselines
    exist for it), trainer values and the loggers.
    """
    raw = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    out = checked(Config, raw, "")
    out["model"] = check_entry("model", out["model"], MODELS, FIT_MODEL_KEYS)
    out["data"] = check_entry("data", out["data"], DATA, {"name": None})
    check_compatible(out["model"]["name"], out["data"]["name"], out["data"])
    if out["run"]["baseline"]:
        from zoo.evaluation.baseline import check_baselines

        check_baselines(out["model"]["name"], out["data"]["name"], out["data"])
    choose("optimizer", out["optim"]["name"], OPTIMIZERS)
    choose("scheduler", out["optim"]["scheduler"]["name"], SCHEDULERS)
    if len(out["optim"]["betas"]) != 2:
        raise ConfigError(f"Invalid value for 'optim.betas': needs 2 items (beta1, beta2), got {out['optim']['betas']}")
    check_run_name(out["run"]["name"])
    check_monitors(out)
    out["trainer"] = check_trainer(out["trainer"])
    out["logger"] = check_loggers(out["logger"])
    from zoo.training.fastpath import fast_path_mode  # imports Lightning: here, not when config.py loads

    out["fast_path"] = fast_path_mode(out["fast_path"])
    env = env_values(raw)
    if env:
        out[ENV_KEY] = env
    return out


def check_run_name(name: str | None) -> None:
    """Refuse a run.name that is not one folder name, so that every run dir stays inside run.dir."""
    if name is None:
        return
    if not name.strip() or name in (".", "..") or any(sep in name for sep in ("/", "\\")) or Path(name).is_absolute():
        raise ConfigError(f"Invalid value for 'run.name': {name!r} must be a folder name inside run.dir "
                          "(no '/', no '..'); choose where runs go with run.dir")


def check_monitors(cfg: dict[str, Any]) -> None:
    """Check the checkpoint and early-stopping monitors and modes against the metrics the model logs on
    this data (`ZooModel.epoch_metrics`), before any data loads: a wrong name would otherwise fail
    only after a whole epoch, and a mode that fights its metric would keep the worst checkpoint."""
    model, data = cfg["model"]["name"], cfg["data"]["name"]
    logged = MODELS.get(model).epoch_metrics(*data_kind(data, cfg["data"]))
    for section in ("checkpoint", "early_stopping"):
        c = cfg["callbacks"][section]
        where = f"callbacks.{section}"
        if c["mode"] is not None:
            choose(f"{where}.mode", c["mode"], ("min", "max"))
        if c["monitor"] is None:
            continue
        if c["monitor"] not in logged:
            raise ConfigError(f"Unknown metric '{c['monitor']}' for {where}.monitor.{did_you_mean(c['monitor'], logged)} "
                              f"Model '{model}' logs on '{data}': {', '.join(sorted(logged))}")
        better = logged[c["monitor"]]
        if c["mode"] is not None and c["mode"] != better:
            raise ConfigError(f"{where}.mode={c['mode']} would keep the worst {c['monitor']}: it improves "
                              f"towards its {better}imum (mode {better}, the default for it)")


def check_loggers(value: Any) -> list[dict[str, Any]]:
    """Return the logger section as a list of checked logger configs (a single mapping or name is allowed)."""
    if value is None:
        return [checked(CSVConfig, {}, "logger")]
    if value is False:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"Each logger needs a name ({', '.join(LOGGERS)}), got {item!r}")
        where = "logger" if len(items) == 1 else f"logger[{i}]"
        name = choose("logger", item["name"], LOGGERS)
        c = checked(LOGGERS[name], item, where)
        if name == "wandb":  # checked here, so that a typo fails before any run starts
            if c["watch"]["log"]:
                c["watch"]["log"] = choose(f"{where}.watch.log", c["watch"]["log"], ("gradients", "parameters", "all"))
            log_model = choose(f"{where}.log_model", str(c["log_model"]).lower(), ("false", "true", "all"))
            c["log_model"] = {"false": False, "true": True, "all": "all"}[log_model]
            if c["mode"]:
                c["mode"] = choose(f"{where}.mode", c["mode"], ("online", "offline", "disabled"))
        out.append(c)
    return out


def data_section(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return the checked data section of a stored run config, with `data.key=value` overrides applied."""
    extra = load_config([], overrides)
    if set(extra) - {"data"}:
        raise ConfigError(f"Only data.* overrides apply here, got: {', '.join(sorted(set(extra) - {'data'}))}")
    try:  # a stored config keeps ${oc.env:...} as written (zoo/training/environment.py): resolve it here
        data_cfg = OmegaConf.to_container(OmegaConf.merge(cfg["data"], extra.get("data", {})), resolve=True)
    except OmegaConfBaseException as e:
        raise invalid_value(e, "data") from None
    return check_entry("data", data_cfg, DATA, {"name": None})


def datamodule_for(cfg: dict[str, Any], overrides: list[str]) -> Any:
    """Return the prepared DataModule of a stored run config, with `data.key=value` overrides applied."""
    data_cfg = data_section(cfg, overrides)
    datamodule = DATA.build(data_cfg.pop("name"), **data_cfg)
    datamodule.prepare_data()
    return datamodule


def build_data_and_model(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """Return the prepared DataModule and the model of a checked config, after checking that they fit together."""
    name = cfg["model"]["name"]
    model_cfg = {k: v for k, v in cfg["model"].items() if k not in FIT_MODEL_KEYS}  # fit's own: name, compile
    data_cfg = dict(cfg["data"])
    data_name = data_cfg.pop("name")
    check_compatible(name, data_name, data_cfg)  # from the arguments: before anything loads
    datamodule = DATA.get(data_name)(**data_cfg)  # the classes themselves: a key goes from here to its constructor
    datamodule.prepare_data()
    check_spec_compatible(name, data_name, datamodule.spec)  # and from the data as loaded
    try:
        model = MODELS.get(name)(spec=datamodule.spec.to_dict(), optim=cfg["optim"], **model_cfg)
    except (MemoryError, RuntimeError) as e:  # torch: "DefaultCPUAllocator: can't allocate memory", CUDA OOM
        if not isinstance(e, MemoryError) and "memory" not in str(e):
            raise
        sizes = ", ".join(f"model.{k}={v}" for k, v in model_cfg.items())
        raise ZooError(f"Model '{name}' does not fit in memory with {sizes or 'its defaults'} "
                       f"({str(e).splitlines()[0][-120:]}); use smaller sizes") from None
    return datamodule, model
