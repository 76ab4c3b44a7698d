"""`sfconnector report`: the referral funnel, top advocates, reward liability and routing overrides.

Read from Salesforce with SOQL aggregates, so the numbers are the ones reps and admins see there.
"""

from __future__ import annotations

import click

from sfconnector.commands._common import EXIT_CONFIG, config_option, connect_or_exit, fail, load_or_exit
from sfconnector.commands.reconcile import parse_since
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging


@click.command("report")
@config_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option(
    "--since",
    "since_text",
    help="Only referrals and rewards created since DATE (UTC), a date-time, or an age (30d).",
)
@click.option(
    "--top", default=10, show_default=True, type=click.IntRange(1, 200), help="Top advocates shown."
)
def report(config_path: str, fmt: str, since_text: str | None, top: int) -> None:
    """Referral funnel by channel and program, top advocates, reward liability, routing overrides."""
    since = None
    if since_text is not None:
        try:
            since = parse_since(since_text)
        except click.BadParameter as exc:
            fail(f"--since: {exc.message}", code=EXIT_CONFIG)
    config = load_or_exit(config_path)
    configure_logging("warning", json=False)
    from sfconnector.report import ReportReader, render

    try:
        _, client = connect_or_exit(config)
        program = ReportReader(client, config.mapping, config.routing).read(since, top=top)
    except SfconnectorError as exc:
        fail(str(exc))
    click.echo(render(program, fmt), nl=False)
