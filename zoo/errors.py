"""User-facing errors: one line that names the problem and the valid choices, and the boundary
(`user_errors`) where every command turns them into that line and an exit code.

A contract: it imports nothing of zoo.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from typing import Any


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


class user_errors:
    """The error boundary of every command: a ZooError raised inside becomes one line on stderr and
    exit code 2 (a KeyboardInterrupt: 130); with `debug` it propagates with its traceback.

        with user_errors(args.debug) as boundary:
            return run(args)
        return boundary.code          # reached only when an error was turned into a line
    """

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self.code = 0

    def __enter__(self) -> user_errors:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> bool:
        if kind is None or self.debug:
            return False
        if issubclass(kind, ZooError):
            print(f"error: {error}", file=sys.stderr)
            self.code = 2
            return True
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            self.code = 130
            return True
        return False
