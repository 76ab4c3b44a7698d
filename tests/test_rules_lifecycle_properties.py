"""Property tests of the referral lifecycle under replays and the two change-event channels racing.

Lead changes (conversion, disqualification) and opportunity changes (won, lost, reopened) arrive on two
channels with their own replay ids, so the connector may see an opportunity win before the conversion that
created the opportunity. Within a channel, order holds, but a crash and restart re-delivers a stretch already
processed (contiguous segments, each restart at or before the point reached). For every realistic history
(a lead is either disqualified, or converted and then its opportunity won, lost and reopened in any sequence),
every such delivery must end in the same Referral__c status and links as processing the history once.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from sfconnector.rules.lifecycle import (
    REFERRAL_STATUSES,
    WON,
    ReferralEvent,
    ReferralState,
    next_referral_status,
)

OPP = "006000000000001AAA"
CONTACT = "003000000000001AAA"
CONVERTED = ReferralEvent("lead_converted", contact_id=CONTACT, opportunity_id=OPP)
DISQUALIFIED = ReferralEvent("lead_disqualified")
OPPORTUNITY_EVENTS = [
    ReferralEvent(kind, opportunity_id=OPP)
    for kind in ("opportunity_won", "opportunity_lost", "opportunity_reopened")
]


def run(events: Sequence[ReferralEvent]) -> ReferralState:
    state = ReferralState("Lead")
    for event in events:
        decision = next_referral_status(state, event)
        if decision is None:
            continue
        assert decision.status in REFERRAL_STATUSES
        assert decision.clawback is (state.status == WON and decision.status != WON)
        state = ReferralState(decision.status, decision.contact_id, decision.opportunity_id)
        # applying the same event again is silent
        assert next_referral_status(state, event) is None
    return state


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ReferralEvent], list[ReferralEvent]]:
    """(lead channel events, opportunity channel events), each in true order."""
    if draw(st.booleans()):
        return [DISQUALIFIED], []
    return [CONVERTED], draw(st.lists(st.sampled_from(OPPORTUNITY_EVENTS), max_size=6))


@st.composite
def replayed(draw: st.DrawFn, history: list[ReferralEvent]) -> list[ReferralEvent]:
    delivered: list[ReferralEvent] = []
    position = 0
    while position < len(history):
        reached = draw(st.integers(position + 1, len(history)))
        delivered.extend(history[position:reached])
        position = reached if draw(st.booleans()) else draw(st.integers(0, reached))
        if len(delivered) > 4 * len(history) + 8:
            delivered.extend(history[position:])
            break
    return delivered


@st.composite
def interleave(
    draw: st.DrawFn, first: list[ReferralEvent], second: list[ReferralEvent]
) -> list[ReferralEvent]:
    merged: list[ReferralEvent] = []
    a, b = list(first), list(second)
    while a or b:
        take_a = bool(a) and (not b or draw(st.booleans()))
        merged.append((a if take_a else b).pop(0))
    return merged


@given(st.data(), histories())
def test_replays_and_channel_races_end_in_the_canonical_state(
    data: st.DataObject, history: tuple[list[ReferralEvent], list[ReferralEvent]]
) -> None:
    lead_events, opportunity_events = history
    canonical = run(lead_events + opportunity_events)
    delivered = data.draw(
        interleave(data.draw(replayed(lead_events)), data.draw(replayed(opportunity_events)))
    )
    assert run(delivered) == canonical


@given(st.lists(st.sampled_from([CONVERTED, DISQUALIFIED, *OPPORTUNITY_EVENTS]), max_size=12))
def test_final_statuses_never_move(events: list[ReferralEvent]) -> None:
    for final in ("Rejected", "Duplicate"):
        for event in events:
            assert next_referral_status(ReferralState(final, CONTACT, OPP), event) is None
