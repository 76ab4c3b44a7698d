"""`sfconnector status`: checkpoints and lag per channel, outbox depth, dead letters, last errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from sfconnector.clock import system_clock
from sfconnector.commands._common import config_option, fail
from sfconnector.commands._state import state_file, state_option
from sfconnector.state import StateError, StateStore


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


@click.command("status")
@config_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(config_path: str, state_opt: Path | None, as_json: bool) -> None:
    """Show what the daemon has done: checkpoints, outbox, dead letters, last errors (offline, read-only).

    With --state alone it reads nothing but the state file (no config, no secret)."""
    path, config = state_file(config_path, state_opt)
    try:
        with StateStore.open(path, readonly=True) as state:
            st = state.status()
            recent = state.routing_log(limit=5)
            readings = state.readings()
            org_id = state.org_id()
    except StateError as exc:  # a newer schema, another program's file: explain, no traceback
        fail(str(exc))
        return
    now = system_clock()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "state": str(path),
                    "schema_version": st.schema_version,
                    "org_id": org_id,
                    "channels": [
                        {
                            "channel": c.channel,
                            "checkpoint": c.checkpoint,
                            "updated_at": c.updated_at.isoformat() if c.updated_at else None,
                        }
                        for c in st.channels
                    ],
                    "outbox": {
                        "pending": st.outbox_pending,
                        "retrying": st.outbox_retrying,
                        "dead": st.outbox_dead,
                    },
                    "dead_letters": st.dead_letters,
                    "api_usage": readings.get("api_usage", (None, None))[0],
                    "last_event_at": {
                        name.removeprefix("last_event:"): value
                        for name, (value, _) in readings.items()
                        if name.startswith("last_event:")
                    },
                    "last_errors": [
                        {"where": e.where, "message": e.message, "at": e.at.isoformat()}
                        for e in st.last_errors
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(f"state: {path} (schema v{st.schema_version}, org {org_id or 'not recorded yet'})")
    click.echo("channels:")
    configured = set(config.stream.channels) if config is not None else set()
    seen = {c.channel for c in st.channels}
    for c in st.channels:
        event = readings.get(f"last_event:{c.channel}")
        lag = ""
        if event is not None and event[1] is not None:
            happened = datetime.fromisoformat(event[0])
            lag = f", last event from {_age(happened, now)} (processed {max(0.0, (event[1] - happened).total_seconds()):.1f}s after it happened)"
        click.echo(f"  {c.channel:<40} checkpoint {c.checkpoint!s:<12} moved {_age(c.updated_at, now)}{lag}")
    for channel in sorted(configured - seen):
        click.echo(f"  {channel:<40} no checkpoint yet (starts from the configured start)")
    oldest = f", oldest waiting since {_age(st.oldest_pending_at, now)}" if st.oldest_pending_at else ""
    click.echo(f"outbox: {st.outbox_pending} pending, {st.outbox_retrying} retrying{oldest}")
    click.echo(
        f"dead letters: {st.dead_letters}"
        + ("  (see `sfconnector deadletters list`)" if st.dead_letters else "")
    )
    usage = readings.get("api_usage")
    if usage is not None:
        used, _, maximum = usage[0].partition("/")
        share = f" ({int(used) / int(maximum):.1%})" if maximum.isdigit() and int(maximum) else ""
        click.echo(f"API usage: {used} of {maximum} daily requests{share}, read {_age(usage[1], now)}")
    if st.last_errors:
        click.echo("last errors:")
        for e in st.last_errors:
            click.echo(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.where}: {e.message}")
    if recent:
        click.echo("recent routing decisions:")
        for row in recent:
            click.echo(
                f"  {row.decided_at:%H:%M:%S} lead {row.lead_id} -> {row.routed_owner_id} [{row.rule}] {row.reason}"
            )
