"""`sfconnector deadletters list|retry|drop`: events and writes that could not be processed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sfconnector.commands._common import config_option, connect_or_exit, fail
from sfconnector.commands._state import state_file, state_option
from sfconnector.config import Config
from sfconnector.errors import SfconnectorError
from sfconnector.state import DeadLetter, StateError, StateStore

if TYPE_CHECKING:
    from sfconnector.pipeline.batch import ProcessedBatch


@click.group("deadletters")
def deadletters() -> None:
    """List, retry or drop dead letters (bad events, writes Salesforce refused)."""


def _open(config_path: str, state_opt: Path | None, *, readonly: bool = False) -> StateStore:
    path, _ = state_file(config_path, state_opt)
    try:
        return StateStore.open(path, readonly=readonly)
    except StateError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits


@deadletters.command("list")
@config_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the dead letters as JSON, payloads included.")
def list_(config_path: str, state_opt: Path | None, as_json: bool) -> None:
    """Every dead letter with its reason (read-only; with --state alone, no config or secret needed)."""
    with _open(config_path, state_opt, readonly=True) as state:
        letters = state.dead_letters()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": d.id,
                        "source": d.source,
                        "channel": d.channel,
                        "replay_id": d.replay_id,
                        "reason": d.reason,
                        "created_at": d.created_at.isoformat(),
                        "payload": d.payload,
                    }
                    for d in letters
                ],
                indent=2,
                default=str,
            )
        )
        return
    if not letters:
        click.echo("no dead letters")
        return
    for d in letters:
        where = f"{d.channel}#{d.replay_id}" if d.channel else d.source
        click.echo(f"{d.id:>5}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.source:<8} {where}  {d.reason}")


@deadletters.command("retry")
@config_option
@state_option
@click.argument("ids", nargs=-1, type=int, required=True)
def retry(config_path: str, state_opt: Path | None, ids: tuple[int, ...]) -> None:
    """Try again: refused writes go back to the outbox; bad events are decided again (reads the org).

    The running daemon's writer picks the resulting writes up within seconds.
    """
    path, config = state_file(config_path, state_opt, want_config=True)
    if config is None:  # want_config: state_file loaded it or exited
        fail("a config is needed to decide events again")
        return
    with _open(config_path, path) as state:
        letters = {d.id: d for d in state.dead_letters()}
        for id_ in ids:
            letter = letters.get(id_)
            if letter is None:
                fail(f"no dead letter with id {id_}")
                return
            try:
                _retry_one(config, state, letter)
            except SfconnectorError as exc:  # the org unreachable, an entry pruned meanwhile: say so
                fail(f"{id_}: not retried: {exc}")


def _retry_one(config: Config, state: StateStore, letter: DeadLetter) -> None:
    """Refused write: back in the outbox. Bad event: decided again and its writes queued."""
    id_ = letter.id
    if letter.source == "outbox":
        state.retry_dead_letter(id_)
        click.echo(f"{id_}: write back in the outbox ({letter.reason})")
        return
    message = letter.payload
    if not (isinstance(message.get("channel"), str) and isinstance(message.get("data"), dict)):
        fail(f"{id_}: no original event kept ({letter.reason}); fix the record in Salesforce and drop it")
    processed = _decide_again(config, state, dict(message))
    if processed.decided.dead_letters:
        reason = processed.decided.dead_letters[0].reason
        fail(f"{id_}: still cannot be processed: {reason}")
    # The writes and the end of the dead letter in one transaction: a crash leaves one or the other.
    state.commit_batch(replace(processed.decided, checkpoints={}, resolves_dead_letters=[id_]))
    click.echo(f"{id_}: decided again, {len(processed.decided.outbox)} write(s) queued")


def _decide_again(config: Config, state: StateStore, message: dict[str, Any]) -> ProcessedBatch:
    from sfconnector.pipeline.batch import BatchProcessor
    from sfconnector.wiring import decision_rules, org_lookups

    _, client = connect_or_exit(config)
    processor = BatchProcessor(
        decision_rules(config), org_lookups(config, client), config.salesforce.client_name
    )
    return processor.process([message])


@deadletters.command("drop")
@config_option
@state_option
@click.argument("ids", nargs=-1, type=int, required=True)
def drop(config_path: str, state_opt: Path | None, ids: tuple[int, ...]) -> None:
    """Delete dead letters for good (with --state alone, no config or secret needed)."""
    with _open(config_path, state_opt) as state:
        for id_ in ids:
            try:
                state.drop_dead_letter(id_)
            except StateError as exc:
                fail(str(exc))
            click.echo(f"dropped {id_}")
