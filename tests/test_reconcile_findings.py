"""The sweep's pure comparisons: which referral status the records call for, and which owner is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from sfconnector.mapping.model import SchemaMapping
from sfconnector.reconcile._findings import expected_status, owner_mismatch, referred_leads

MAPPING = SchemaMapping()
LEAD = "00Q5g0000000001EAA"
OPP = "0065g0000000001AAA"
CONTACT = "0035g0000000001AAA"
REP = "0055g0000000002AAA"


def _referral(
    status: str, *, converted: bool = False, lead_status: str = "Open", opp: dict[str, Any] | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Id": "a0B5g0000000001EAA",
        "Status__c": status,
        "Lead__c": LEAD,
        "Contact__c": CONTACT if status != "Lead" else None,
        "Opportunity__c": OPP if opp is not None and status != "Lead" else None,
        "Lead__r": {
            "IsConverted": converted,
            "Status": lead_status,
            "ConvertedContactId": CONTACT if converted else None,
            "ConvertedOpportunityId": OPP if converted and opp is not None else None,
        },
    }
    if row["Opportunity__c"]:
        row["Opportunity__r"] = opp
    return row


WON = {"IsWon": True, "IsClosed": True}
LOST = {"IsWon": False, "IsClosed": True}
OPEN = {"IsWon": False, "IsClosed": False}


@pytest.mark.parametrize(
    ("row", "linked_opps", "expected"),
    [
        (_referral("Lead", converted=True, opp=OPEN), {OPP[:15]: OPEN}, ("Converted", False)),
        (_referral("Lead", converted=True, opp=WON), {OPP[:15]: WON}, ("Won", False)),
        (_referral("Lead", converted=True, opp=LOST), {OPP[:15]: LOST}, ("Lost", False)),
        (_referral("Converted", converted=True, opp=WON), {}, ("Won", False)),
        (_referral("Won", converted=True, opp=LOST), {}, ("Lost", True)),
        (_referral("Won", converted=True, opp=OPEN), {}, ("Converted", True)),
        (_referral("Lost", converted=True, opp=WON), {}, ("Won", False)),
        (_referral("Lead", lead_status="Closed - Not Converted"), {}, ("Rejected", False)),
    ],
)
def test_lagging_referrals_get_the_status_their_records_call_for(
    row: dict[str, Any], linked_opps: dict[str, Any], expected: tuple[str, bool]
) -> None:
    """A missed conversion, win, loss, reopening or disqualification gives the lifecycle's target status."""
    decision = expected_status(row, MAPPING, linked_opps)
    assert decision is not None
    assert (decision.status, decision.clawback) == expected
    assert decision.previous_status == row["Status__c"]


@pytest.mark.parametrize(
    "row",
    [
        _referral("Lead"),
        _referral("Converted", converted=True, opp=OPEN),
        _referral("Won", converted=True, opp=WON),
        _referral("Rejected", converted=True, opp=WON),
        _referral("Duplicate", lead_status="Closed - Not Converted"),
    ],
)
def test_referrals_in_step_with_their_records_lag_nothing(row: dict[str, Any]) -> None:
    """Right statuses, and the final ones attribution gave, are never touched."""
    assert expected_status(row, MAPPING, {OPP[:15]: WON}) is None


def _routed(owner: str | None, routed: str | None, *, converted: bool = False, status: str = "Lead") -> dict:
    return {
        "Id": "a0B5g0000000001EAA",
        "Lead__c": LEAD,
        "Status__c": status,
        "Routed_Owner__c": routed,
        "Lead__r": {"OwnerId": owner, "IsConverted": converted},
    }


def test_an_owner_other_than_the_routed_one_is_a_mismatch() -> None:
    """Owners compare by their 15-character ids; only a real difference counts."""
    mismatch = owner_mismatch(_routed("00G5g0000000001EAA", REP), MAPPING)
    assert mismatch is not None and (mismatch.current_owner_id, mismatch.routed_owner_id) == (
        "00G5g0000000001EAA",
        REP,
    )
    assert owner_mismatch(_routed(REP[:15], REP), MAPPING) is None


@pytest.mark.parametrize(
    "row",
    [
        _routed("00G5g0000000001EAA", None),  # routed to a queue or kept standard: nothing to compare
        _routed("00G5g0000000001EAA", REP, converted=True),  # converted leads cannot be updated
        _routed("00G5g0000000001EAA", REP, status="Rejected"),  # never routed
    ],
)
def test_no_owner_check_where_the_referral_names_no_owner_to_restore(row: dict[str, Any]) -> None:
    assert owner_mismatch(row, MAPPING) is None


def test_a_lead_counts_as_referred_by_its_lookup_or_its_key() -> None:
    """A referral whose lookup is still empty is matched by its `lead:<Id>` key."""
    rows = [
        {"Lead__c": LEAD, "External_Key__c": f"lead:{LEAD}"},
        {"Lead__c": None, "External_Key__c": "lead:00Q5g0000000009EAA"},
        {"Lead__c": None, "External_Key__c": "lead:event:2f1c"},
    ]
    assert referred_leads(rows, MAPPING) == {LEAD[:15], "00Q5g0000000009"}
