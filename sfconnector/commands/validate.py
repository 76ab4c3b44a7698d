"""`sfconnector validate`: check a config offline; exit 0 with a summary, or 2 with every problem."""

from __future__ import annotations

import click

from sfconnector.commands._common import config_failed, config_option, load_or_exit
from sfconnector.config.keyfile import key_file_problems, setting_position
from sfconnector.errors import ConfigError, ConfigProblem


@click.command("validate")
@config_option
def validate(config_path: str) -> None:
    """Check the config (and the files it names) offline: every problem as file:line:col: message (hint).

    Exit status 0 when the config is usable, 2 when it is not. Nothing is sent to Salesforce.
    """
    config = load_or_exit(config_path)
    key = config.salesforce.auth.private_key_file
    if key is not None and config.salesforce.auth.method == "jwt":
        found = key_file_problems(key)
        if found:
            line, col = setting_position(config.source, "private_key_file")
            config_failed(ConfigError([ConfigProblem(str(config.source), line, col, p, h) for p, h in found]))
    click.echo(f"config OK: {config.summary()}")
