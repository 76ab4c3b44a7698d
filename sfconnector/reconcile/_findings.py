"""What a reconciliation sweep can find, and the pure comparisons that find it.

Rows come from SOQL (plain dicts, relationship fields nested as Salesforce returns them); nothing here does
I/O. The sweep (`_sweep.py`) reads, calls these, and turns what they find into outbox entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sfconnector.mapping.model import SchemaMapping
from sfconnector.rules.lifecycle import (
    FINAL_STATUSES,
    WON,
    ReferralEvent,
    ReferralState,
    StatusDecision,
    next_referral_status,
)

FindingKind = Literal["missing_referral", "wrong_owner", "status_lag", "reward_missing"]
# queued: a new outbox entry; already_queued: the same key is in the outbox (drained or not); would_queue: dry
# run; reported: found but deliberately not repaired (the detail says why).
Repair = Literal["queued", "already_queued", "would_queue", "reported"]
KINDS: tuple[FindingKind, ...] = ("missing_referral", "wrong_owner", "status_lag", "reward_missing")
KIND_LABELS: Mapping[FindingKind, str] = {
    "missing_referral": "referral leads without a Referral__c",
    "wrong_owner": "referral leads not owned by their routed owner",
    "status_lag": "referrals whose status lags their lead or opportunity",
    "reward_missing": "won referrals without a reward",
}
QUEUE_PREFIX = "00G"  # Group (queue) ids: an owner no person chose


@dataclass(frozen=True)
class Finding:
    """One thing out of place in the org, and what the sweep did about it."""

    kind: FindingKind
    record_id: str  # the lead (missing, wrong owner), the referral (status lag) or the opportunity (reward)
    detail: str
    repair: Repair


def relationship(field: str) -> str:
    """`Lead__c` -> `Lead__r`, `OwnerId` -> `Owner`: the name SOQL uses to reach the parent."""
    if field.endswith("__c"):
        return field[:-3] + "__r"
    return field[:-2] if field.endswith("Id") else field


def id15(value: Any) -> str:
    return str(value or "")[:15]


def parent(row: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """The nested parent record of a lookup (empty when the lookup is empty)."""
    value = row.get(relationship(field))
    return value if isinstance(value, Mapping) else {}


def parse_datetime(value: Any) -> datetime:
    """Salesforce's `2026-11-23T04:54:46.331+0000` (or ISO with Z) as an aware datetime."""
    text = str(value or "").replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def referred_leads(referrals: Iterable[Mapping[str, Any]], mapping: SchemaMapping) -> set[str]:
    """15-character ids of the leads that have a Referral__c (by its lookup or its `lead:<Id>` key)."""
    ref = mapping.referral
    found: set[str] = set()
    for row in referrals:
        if row.get(ref.lead):
            found.add(id15(row[ref.lead]))
        key = str(row.get(ref.external_key) or "")
        if key.startswith("lead:") and not key.startswith("lead:event:"):
            found.add(id15(key.removeprefix("lead:")))
    return found


@dataclass(frozen=True)
class OwnerMismatch:
    """A referral lead whose owner is not the one its Referral__c says it was routed to."""

    lead_id: str
    referral_id: str
    routed_owner_id: str
    current_owner_id: str


def owner_mismatch(row: Mapping[str, Any], mapping: SchemaMapping) -> OwnerMismatch | None:
    """The mismatch on one Referral__c row (with `Lead__r.OwnerId`, `Lead__r.IsConverted`), if any.

    Only referrals routed to a user say who the lead should have (`Routed_Owner__c`); converted leads cannot
    be updated, and rejected or duplicate referrals were never routed.
    """
    ref, lead = mapping.referral, mapping.lead
    routed = row.get(ref.routed_owner)
    lead_row = parent(row, ref.lead)
    if not routed or not lead_row or row.get(ref.status) in FINAL_STATUSES:
        return None
    if lead_row.get(lead.is_converted):
        return None
    current = lead_row.get(lead.owner)
    if not current or id15(current) == id15(routed):
        return None
    return OwnerMismatch(str(row[ref.lead]), str(row["Id"]), str(routed), str(current))


def expected_status(
    row: Mapping[str, Any], mapping: SchemaMapping, opportunities: Mapping[str, Mapping[str, Any]]
) -> StatusDecision | None:
    """The status (and links) a Referral__c row should have given its lead and opportunity, or None if right.

    `row` carries `Lead__r.{IsConverted, Status, ConvertedContactId, ConvertedOpportunityId}` and
    `Opportunity__r.{IsWon, IsClosed}`; `opportunities` (15-character id -> `IsWon`, `IsClosed`) covers the
    lead's converted opportunity when the referral has no opportunity link yet (SOQL reaches one level of
    parents only). The same pure lifecycle rules as the daemon decide, fed the current facts as events in
    the order they happen.
    """
    ref, lead = mapping.referral, mapping.lead
    state = ReferralState(
        status=str(row.get(ref.status) or "Lead"),
        contact_id=row.get(ref.contact) or None,
        opportunity_id=row.get(ref.opportunity) or None,
    )
    if state.status in FINAL_STATUSES:
        return None
    start = state
    lead_row = parent(row, ref.lead)
    events: list[ReferralEvent] = []
    if lead_row.get(lead.is_converted):
        events.append(
            ReferralEvent(
                "lead_converted",
                contact_id=lead_row.get(lead.converted_contact) or None,
                opportunity_id=lead_row.get(lead.converted_opportunity) or None,
            )
        )
    elif str(lead_row.get(lead.status) or "").lower() == "closed - not converted":
        events.append(ReferralEvent("lead_disqualified"))
    opp_id = row.get(ref.opportunity) or lead_row.get(lead.converted_opportunity)
    opp = parent(row, ref.opportunity) or opportunities.get(id15(opp_id), {})
    if opp and opp_id:
        if opp.get("IsWon"):
            events.append(ReferralEvent("opportunity_won", opportunity_id=str(opp_id)))
        elif opp.get("IsClosed"):
            events.append(ReferralEvent("opportunity_lost", opportunity_id=str(opp_id)))
        elif state.status in (WON, "Lost"):
            events.append(ReferralEvent("opportunity_reopened", opportunity_id=str(opp_id)))
    last: StatusDecision | None = None
    for event in events:
        decision = next_referral_status(state, event)
        if decision is not None:
            last = decision
            state = ReferralState(decision.status, decision.contact_id, decision.opportunity_id)
    if last is None or state == start:
        return None
    return StatusDecision(
        status=state.status,
        previous_status=start.status,
        contact_id=state.contact_id,
        opportunity_id=state.opportunity_id,
        reason=last.reason if start.status == last.previous_status else f"{start.status} -> {state.status}",
        clawback=start.status == WON and state.status != WON,
    )
