"""What every command shares: the --config option and turning config errors into exit status 2."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sfconnector.clock import Clock, system_clock
from sfconnector.config import Config, load_config
from sfconnector.errors import ConfigError

if TYPE_CHECKING:
    from sfconnector.salesforce import SalesforceClient, TokenProvider

EXIT_CONFIG = 2
EXIT_FAILURE = 1

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    fn = click.option(
        "--credentials-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SFCONNECTOR_CREDENTIALS_DIR",
        expose_value=False,
        callback=_use_credentials_dir,
        help="Read credential:NAME secrets from this directory, as the unit's LoadCredential= lines do "
        "(e.g. /etc/sfconnector/credentials). Default: $CREDENTIALS_DIRECTORY, which systemd sets.",
    )(fn)
    return click.option(
        "--config",
        "config_path",
        default="connector.yaml",
        show_default=True,
        help="The connector config file.",
    )(fn)


def _use_credentials_dir(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """From a shell, credential:NAME resolves where the unit loads it from (the loader reads the variable)."""
    if value is not None:
        os.environ["CREDENTIALS_DIRECTORY"] = str(value.resolve())


def load_or_exit(path: str) -> Config:
    """The frozen config, or every problem printed as file:line:col and exit status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        config_failed(exc)
        raise  # unreachable: config_failed exits


def connect_or_exit(config: Config, clock: Clock = system_clock) -> tuple[TokenProvider, SalesforceClient]:
    """The token provider and REST client of the config; a file it names that cannot be read (the JWT
    key) is a config problem: printed like the others, exit status 2, no traceback."""
    from sfconnector.wiring import connect

    try:
        return connect(config, clock=clock)
    except ConfigError as exc:
        config_failed(exc)
        raise  # unreachable: config_failed exits


def config_failed(exc: ConfigError) -> None:
    """Print every problem of ``exc`` and exit with status 2."""
    for problem in exc.problems:
        click.echo(str(problem), err=True)
    count = len(exc.problems)
    click.echo(f"config invalid: {count} problem{'s' if count != 1 else ''}", err=True)
    raise SystemExit(EXIT_CONFIG) from None


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
