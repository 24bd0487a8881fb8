"""User-facing errors: one line that names the problem and the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """An error caused by user input. The CLI prints it as one line and exits with code 2."""


class ConfigError(ZooError, ValueError):
    """A config value, key or name that zoo cannot use."""


class IncompatibleError(ZooError):
    """A model that cannot train on the given data."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choose(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else raise ConfigError with a did-you-mean."""
    choices = sorted(choices)
    if value not in choices:
        raise ConfigError(
            f"Unknown {kind} '{value}'.{did_you_mean(value, choices)} Available: {', '.join(choices)}"
        )
    return value
