"""Bounds on numeric arguments, declared in type hints and checked before anything is built.

    def __init__(self, spec, *, hidden: list[PositiveInt] = (128,), dropout: Probability = 0.1): ...

`PositiveInt` is `Annotated[int, Range(1)]`: to Python and OmegaConf it is an `int`, and
`check_bounds` (run by config validation and by `ZooModel.save_hyperparameters`) turns a value
outside the range into a one-line ConfigError, instead of a shape error deep inside torch.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from zoo.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The numbers from `low` to `high`; `*_open` leaves that end out."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1, high_open=True)]  # dropout, momentum, betas, EMA decay
Fraction = Annotated[float, Range(0, 1)]


def bound(hint: Any) -> tuple[Range | None, bool]:
    """Return (the Range in a type hint, whether it bounds each item of a list), or (None, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `PositiveInt | None`
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if typing.get_origin(hint) is list and typing.get_args(hint):
        return bound(typing.get_args(hint)[0])[0], True
    if typing.get_origin(hint) is Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Range)), None), False
    return None, False


def describe(hint: Any) -> str:
    """Return a type hint as users read it: `int >= 1`, `list[int >= 1]`, `float in [0, 1)`, `str`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else describe(a) for a in args)
    if typing.get_origin(hint) is list and args:
        return f"list[{describe(args[0])}]"
    if typing.get_origin(hint) is Annotated:
        rng = bound(hint)[0]
        return f"{describe(args[0])} {rng}" if rng else describe(args[0])
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_bounds(hints: Mapping[str, Any], values: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError for the first value outside the Range its hint declares ('where' prefixes the key)."""
    for key, hint in hints.items():
        rng, each = bound(hint)
        value = values.get(key)
        if rng is None or value is None:
            continue
        if any(v not in rng for v in (value if each else [value])):
            what = "each item must be" if each else "must be"
            raise ConfigError(f"Invalid value for '{where}{key}': {what} {rng}, got {value!r}")
