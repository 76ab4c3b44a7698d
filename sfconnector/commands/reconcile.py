"""`sfconnector reconcile --since DATE`: the catch-up sweep on demand.

Finds referral leads without a Referral__c, leads not owned by their routed owner, referrals whose status
lags their lead or opportunity and won referrals without a reward; queues the repairs in the daemon's
outbox (the running daemon writes them), or writes them at once with `--drain` while the daemon is stopped.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click
import requests

from sfconnector.clock import system_clock
from sfconnector.commands._common import EXIT_CONFIG, config_option, connect_or_exit, fail, load_or_exit
from sfconnector.config import Config
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging

DRAIN_TIMEOUT_S = 300.0
SHOWN_FINDINGS = 20


_AGO = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-20` (midnight UTC), an ISO date-time (UTC when it has no zone), or an age: `72h`, `7d`, `30m`."""
    value = text.strip()
    ago = _AGO.match(value.lower())
    if ago:
        return (now or system_clock()) - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date (2026-11-20), an ISO date-time (2026-11-20T08:00:00Z)"
            " or an age (72h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Progress:
    """A progress bar per stage on a terminal, one line per page or batch otherwise."""

    def __init__(self, tty: bool) -> None:
        self._tty = tty
        self._bar: Any = None
        self._stage: str | None = None
        self._done = 0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._done = stage, 0
            if self._tty and total:
                self._bar = click.progressbar(length=total, label=f"{stage:<10}", file=sys.stderr)
                self._bar.__enter__()
        if self._bar is not None:
            self._bar.update(done - self._done)
        elif done or not total:
            click.echo(f"reconcile: {stage} {done}/{total if total is not None else '?'}", err=True)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _daemon_running(config: Config) -> bool:
    """The daemon's health endpoint answers: its writer owns the outbox."""
    if not config.health.enabled:
        return False
    try:
        requests.get(f"http://{config.health.host}:{config.health.port}/healthz", timeout=1)
    except requests.RequestException:
        return False
    return True


def _drain(config: Config, client: Any, state: Any) -> tuple[int, int, int]:
    """Write the queued entries now; (done, dead, still waiting)."""
    from sfconnector.writer import OutboxWriter

    writer = OutboxWriter(
        state,
        client,
        batch_size=config.writer.batch_size,
        max_attempts=config.writer.max_retries,
        backoff_initial_s=config.writer.retry_initial_seconds,
        backoff_max_s=config.writer.retry_max_seconds,
        use_composite=config.writer.use_composite,
    )
    done = dead = 0
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        report = writer.drain_once()
        done, dead = done + report.done + report.skipped, dead + report.dead
        status = state.status()
        waiting = status.outbox_pending + status.outbox_retrying
        if waiting == 0:
            return done, dead, 0
        if report.idle:
            due = report.paused_until or state.next_outbox_due()
            pause = (due - system_clock()).total_seconds() if due else 1.0
            time.sleep(
                min(max(pause, 0.05), max(0.0, deadline - time.monotonic()))
            )  # backoff the writer chose
    status = state.status()
    return done, dead, status.outbox_pending + status.outbox_retrying


@click.command("reconcile")
@config_option
@click.option(
    "--since",
    "since_text",
    required=True,
    help="Referral leads created since DATE (UTC), a date-time, or an age (72h, 7d).",
)
@click.option("--dry-run", is_flag=True, help="Find and decide, queue nothing.")
@click.option(
    "--drain", is_flag=True, help="Write the queued repairs now (only while the daemon is stopped)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary and every finding as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every finding, not only the first ones.")
def reconcile(
    config_path: str, since_text: str, dry_run: bool, drain: bool, as_json: bool, show_all: bool
) -> None:
    """Sweep the org by SOQL for referrals and rewards the event stream missed; queue the repairs."""
    try:
        since = parse_since(since_text)
    except click.BadParameter as exc:
        fail(f"--since: {exc.message}", code=EXIT_CONFIG)
    if dry_run and drain:
        fail("--dry-run queues nothing, so there is nothing to --drain", code=EXIT_CONFIG)
    config = load_or_exit(config_path)
    configure_logging("warning", json=False)
    if drain and _daemon_running(config):
        fail("the daemon is running (its health endpoint answers): it writes the queued repairs itself")
    from sfconnector.reconcile import reconciler_for
    from sfconnector.state import StateStore

    state = None
    progress = _Progress(tty=sys.stderr.isatty() and not as_json)
    try:
        if not dry_run or config.state.path.exists():
            state = StateStore.open(config.state.path)
        _, client = connect_or_exit(config)
        summary = reconciler_for(config, client, state).run(since, dry_run=dry_run, progress=progress)
        progress.close()
        drained = _drain(config, client, state) if drain and state is not None else None
    except SfconnectorError as exc:
        progress.close()
        fail(str(exc))
    finally:
        if state is not None:
            state.close()
    if as_json:
        body = summary.as_json()
        if drained is not None:
            body["drained"] = {"written": drained[0], "dead": drained[1], "waiting": drained[2]}
        click.echo(json.dumps(body, indent=2))
        return
    _print(summary, drained, show_all)


def _print(summary: Any, drained: tuple[int, int, int] | None, show_all: bool) -> None:
    from sfconnector.reconcile import KIND_LABELS, KINDS

    mode = " (dry run: nothing queued)" if summary.dry_run else ""
    click.echo(f"Reconciliation since {summary.since:%Y-%m-%d %H:%M} UTC{mode}")
    click.echo(f"scanned {summary.leads_scanned} referral leads and {summary.referrals_scanned} referrals")
    for kind in KINDS:
        total = summary.count(kind)
        parts = [
            f"{n} {label}"
            for repair, label in (
                ("queued", "queued"),
                ("would_queue", "would be queued"),
                ("already_queued", "already in the outbox"),
                ("reported", "left for a person"),
            )
            if (n := summary.count(kind, repair))
        ]
        click.echo(f"  {KIND_LABELS[kind]:<54} {total:>6}" + (f"  ({', '.join(parts)})" if parts else ""))
    click.echo(
        f"queued {summary.queued} new outbox entries; {summary.api_calls} API calls; {summary.elapsed_s:.1f} s"
    )
    if drained is not None:
        written, dead, waiting = drained
        click.echo(f"written now: {written}; dead letters: {dead}; still waiting: {waiting}")
    elif summary.queued:
        click.echo("the running daemon writes them (or run again with --drain while it is stopped)")
    for note in summary.notes:
        click.echo(f"note: {note}")
    # What a person must look at always shows; the routine repairs only up to a screenful.
    attention = [f for f in summary.findings if f.repair == "reported"]
    routine = [f for f in summary.findings if f.repair != "reported"]
    shown = routine if show_all else routine[:SHOWN_FINDINGS]
    if attention:
        click.echo("needs a person:")
        for f in attention:
            click.echo(f"  {f.kind:<17} {f.record_id}  {f.detail}")
    if shown:
        click.echo("repairs:")
        for f in shown:
            click.echo(f"  {f.kind:<17} {f.record_id}  {f.repair:<14} {f.detail}")
        if len(routine) > len(shown):
            click.echo(f"  ... and {len(routine) - len(shown)} more (--all lists them)")
