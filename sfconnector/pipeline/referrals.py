"""One referral's decision and the Salesforce writes it implies. Pure: candidate + lookups + rules in.

What a routed referral writes (each an outbox entry with a deterministic key, so replays add nothing):
- the lead: OwnerId (only while it still has the standard owner) and Advocate__c;
- a Referral__c upserted by External_Key__c `lead:<LeadId>`;
- a Task for the new owner ("call the advocate first"), created once;
- the advocate's "we received your referral" email, at most once.
A referral from a platform event first upserts its lead by `lead:event:<EventUuid>`; the other writes wait
for that lead's id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.candidates import ReferralCandidate
from sfconnector.pipeline.lookups import AdvocateRecord, BatchLookups
from sfconnector.pipeline.writes import email_entry, rep_task_entry
from sfconnector.rules.attribution import decide_attribution
from sfconnector.rules.model import (
    AttributionDecision,
    AttributionPolicy,
    LeadFacts,
    RoutingDecision,
    RoutingRules,
    shorten,
)
from sfconnector.rules.notifications import (
    AdvocateContact,
    Notification,
    NotificationSkipped,
    NotificationTemplates,
    ReferralView,
    StatusChange,
    decide_notification,
    decide_rep_task,
)
from sfconnector.rules.routing import MISSING_TARGET_RULE, decide_routing
from sfconnector.soql import is_record_id
from sfconnector.state import OutboxEntry, RoutingLogRow

ATTRIBUTION_PICKLIST = frozenset({"New Lead", "Reactivated Lead", "Existing Opportunity"})
REASON_MAX = 255  # Referral__c.Routing_Reason__c is Text(255)


@dataclass(frozen=True)
class DecisionRules:
    """The compiled parts of the config a referral decision reads."""

    mapping: SchemaMapping
    routing: RoutingRules
    attribution: AttributionPolicy
    notifications: NotificationTemplates


@dataclass(frozen=True)
class ReferralOutcome:
    """The decision for one referral, why, and the writes it implies."""

    candidate: ReferralCandidate
    advocate: AdvocateRecord | None
    routing: RoutingDecision
    attribution: AttributionDecision
    routed_owner_id: str | None  # the user or queue id the lead goes to; None: owner unchanged
    outbox: tuple[OutboxEntry, ...]
    log: RoutingLogRow
    notification: Notification | NotificationSkipped | None = None


def _lead_facts(c: ReferralCandidate, fields: dict[str, Any], rules: DecisionRules) -> LeadFacts:
    lead = rules.mapping.lead
    return LeadFacts(
        lead_id=c.lead_id or c.referral_key,
        fields=fields,
        channel=c.channel,
        referral_code=c.code or None,
        email=c.email,
        standard_owner_id=c.standard_owner_id,
        current_owner_id=c.current_owner_id or fields.get(lead.owner),
        manually_reassigned=c.manually_reassigned,
    )


def _resolve(decision: RoutingDecision, lookups: BatchLookups) -> tuple[RoutingDecision, str | None]:
    """The owner id a decision names; an unknown queue or user falls back to the standard owner."""
    if decision.action == "owner_of_advocate":
        return decision, decision.owner_id
    if decision.action == "queue" and decision.queue:
        queue_id = lookups.queues.get(decision.queue.lower())
        if queue_id:
            return decision, queue_id
        missing = f"queue {decision.queue!r} does not exist in the org"
    elif decision.action == "user" and decision.user:
        if is_record_id(decision.user):
            return decision, decision.user
        user_id = lookups.users.get(decision.user.lower())
        if user_id:
            return decision, user_id
        missing = f"user {decision.user!r} does not exist in the org"
    else:
        return decision, None
    # Recorded under its own rule name, so reports count what was written (no override), not what the
    # matching rule asked for; the reason still names that rule.
    return (
        replace(
            decision,
            action="keep_standard",
            rule=MISSING_TARGET_RULE,
            reason=f"{decision.reason}; but {missing}: standard owner kept",
        ),
        None,
    )


def _full_reason(routing: RoutingDecision, attribution: AttributionDecision) -> str:
    """Why this owner, then how the referral counts (unless routing said it already): the routing log's text."""
    if attribution.reason in routing.reason:
        return routing.reason
    return f"{routing.reason} | {attribution.reason}"


def _reason(routing: RoutingDecision, attribution: AttributionDecision) -> str:
    """Routing_Reason__c (Text 255): the full reason, shortened at a word boundary."""
    return shorten(_full_reason(routing, attribution), REASON_MAX)


def _full_name(fields: dict[str, Any], rules: DecisionRules) -> str:
    lead = rules.mapping.lead
    return " ".join(str(fields.get(f) or "") for f in (lead.first_name, lead.last_name)).strip()


def decide_referral(
    c: ReferralCandidate, lookups: BatchLookups, rules: DecisionRules, now: datetime
) -> ReferralOutcome:
    """Routing, attribution and the writes for one referral candidate.

    Attribution windows are measured in the org's time, from when the referral was created (so a replay or
    a sweep next month decides as the stream did); `now`, the local clock, only stamps the decision.
    """
    mapping = rules.mapping
    fields = dict(c.fields)
    if c.needs_lead_fetch and c.lead_id and c.lead_id in lookups.leads:
        fields.update(lookups.leads[c.lead_id])
        c = replace(c, standard_owner_id=fields.get(mapping.lead.owner), email=fields.get(mapping.lead.email))
    advocate = lookups.advocates.get(c.code) if c.code else None
    facts = _lead_facts(c, fields, rules)
    email = (c.email or "").lower()
    attribution = decide_attribution(
        facts,
        advocate.facts if advocate else None,
        rules.attribution,
        now=c.created_at,
        existing_leads=lookups.existing_leads.get(email, ()),
        existing_contacts=lookups.existing_contacts.get(email, ()),
        prior_referrals=tuple(
            p
            for p in lookups.prior_referrals.get(email, ())
            if c.lead_id is None or p.referral_id != c.lead_id
        ),
    )
    # Routing follows attribution: a duplicate goes where the referral of the advocate who keeps it went.
    router = advocate
    credited_elsewhere = attribution.credited_advocate_id
    if credited_elsewhere and rules.attribution.duplicates.route_to == "credited_advocate":
        same_batch = (
            a for a in lookups.advocates.values() if a.facts.advocate_id[:15] == credited_elsewhere[:15]
        )
        router = lookups.advocates_by_id.get(credited_elsewhere[:15]) or next(same_batch, advocate)
    routing = decide_routing(
        facts,
        router.facts if router else None,
        router.owner_active if router else None,
        rules.routing,
    )
    if router is not advocate and router is not None:
        routing = replace(
            routing,
            reason=f"{routing.reason}; as the referral of {router.facts.name or router.facts.advocate_id}, "
            "who keeps the credit",
        )
    if attribution.kind == "Rejected" and routing.changes_owner and advocate is not None:
        routing = RoutingDecision(
            "keep_standard",
            "attribution:rejected",
            f"referral rejected: {attribution.reason}",
            trace=routing.trace,
        )
    routing, owner_id = _resolve(routing, lookups)
    outbox, notification = _writes(c, fields, advocate, routing, attribution, owner_id, lookups, rules, now)
    log = RoutingLogRow(
        lead_id=c.lead_id,
        advocate_id=advocate.facts.advocate_id if advocate else None,
        standard_owner_id=c.standard_owner_id,
        routed_owner_id=owner_id if routing.changes_owner else (c.current_owner_id or c.standard_owner_id),
        rule=routing.rule,
        reason=_full_reason(routing, attribution),
        decided_at=now,
    )
    return ReferralOutcome(c, advocate, routing, attribution, owner_id, outbox, log, notification)


def _person(
    c: ReferralCandidate,
    routing: RoutingDecision,
    owner_id: str | None,
    advocate: AdvocateRecord,
    lookups: BatchLookups,
) -> tuple[str | None, str | None]:
    """The person who will work the lead (user id for the rep task, name for the advocate's email): the
    routed user, or whoever the lead stays with (its standard owner, or the person who took it over).
    (None, None) when a queue has it, the user is inactive, or the org's assignment rules have yet to choose.
    """
    person = owner_id if owner_id and routing.changes_owner else (c.current_owner_id or c.standard_owner_id)
    if not person or not person.startswith("005") or person[:15] in lookups.inactive_users:
        return None, None
    if advocate.facts.owner_id and person[:15] == advocate.facts.owner_id[:15]:
        if advocate.owner_active is False:
            return None, None
        return person, advocate.owner_name or lookups.user_names.get(person[:15])
    return person, lookups.user_names.get(person[:15])


def _writes(
    c: ReferralCandidate,
    fields: dict[str, Any],
    advocate: AdvocateRecord | None,
    routing: RoutingDecision,
    attribution: AttributionDecision,
    owner_id: str | None,
    lookups: BatchLookups,
    rules: DecisionRules,
    now: datetime,
) -> tuple[tuple[OutboxEntry, ...], Notification | NotificationSkipped | None]:
    m = rules.mapping
    credited = advocate is not None and attribution.credited
    entries: list[OutboxEntry] = []
    lead_ref = c.lead_id
    depends: str | None = None
    if c.lead_id is None:  # a submitted referral: create its lead, already routed
        lead_key = f"lead:{c.referral_key}"
        lead_fields: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        lead_fields["External_Key__c"] = c.referral_key
        if owner_id and routing.changes_owner:
            lead_fields[m.lead.owner] = owner_id
        if credited and advocate:
            lead_fields[m.lead.advocate] = advocate.facts.advocate_id
        routed = bool(owner_id and routing.changes_owner)
        entries.append(
            OutboxEntry(
                key=lead_key,
                # Routed: upserted with its owner. Otherwise created once with the org's assignment rules
                # applied, so it lands where they put any other lead, not with the integration user.
                op="upsert" if routed else "create_assigned",
                sobject=m.lead.object,
                fields=lead_fields,
                external_id_field="External_Key__c",
            )
        )
        lead_ref, depends = "@{" + lead_key + "}", lead_key
    else:
        update: dict[str, Any] = {}
        expect: dict[str, Any] | None = None
        if owner_id and routing.changes_owner:
            update[m.lead.owner] = owner_id
            if c.standard_owner_id:
                expect = {m.lead.owner: c.standard_owner_id}
        if credited and advocate:
            update[m.lead.advocate] = advocate.facts.advocate_id
        if update:
            entries.append(
                OutboxEntry(
                    key=f"lead-route:{c.lead_id}",
                    op="update",
                    sobject=m.lead.object,
                    record_id=c.lead_id,
                    fields=update,
                    expect=expect,
                )
            )
    ref = m.referral
    referral: dict[str, Any] = {
        ref.external_key: f"lead:{lead_ref}",
        ref.lead: lead_ref,
        ref.advocate: advocate.facts.advocate_id if advocate else None,
        ref.status: attribution.referral_status,
        ref.channel: c.channel,
        ref.attribution: attribution.kind if attribution.kind in ATTRIBUTION_PICKLIST else None,
        ref.routed_owner: owner_id if owner_id and owner_id.startswith("005") else None,
        ref.routing_rule: routing.rule[:80],
        ref.routing_reason: _reason(routing, attribution),
    }
    if attribution.contact_id:
        referral[ref.contact] = attribution.contact_id
    if attribution.opportunity_id:
        referral[ref.opportunity] = attribution.opportunity_id
    entries.append(
        OutboxEntry(
            key=f"referral:{c.referral_key}",
            op="upsert",
            sobject=ref.object,
            fields=referral,
            external_id_field=ref.external_key,
            # Creates the referral, or finds it as decided (a replay after a lost answer); never takes
            # back a status the referral has moved on to since.
            expect={ref.status: referral[ref.status]},
            depends_on=depends,
        )
    )
    notification: Notification | NotificationSkipped | None = None
    if credited and advocate is not None:
        person_id, person_name = _person(c, routing, owner_id, advocate, lookups)
        view = ReferralView(
            key=c.referral_key,
            name=_full_name(fields, rules) or None,
            company=fields.get(m.lead.company),
            channel=c.channel,
            status=attribution.referral_status,
            lead_id=lead_ref,
            owner_name=person_name,
        )
        change = StatusChange(view, attribution.referral_status)
        contact = AdvocateContact(
            id=advocate.facts.advocate_id,
            name=advocate.facts.name,
            email=advocate.facts.email,
            email_opt_out=advocate.email_opt_out,
            first_name=advocate.first_name,
            referral_code=advocate.facts.referral_code,
            program=advocate.facts.fields.get(m.advocate.program),
        )
        task = decide_rep_task(change, contact, person_id, rules.notifications)
        if task is not None:
            entries.append(
                rep_task_entry(task, now.astimezone(UTC).date(), priority="High", depends_on=depends)
            )
        notification = decide_notification(change, contact, rules.notifications)
        if isinstance(notification, Notification):
            entries.append(email_entry(notification))
    return tuple(entries), notification
