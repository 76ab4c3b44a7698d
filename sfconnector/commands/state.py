"""`sfconnector state backup PATH`: a consistent copy of the state file, safe while the daemon runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sfconnector.commands._common import config_option, fail
from sfconnector.commands._state import state_file, state_option
from sfconnector.state import StateError, backup_state


@click.group("state")
def state() -> None:
    """The daemon's state file: backups (see docs/operations.md for restores and upgrades)."""


@state.command("backup")
@config_option
@state_option
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was copied as JSON.")
def backup(config_path: str, state_opt: Path | None, destination: Path, force: bool, as_json: bool) -> None:
    """Copy the state to DESTINATION (a file, or a directory) through SQLite's online backup API.

    The copy is consistent even while the daemon writes (checkpoints, outbox and dead letters as of one
    moment), checked with PRAGMA integrity_check, and readable only by its owner. With --state alone it
    needs no config and no secret.
    """
    source, _ = state_file(config_path, state_opt)
    try:
        summary = backup_state(source, destination, overwrite=force)
    except StateError as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(summary.__dict__, indent=2))
        return
    click.echo(
        f"backed up {summary.source} to {summary.destination}: schema v{summary.schema_version}, "
        f"{summary.size_bytes} bytes, org {summary.org_id or 'not recorded'}"
    )
