"""`sfconnector validate`: check a config offline; exit 0 with a summary, or 2 with every problem."""

from __future__ import annotations

import click

from sfconnector.commands._common import config_option, load_or_exit


@click.command("validate")
@config_option
def validate(config_path: str) -> None:
    """Check the config (and the files it names) offline: every problem as file:line:col: message (hint).

    Exit status 0 when the config is usable, 2 when it is not. Nothing is sent to Salesforce.
    """
    config = load_or_exit(config_path)
    click.echo(f"config OK: {config.summary()}")
