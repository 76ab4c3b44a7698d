"""`sfconnector schema`: print the JSON Schema of connector.yaml for editors."""

from __future__ import annotations

import json

import click

from sfconnector.config import config_json_schema


@click.command("schema")
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of the config, for completion and checking in editors."""
    click.echo(json.dumps(config_json_schema(), indent=2, ensure_ascii=False))
