"""`sfconnector validate`: check a config offline; exit 0 with a summary, or 2 with every problem."""

from __future__ import annotations

import click

from sfconnector.config import load_config
from sfconnector.errors import ConfigError

EXIT_CONFIG = 2


@click.command("validate")
@click.option(
    "--config",
    "config_path",
    default="connector.yaml",
    show_default=True,
    help="Config file to check (files it names are checked too).",
)
def validate(config_path: str) -> None:
    """Check the config offline: every problem as file:line:col: message (hint); exit 2 on any."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"config invalid: {count} problem{'s' if count != 1 else ''}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
    click.echo(f"config OK: {config.summary()}")
