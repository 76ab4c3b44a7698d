"""Referral lifecycle: status transitions from lead and opportunity changes, replays and late events."""

from __future__ import annotations

import pytest

from sfconnector.rules.lifecycle import EventKind, ReferralEvent, ReferralState, next_referral_status

OPP = "006000000000001AAA"
CONTACT = "003000000000001AAA"


def event(kind: EventKind) -> ReferralEvent:
    if kind == "lead_converted":
        return ReferralEvent(kind, contact_id=CONTACT, opportunity_id=OPP)
    if kind.startswith("opportunity_"):
        return ReferralEvent(kind, opportunity_id=OPP)
    return ReferralEvent(kind)


def linked(status: str) -> ReferralState:
    return ReferralState(status, CONTACT, OPP)


@pytest.mark.parametrize(
    ("status", "kind", "expected", "clawback"),
    [
        ("Lead", "lead_converted", "Converted", False),
        ("Lead", "lead_disqualified", "Rejected", False),
        ("Lead", "opportunity_won", "Won", False),  # the conversion event was missed
        ("Lead", "opportunity_lost", "Lost", False),
        ("Converted", "opportunity_won", "Won", False),
        ("Converted", "opportunity_lost", "Lost", False),
        ("Won", "opportunity_lost", "Lost", True),
        ("Won", "opportunity_reopened", "Converted", True),
        ("Lost", "opportunity_won", "Won", False),
        ("Lost", "opportunity_reopened", "Converted", False),
    ],
)
def test_transitions(status: str, kind: EventKind, expected: str, clawback: bool) -> None:
    current = ReferralState(status) if status == "Lead" else linked(status)
    decision = next_referral_status(current, event(kind))
    assert decision is not None
    assert (decision.status, decision.previous_status, decision.clawback) == (expected, status, clawback)
    assert decision.status_changed
    assert (decision.contact_id, decision.opportunity_id) == (
        CONTACT if kind == "lead_converted" or status != "Lead" else None,
        None if kind == "lead_disqualified" else OPP,
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("Converted", "lead_converted"),  # replay
        ("Won", "lead_converted"),  # late conversion does not move Won back
        ("Lost", "lead_converted"),
        ("Won", "opportunity_won"),  # replay
        ("Lost", "opportunity_lost"),
        ("Converted", "opportunity_reopened"),
        ("Converted", "lead_disqualified"),  # a converted lead cannot be disqualified any more
        ("Won", "lead_disqualified"),
        ("Rejected", "lead_converted"),
        ("Rejected", "opportunity_won"),
        ("Duplicate", "opportunity_won"),
        ("Duplicate", "lead_converted"),
    ],
)
def test_replayed_and_stale_events_decide_nothing(status: str, kind: EventKind) -> None:
    assert next_referral_status(linked(status), event(kind)) is None


def test_late_conversion_fills_missing_links_without_moving_status() -> None:
    decision = next_referral_status(ReferralState("Won", None, OPP), event("lead_converted"))
    assert decision is not None
    assert (decision.status, decision.contact_id, decision.opportunity_id) == ("Won", CONTACT, OPP)
    assert not decision.status_changed
    assert "does not move a Won referral back" in decision.reason


def test_conversion_without_opportunity_links_the_contact_only() -> None:
    decision = next_referral_status(
        ReferralState("Lead"), ReferralEvent("lead_converted", contact_id=CONTACT)
    )
    assert decision is not None
    assert (decision.status, decision.contact_id, decision.opportunity_id) == ("Converted", CONTACT, None)


def test_event_about_another_opportunity_is_ignored() -> None:
    other = ReferralEvent("opportunity_lost", opportunity_id="006000000000002AAA")
    assert next_referral_status(linked("Won"), other) is None


def test_reason_names_the_change() -> None:
    decision = next_referral_status(linked("Won"), event("opportunity_reopened"))
    assert decision is not None
    assert decision.reason == "opportunity reopened: Won -> Converted"
