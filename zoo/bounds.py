"""Bounds on numeric arguments, declared in type hints and checked before anything is built.

    def __init__(self, spec, *, hidden: list[PositiveInt] = (128,), dropout: Probability = 0.1): ...

`PositiveInt` is `Annotated[int, Range(1)]`: to Python and OmegaConf it is an `int`, and
`check_bounds` (run by config validation and by `ZooModel.save_hyperparameters`) turns a value
outside the range into a one-line ConfigError, instead of a shape error deep inside torch.
Models and DataModules declare their arguments this way; a contract that imports only zoo.errors.
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


@dataclass(frozen=True)
class MinItems:
    """A list with at least `n` items: `Annotated[list[PositiveInt], MinItems(1)]`."""

    n: int

    def __str__(self) -> str:
        return f"at least {self.n} item{'s' if self.n != 1 else ''}"


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1, high_open=True)]  # dropout, momentum, betas, EMA decay
Fraction = Annotated[float, Range(0, 1)]
OpenFraction = Annotated[float, Range(0, 1, low_open=True, high_open=True)]  # a split's share: never all, never none
Widths = Annotated[list[PositiveInt], MinItems(1)]  # one positive width per layer, at least one layer


def _without_none(hint: Any) -> Any:
    """Return X for `X | None`, else the hint itself."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    return hint


def bound(hint: Any) -> tuple[Range | None, bool]:
    """Return (the Range in a type hint, whether it bounds each item of a list), or (None, False)."""
    hint = _without_none(hint)
    if typing.get_origin(hint) is list and typing.get_args(hint):
        return bound(typing.get_args(hint)[0])[0], True
    if typing.get_origin(hint) is Annotated:
        rng = next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
        return (rng, False) if rng else bound(typing.get_args(hint)[0])
    return None, False


def violation(hint: Any, value: Any) -> str | None:
    """Return what `value` breaks of the Range / MinItems its hint declares ("must be >= 1"), or None."""
    hint = _without_none(hint)
    if value is None:
        return None
    if typing.get_origin(hint) is Annotated:
        for rule in hint.__metadata__:
            if isinstance(rule, Range) and value not in rule:
                return f"must be {rule}"
            if isinstance(rule, MinItems) and len(value) < rule.n:
                return f"needs {rule}"
        return violation(typing.get_args(hint)[0], value)
    if typing.get_origin(hint) is list and typing.get_args(hint):
        problem = next(filter(None, (violation(typing.get_args(hint)[0], v) for v in value)), None)
        return f"each item {problem}" if problem else None
    return None


def describe(hint: Any) -> str:
    """Return a type hint as users read it: `int >= 1`, `list[int >= 1]`, `float in [0, 1)`, `'a' | 'b'`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else describe(a) for a in args)
    if typing.get_origin(hint) is list and args:
        return f"list[{describe(args[0])}]"
    if typing.get_origin(hint) is Annotated:
        rules = [f"({m})" if isinstance(m, MinItems) else str(m) for m in hint.__metadata__
                 if isinstance(m, (Range, MinItems))]
        return " ".join([describe(args[0]), *rules])
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_bounds(hints: Mapping[str, Any], values: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError for the first value outside what its hint declares ('where' prefixes the key)."""
    for key, hint in hints.items():
        problem = violation(hint, values.get(key))
        if problem:
            raise ConfigError(f"Invalid value for '{where}{key}': {problem}, got {values[key]!r}")
