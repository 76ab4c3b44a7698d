"""`sfconnector check`: the online preflight. Can we log in, do the mapped objects and fields exist, can we
subscribe to every channel, how much of the org's API allocation is left? Exit 0 when all holds, 1 if not."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from typing import Any

import click

from sfconnector.commands._common import EXIT_FAILURE, config_option, connect_or_exit, load_or_exit
from sfconnector.config import Config
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging
from sfconnector.salesforce import SalesforceClient, TokenProvider

LOW_ALLOCATION = 0.10


def mapped_fields(config: Config) -> dict[str, set[str]]:
    """Salesforce object -> the fields the mapping names on it."""
    wanted: dict[str, set[str]] = {}
    mapping = config.mapping
    for logical in (mapping.advocate, mapping.lead, mapping.referral, mapping.reward):
        names = {getattr(logical, f.name) for f in dataclass_fields(logical) if f.name != "object"}
        wanted.setdefault(logical.object, set()).update(n for n in names if isinstance(n, str))
    for sobject, extra in mapping.additional_fields.items():
        wanted.setdefault(sobject, set()).update(extra)
    return wanted


def _check_schema(client: SalesforceClient, config: Config) -> list[str]:
    problems = []
    for sobject, names in sorted(mapped_fields(config).items()):
        try:
            described = client.describe(sobject)
        except SfconnectorError as exc:
            problems.append(f"object {sobject}: {exc}")
            continue
        have = {f["name"].lower(): f["name"] for f in described.get("fields", [])}
        for name in sorted(names):
            if name.lower() not in have:
                close = difflib.get_close_matches(name, list(have.values()), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(
                    f"field {sobject}.{name} does not exist or is not visible to the integration user{hint}"
                )
    return problems


def _check_routing_targets(client: SalesforceClient, config: Config) -> tuple[int, list[str]]:
    """(how many targets, problems): every queue and user the routing rules and fallbacks name must exist
    (users active), each problem at the position the config names it."""
    from sfconnector.soql import IdList, is_record_id, soql

    routing = config.routing
    fb = routing.fallbacks
    actions = [r.then for r in routing.rules] + [
        fb.inactive_owner,
        fb.inactive_advocate,
        fb.unknown_advocate,
        fb.no_match,
    ]
    named = [a for a in actions if a.kind in ("queue", "user") and a.target]
    usernames = sorted({str(a.target) for a in named if a.kind == "user" and not is_record_id(a.target)})
    ids = sorted({str(a.target) for a in named if is_record_id(a.target)})
    found_queues: dict[str, str] = {}
    users: dict[str, bool] = {}  # lower-case username or 15-char id -> active
    try:
        all_queues = [str(r["Name"]) for r in client.query("SELECT Id, Name FROM Group WHERE Type = 'Queue'")]
        found_queues = {q.lower(): q for q in all_queues}
        if usernames:
            for row in client.query(
                soql("SELECT Id, Username, IsActive FROM User WHERE Username IN {names}", names=usernames)
            ):
                users[str(row["Username"]).lower()] = bool(row.get("IsActive"))
        if ids:
            for row in client.query(soql("SELECT Id, IsActive FROM User WHERE Id IN {ids}", ids=IdList(ids))):
                users[str(row["Id"])[:15]] = bool(row.get("IsActive"))
            for row in client.query(soql("SELECT Id FROM Group WHERE Id IN {ids}", ids=IdList(ids))):
                found_queues[str(row["Id"])[:15].lower()] = str(row["Id"])
    except SfconnectorError as exc:
        return len(named), [f"routing targets: {exc}"]
    problems: list[str] = []
    for action in named:
        where = f"{action.at}: " if action.at else ""
        target = str(action.target)
        if action.kind == "queue":
            key = target[:15].lower() if is_record_id(target) else target.lower()
            if key not in found_queues:
                close = difflib.get_close_matches(target, all_queues, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"{where}queue '{target}' does not exist in the org{hint}")
        else:
            key = target[:15] if is_record_id(target) else target.lower()
            if key not in users:
                problems.append(f"{where}user '{target}' does not exist in the org")
            elif not users[key]:
                problems.append(f"{where}user '{target}' is inactive: leads routed to them would go nowhere")
    return len(named), problems


async def _check_channels(tokens: TokenProvider, config: Config) -> list[str]:
    from sfconnector.stream import StreamClient, StreamError

    problems = []
    ca = str(config.salesforce.ca_bundle) if config.salesforce.ca_bundle else None
    try:
        async with StreamClient(
            tokens.get_token, api_version=config.salesforce.api_version, ca_file=ca
        ) as client:
            for channel in config.stream.channels:
                try:
                    await client.subscribe(channel)
                except StreamError as exc:
                    problems.append(f"channel {channel}: {exc}")
    except StreamError as exc:
        problems.append(f"streaming: {exc}")
    return problems


def _allocation(client: SalesforceClient) -> tuple[int, int]:
    limits: dict[str, Any] = client.limits()
    daily = limits.get("DailyApiRequests", {})
    return int(daily.get("Remaining", 0)), int(daily.get("Max", 0))


@click.command("check")
@config_option
def check(config_path: str) -> None:
    """Online preflight: login, objects and fields, channels, API allocation left."""
    config = load_or_exit(config_path)
    configure_logging("critical", json=False)  # the checklist is the output

    tokens, client = connect_or_exit(config)
    failed = False

    def report(ok: bool, what: str, details: Sequence[str] = ()) -> None:
        nonlocal failed
        failed = failed or not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {what}")
        for line in details:
            click.echo(f"        {line}")

    try:
        token = tokens.token()
    except SfconnectorError as exc:
        report(False, f"login to {config.salesforce.login_url} ({config.salesforce.auth.method})", [str(exc)])
        raise SystemExit(EXIT_FAILURE) from None
    report(
        True,
        f"login as {config.salesforce.auth.username or config.salesforce.auth.client_id} at {token.instance_url}",
    )
    schema = _check_schema(client, config)
    report(
        not schema,
        f"mapped objects and fields ({sum(len(v) for v in mapped_fields(config).values())} fields)",
        schema,
    )
    count, targets = _check_routing_targets(client, config)
    report(not targets, f"routing targets the rules name ({count})", targets)
    channels = asyncio.run(_check_channels(tokens, config))
    report(not channels, f"subscribe to {len(config.stream.channels)} channel(s)", channels)
    try:
        remaining, maximum = _allocation(client)
    except SfconnectorError as exc:
        report(False, "API allocation", [str(exc)])
    else:
        low = maximum > 0 and remaining / maximum < LOW_ALLOCATION
        report(not low, f"API allocation: {remaining:,} of {maximum:,} daily requests left")
    raise SystemExit(EXIT_FAILURE if failed else 0)
