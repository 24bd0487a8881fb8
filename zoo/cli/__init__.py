"""The `zoo` command: one module per command group, dispatched by zoo/cli/main.py.

Commands are the top of the house: they may import everything below them (fit, training/,
evaluation/, hub/, models/, data/ and the contracts); nothing imports them.
"""

from zoo.cli.main import main

__all__ = ["main"]
