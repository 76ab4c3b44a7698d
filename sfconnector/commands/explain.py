"""`sfconnector explain`: the decision for an event file or a lead, with the rule trace; nothing is written.

Reads the org (advocates, owners, people already known) exactly as the daemon would, runs the same pure
decision, and prints it. Admins use it to see why a lead went to whom and to try a rule before it goes live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sfconnector.clock import system_clock
from sfconnector.commands._common import config_option, connect_or_exit, fail, load_or_exit
from sfconnector.config import Config
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging


def _messages(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"cannot read the event file {path}: {exc}")
    messages = data if isinstance(data, list) else [data]
    if not all(isinstance(m, dict) for m in messages):
        fail(f"{path}: expected a streaming message object (or a list of them)")
    return messages


def _lead_message(client: Any, config: Config, lead_id: str) -> dict[str, Any]:
    """The lead as its create event would carry it, read and dated exactly as the reconciliation sweep does
    (the same columns as the daemon's own re-read), so all three decide a lead the same way."""
    from sfconnector.pipeline.lead_reader import LeadReader
    from sfconnector.reconcile._findings import parse_datetime
    from sfconnector.reconcile._replay import lead_created

    try:
        rows = LeadReader(client, config.mapping, config.routing).read([lead_id])
    except ValueError as exc:
        fail(str(exc))
    if not rows:
        fail(f"no lead {lead_id}")
    [row] = rows.values()
    return lead_created(row, config.mapping, parse_datetime(row.get("CreatedDate")))


@click.command("explain")
@config_option
@click.option(
    "--event", "event_file", type=click.Path(path_type=Path), help="A streaming message (JSON) to decide."
)
@click.option("--lead", "lead_id", help="A lead id: decide it as if it had just been created.")
@click.option(
    "--opportunity",
    "opportunity_id",
    help="An opportunity id: which reward rules match, the amount and why (as if won, if it is not yet).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def explain(
    config_path: str, event_file: Path | None, lead_id: str | None, opportunity_id: str | None, as_json: bool
) -> None:
    """Dry-run the rules on an event file, a lead or an opportunity: the decision and why, nothing written."""
    if sum(x is not None for x in (event_file, lead_id, opportunity_id)) != 1:
        fail("give exactly one of --event FILE, --lead ID or --opportunity ID", code=2)
    config = load_or_exit(config_path)
    configure_logging("warning", json=False)
    if opportunity_id is not None:
        _explain_opportunity(config, opportunity_id, as_json)
        return
    from sfconnector.pipeline.batch import BatchProcessor
    from sfconnector.soql import is_record_id
    from sfconnector.wiring import decision_rules, org_lookups

    if lead_id is not None and not is_record_id(lead_id):
        fail(f"{lead_id!r} is not a Salesforce record id", code=2)
    try:
        _, client = connect_or_exit(config)
        messages = _messages(event_file) if event_file else [_lead_message(client, config, str(lead_id))]
        # Not the daemon's client name: a lead the daemon wrote itself is still explained.
        processor = BatchProcessor(
            decision_rules(config), org_lookups(config, client), own_client="\0explain"
        )
        processed = processor.process(messages)
    except SfconnectorError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(_as_json(processed), indent=2, default=str))
        return
    for dead in processed.decided.dead_letters:
        click.echo(f"not processable: {dead.reason}")
    if not processed.outcomes and not processed.decided.dead_letters:
        click.echo(
            "no referral in this event: nothing would be done (no referral code, or not a lead or referral event)"
        )
    for outcome in processed.outcomes:
        _print_outcome(outcome)


def _explain_opportunity(config: Config, opportunity_id: str, as_json: bool) -> None:

    from sfconnector.pipeline.lifecycle_reads import LifecycleReader
    from sfconnector.pipeline.reward_explain import OpportunityNotFound, explain_opportunity
    from sfconnector.soql import is_record_id

    if not is_record_id(opportunity_id):
        fail(f"{opportunity_id!r} is not a Salesforce record id", code=2)
    try:
        _, client = connect_or_exit(config)
        reader = LifecycleReader(client, config.mapping, config.rewards)
        found = explain_opportunity(reader, config.rewards, opportunity_id, system_clock().date())
    except OpportunityNotFound as exc:
        fail(str(exc))
    except SfconnectorError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(_opportunity_json(found), indent=2, default=str))
        return
    amount = f"{found.amount:,.2f}" if found.amount is not None else "no amount"
    click.echo(f"Opportunity {found.opportunity_id}: {found.stage}, {amount}")
    if found.referral is not None:
        click.echo(
            f"Referral {found.referral.key}: status {found.referral.status}, channel {found.referral.channel or '-'}"
        )
    if found.advocate is not None:
        a = found.advocate
        click.echo(
            f"Advocate: {a.name} ({a.id}), program {a.program or '-'}, prefers {a.preferred_reward or '-'},"
            f" {found.successful_referrals} other successful referral(s)"
        )
    if found.advocate_totals is not None:
        t = found.advocate_totals
        click.echo(
            f"Advocate totals: {t.total_referrals} referral(s) ({t.rejected_referrals} rejected or duplicate"
            f" apart), {t.successful_referrals} successful; owed {t.owed:,.2f} (Approved, not yet paid:"
            f" Reward_Balance__c), awaiting approval {t.awaiting_approval:,.2f}, paid {t.paid:,.2f}"
        )
    if found.note:
        click.echo(f"Note: {found.note}")
    if found.outcomes:
        click.echo("Reward rules, in order:")
    for outcome in found.outcomes:
        d = outcome.decision
        verdict = (
            f" -> {d.amount:,.2f} {d.type}, {d.status}, payable on {d.payable_on}" if d is not None else ""
        )
        click.echo(f"  {'match' if outcome.matched else 'no   '}  {outcome.rule}: {outcome.reason}{verdict}")
    if found.rewards:
        click.echo("Rewards in Salesforce:")
    for r in found.rewards:
        click.echo(f"  {r.key}: {r.amount:,.2f} {r.type or '-'}, {r.status}, rule {r.rule or '-'}")


def _opportunity_json(found: Any) -> dict[str, Any]:
    return {
        "opportunity_id": found.opportunity_id,
        "stage": found.stage,
        "amount": found.amount,
        "is_won": found.is_won,
        "referral": found.referral.key if found.referral else None,
        "advocate_id": found.advocate.id if found.advocate else None,
        "successful_referrals": found.successful_referrals,
        "advocate_totals": None
        if found.advocate_totals is None
        else {
            "referrals": found.advocate_totals.total_referrals,
            "successful": found.advocate_totals.successful_referrals,
            "rejected": found.advocate_totals.rejected_referrals,
            "owed": found.advocate_totals.owed,
            "awaiting_approval": found.advocate_totals.awaiting_approval,
            "paid": found.advocate_totals.paid,
        },
        "note": found.note,
        "rules": [
            {
                "rule": o.rule,
                "matched": o.matched,
                "reason": o.reason,
                "reward": None
                if o.decision is None
                else {
                    "key": o.decision.external_key,
                    "amount": o.decision.amount,
                    "type": o.decision.type,
                    "status": o.decision.status,
                    "payable_on": o.decision.payable_on,
                },
            }
            for o in found.outcomes
        ],
        "rewards": [
            {"key": r.key, "amount": r.amount, "type": r.type, "status": r.status, "rule": r.rule}
            for r in found.rewards
        ],
    }


def _print_outcome(o: Any) -> None:
    c = o.candidate
    click.echo(f"Referral {c.referral_key}: code {c.raw_code!r} -> {c.code!r}, channel {c.channel or '-'}")
    if o.advocate is None:
        click.echo("Advocate: none has this code")
    else:
        a = o.advocate
        state = {True: "active", False: "INACTIVE", None: "unknown"}[a.owner_active]
        click.echo(
            f"Advocate: {a.facts.name} ({a.facts.advocate_id}), {'active' if a.facts.active else 'INACTIVE'};"
            f" owner {a.owner_name or a.facts.owner_id} ({state})"
        )
    if o.routing.trace:
        click.echo("Rules, in order:")
        for step in o.routing.trace:
            click.echo(f"  {'match' if step.matched else 'no   '}  {step.rule}: {step.why}")
    click.echo(
        f"Decision: {o.routing.action} -> {o.routed_owner_id or 'owner unchanged'} [rule {o.routing.rule}]"
    )
    click.echo(f"Why: {o.routing.reason}")
    click.echo(
        f"Attribution: {o.attribution.kind} ({'credited' if o.attribution.credited else 'not credited'}): {o.attribution.reason}"
    )
    click.echo("Writes it would make (none made):")
    for e in o.outbox:
        condition = f" only while {dict(e.expect)}" if e.expect else ""
        target = e.record_id or e.fields.get(e.external_id_field or "", "")
        click.echo(
            f"  {e.op:<11} {e.sobject or 'emailSimple'} {target}{condition}: {json.dumps(dict(e.fields), default=str)}"
        )


def _as_json(processed: Any) -> dict[str, Any]:
    return {
        "dead_letters": [d.reason for d in processed.decided.dead_letters],
        "decisions": [
            {
                "referral": o.candidate.referral_key,
                "lead_id": o.candidate.lead_id,
                "code": o.candidate.code,
                "advocate_id": o.advocate.facts.advocate_id if o.advocate else None,
                "action": o.routing.action,
                "rule": o.routing.rule,
                "reason": o.routing.reason,
                "routed_owner_id": o.routed_owner_id,
                "trace": [{"rule": s.rule, "matched": s.matched, "why": s.why} for s in o.routing.trace],
                "attribution": {
                    "kind": o.attribution.kind,
                    "credited": o.attribution.credited,
                    "reason": o.attribution.reason,
                },
                "writes": [
                    {
                        "key": e.key,
                        "op": e.op,
                        "sobject": e.sobject,
                        "record_id": e.record_id,
                        "fields": dict(e.fields),
                        "expect": dict(e.expect) if e.expect else None,
                    }
                    for e in o.outbox
                ],
            }
            for o in processed.outcomes
        ],
    }
