"""Config values read from the environment: used resolved, saved as written.

A config may read the environment (`data.path: ${oc.env:DATA_DIR}/reviews.csv`). The run uses the
resolved value, but what a run writes and sends (config.yaml, the checkpoint's config, every
logger, `--print-config`) keeps the expression as written: a token or a private path in the
environment never lands on disk or on a tracking server, and re-running config.yaml reads the
environment again.
"""

from __future__ import annotations

from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

ENV_KEY = "_env"  # validate() keeps [[key, resolved value, expression], ...] here when a config reads it


def _kept_env(key: str, default: Any = None) -> str:
    return "${oc.env:" + key + ("" if default is None else f",{default}") + "}"


def env_values(raw: DictConfig) -> list[list[Any]]:
    """Return [key, resolved value, value with its ${oc.env:...} kept as written] for each value of
    `raw` that reads the environment, directly or through another interpolation."""
    plain = OmegaConf.to_container(raw, resolve=False)
    if "oc.env:" not in repr(plain):
        return []
    OmegaConf.register_resolver("zoo_kept_env", _kept_env, replace=True, annotation_validation="off")

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node.replace("${oc.env:", "${zoo_kept_env:") if isinstance(node, str) else node

    try:
        kept = OmegaConf.to_container(OmegaConf.create(swap(plain)), resolve=True)
        resolved = OmegaConf.to_container(raw, resolve=True)
    except OmegaConfBaseException:  # validation has reported it already
        return []
    return [[key, value, expr] for (key, value), (_, expr) in zip(_leaves(resolved), _leaves(kept)) if value != expr]


def _leaves(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Return (last key, value) of every leaf in a plain config, depth first (list items take their list's key)."""
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, str(k))]
    if isinstance(node, list):
        return [leaf for v in node for leaf in _leaves(v, key)]
    return [(key, node)]


def saved_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return the config as a run writes and logs it: values read from the environment keep their
    `${oc.env:...}` expression (see ENV_KEY)."""
    env = cfg.get(ENV_KEY) or []

    def mask(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: mask(v, str(k)) for k, v in node.items() if k != ENV_KEY}
        if isinstance(node, list):
            return [mask(v, key) for v in node]
        return next((expr for k, value, expr in env if k == key and value == node), node)

    return mask(cfg)


def yaml_text(saved: dict[str, Any]) -> str:
    """Return the YAML of a config of plain containers, as `OmegaConf.to_yaml` writes it (key order kept,
    block style, unicode as is), without first building a DictConfig of it: about 7 ms a config, which a
    run writes twice (config.yaml, the CSV logger's hparams.yaml). tests/test_config.py compares the two
    on every experiment config."""
    return yaml.dump(saved, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
