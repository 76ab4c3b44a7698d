"""Referral lifecycle: which Referral__c status a lead or opportunity change leads to.

    Lead ──converted──► Converted ──won──► Won ──lost──► Lost
      │                     │               │  ◄──won──   │
      │                     └──lost──► Lost └──reopened──► Converted ◄──reopened── Lost
      └──disqualified──► Rejected

Out-of-order and replayed events (a crash replays from the last checkpoint; reconciliation reads current state):

- a status never goes *back* on an event that belongs to an earlier stage: a late conversion event leaves a
  Won or Lost referral as it is (it only fills a Contact/Opportunity link still empty);
- a Won or Lost referral moves only on an opportunity event that really changes the outcome: won <-> lost, or
  reopened (back to Converted); leaving Won is flagged `clawback` for the reward rules;
- an opportunity event can skip a missed step: a referral still at Lead moves straight to Won or Lost;
- Rejected and Duplicate are final: attribution rejected them (self-referral, duplicate) or the lead was
  disqualified, and no later lead or opportunity event turns them into a credited referral.

Re-delivering an event that was already applied decides nothing (None), so replays are silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LEAD = "Lead"
CONVERTED = "Converted"
WON = "Won"
LOST = "Lost"
REJECTED = "Rejected"
DUPLICATE = "Duplicate"
REFERRAL_STATUSES: tuple[str, ...] = (LEAD, CONVERTED, WON, LOST, REJECTED, DUPLICATE)
FINAL_STATUSES = frozenset({REJECTED, DUPLICATE})

EventKind = Literal[
    "lead_converted", "lead_disqualified", "opportunity_won", "opportunity_lost", "opportunity_reopened"
]


@dataclass(frozen=True)
class ReferralState:
    """The Referral__c as stored: its status and the records it is linked to."""

    status: str
    contact_id: str | None = None
    opportunity_id: str | None = None


@dataclass(frozen=True)
class ReferralEvent:
    """A lead or opportunity change, reduced to what the lifecycle needs.

    `lead_converted` carries the ConvertedContactId and ConvertedOpportunityId (the latter may be empty);
    opportunity events carry the opportunity id.
    """

    kind: EventKind
    contact_id: str | None = None
    opportunity_id: str | None = None


@dataclass(frozen=True)
class StatusDecision:
    """The Referral__c fields to write. `clawback` is set when a Won referral leaves Won."""

    status: str
    previous_status: str
    contact_id: str | None
    opportunity_id: str | None
    reason: str
    clawback: bool = False

    @property
    def status_changed(self) -> bool:
        return self.status != self.previous_status


_TARGET: dict[EventKind, str] = {
    "lead_converted": CONVERTED,
    "lead_disqualified": REJECTED,
    "opportunity_won": WON,
    "opportunity_lost": LOST,
    "opportunity_reopened": CONVERTED,
}

# (current status, event) -> new status; pairs absent here keep the status (only links may be filled).
_TRANSITIONS: dict[tuple[str, EventKind], str] = {
    (LEAD, "lead_converted"): CONVERTED,
    (LEAD, "lead_disqualified"): REJECTED,
    (LEAD, "opportunity_won"): WON,
    (LEAD, "opportunity_lost"): LOST,
    (LEAD, "opportunity_reopened"): CONVERTED,
    (CONVERTED, "opportunity_won"): WON,
    (CONVERTED, "opportunity_lost"): LOST,
    (WON, "opportunity_lost"): LOST,
    (WON, "opportunity_reopened"): CONVERTED,
    (LOST, "opportunity_won"): WON,
    (LOST, "opportunity_reopened"): CONVERTED,
}

_WHY: dict[EventKind, str] = {
    "lead_converted": "lead converted",
    "lead_disqualified": "lead disqualified",
    "opportunity_won": "opportunity won",
    "opportunity_lost": "opportunity lost",
    "opportunity_reopened": "opportunity reopened",
}


def next_referral_status(current: ReferralState, event: ReferralEvent) -> StatusDecision | None:
    """The Referral__c update an event calls for, or None when it changes nothing (a replay, a stale event)."""
    if current.status in FINAL_STATUSES:
        return None
    linked = current.opportunity_id
    if (
        event.kind.startswith("opportunity_")
        and linked
        and event.opportunity_id
        and linked != event.opportunity_id
    ):
        return None  # an event about another opportunity than the one this referral follows
    contact_id = current.contact_id or event.contact_id
    opportunity_id = linked or event.opportunity_id
    status = _TRANSITIONS.get((current.status, event.kind), current.status)
    if status == current.status and (contact_id, opportunity_id) == (
        current.contact_id,
        current.opportunity_id,
    ):
        return None
    why = _WHY[event.kind]
    if status == current.status:
        reason = f"{why}: links filled, status stays {status}"
        if _TARGET[event.kind] != status:
            reason += f" (a {why} event does not move a {status} referral back)"
    else:
        reason = f"{why}: {current.status} -> {status}"
    return StatusDecision(
        status=status,
        previous_status=current.status,
        contact_id=contact_id,
        opportunity_id=opportunity_id,
        reason=reason,
        clawback=current.status == WON and status != WON,
    )
