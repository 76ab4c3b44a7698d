"""What every command shares: the --config option and turning config errors into exit status 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sfconnector.config import Config, load_config
from sfconnector.errors import ConfigError

EXIT_CONFIG = 2
EXIT_FAILURE = 1

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        default="connector.yaml",
        show_default=True,
        help="The connector config file.",
    )(fn)


def load_or_exit(path: str) -> Config:
    """The frozen config, or every problem printed as file:line:col and exit status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"config invalid: {count} problem{'s' if count != 1 else ''}", err=True)
        raise SystemExit(EXIT_CONFIG) from None


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
