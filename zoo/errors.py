"""User-facing errors: one line that names the problem and the valid choices, and the boundary
(`user_errors`) where every command turns them into that line and an exit code.

A contract: it imports nothing of zoo, and neither torch nor Lightning (the boundary knows their
exceptions by class name), so `zoo --help` stays quick.
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


def one_line(message: str) -> str:
    """Return a message on one line: its non-empty lines joined by spaces."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _named(error: BaseException, *names: str) -> bool:
    """Return True when the error's class, or a base of it, has one of `names` (no import needed)."""
    return any(cls.__name__ in names for cls in type(error).__mro__)


def first_line(error: BaseException) -> str:
    """Return the first non-empty line of an exception's message (OmegaConf's `.msg` when it has one)."""
    msg = getattr(error, "msg", None) or str(error)
    return next((line.strip() for line in str(msg).splitlines() if line.strip()), type(error).__name__)


def describe(error: BaseException) -> tuple[int, str]:
    """Return (exit code, one line) for an exception that reached a command's boundary.

    Known failures get code 2 and say what went wrong: zoo's own errors, Lightning's
    configuration errors, undecodable input, a named file that cannot be read or written, and
    memory exhausted by the model or batch a config asked for. Anything else is a bug or a
    failure zoo did not foresee: code 1, its type and first line, and how to see the traceback.
    Classes are recognised by name, so this module imports neither torch nor Lightning.
    """
    if isinstance(error, ZooError):
        return 2, one_line(error)
    if _named(error, "MisconfigurationException"):
        return 2, f"Invalid trainer settings: {first_line(error)}"
    if isinstance(error, UnicodeDecodeError):
        return 2, (f"Cannot decode the input as {error.encoding} text ({error.reason} at byte {error.start}); "
                   "give a UTF-8 text file")
    if _named(error, "JSONDecodeError"):
        return 2, f"Invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
    if _named(error, "DecompressionBombError"):
        return 2, f"Image refused: {first_line(error)}"
    if isinstance(error, MemoryError) or _named(error, "OutOfMemoryError") or "can't allocate memory" in str(error):
        return 2, ("Out of memory: the model or batch this config asks for does not fit "
                   f"({first_line(error)}); use smaller model sizes or data.batch_size")
    if isinstance(error, OSError) and error.filename:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 else error.filename
        return 2, f"{error.strerror or first_line(error)}: {where}"
    return 1, (f"Unexpected {type(error).__name__}: {first_line(error)} "
               "(run the command again with --debug for the traceback)")


class user_errors:
    """The error boundary of every command: an exception raised inside becomes one line on stderr,
    `error: ...`, and a non-zero exit code (`describe`: 2 for known failures, 1 for unexpected
    ones; a KeyboardInterrupt: 130). With `debug` it propagates with its traceback.

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
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            self.code = 130
            return True
        if not issubclass(kind, Exception):  # SystemExit (argparse, sys.exit) keeps its own code
            return False
        self.code, line = describe(error)
        print(f"error: {line}", file=sys.stderr)
        return True
