"""`sfconnector schema`: print the JSON Schema of connector.yaml (or of one section) for editors."""

from __future__ import annotations

import json

import click

from sfconnector.config import config_json_schema
from sfconnector.config._load import SECTIONS


@click.command("schema")
@click.option(
    "--section",
    type=click.Choice(sorted(SECTIONS)),
    default=None,
    help="Only the schema of one section, for a file named by `file:` (e.g. config/rules.yaml).",
)
def schema(section: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of the config, for completion and checking in editors."""
    click.echo(json.dumps(config_json_schema(section), indent=2, ensure_ascii=False))
