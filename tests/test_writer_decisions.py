"""The writer's pure decisions: conditional updates, id equality, entries that can never be written."""

from __future__ import annotations

import pytest

from sfconnector.state import OutboxEntry
from sfconnector.writer import DrainReport, _conditional_decision, _invalid, _same

LEAD_18 = "00Q5g0000000001EAA"
STD_OWNER = "0055g0000000001EAA"
ROUTED = "0055g0000000002EAA"


def update(expect: dict[str, str] | None = None, **fields: str) -> OutboxEntry:
    return OutboxEntry(
        key=f"lead-owner:{LEAD_18}",
        op="update",
        sobject="Lead",
        fields=fields or {"OwnerId": ROUTED},
        record_id=LEAD_18,
        expect=expect if expect is not None else {"OwnerId": STD_OWNER},
    )


@pytest.mark.parametrize(
    ("current_owner", "decision"),
    [
        (STD_OWNER, "write"),  # nobody touched it: route it
        (STD_OWNER[:15], "write"),  # the same id in its 15-character form
        (ROUTED, "already"),  # our write landed before a crash: done
        ("0055g0000000009EAA", "changed"),  # a person took it: leave it with them
    ],
)
def test_conditional_owner_update(current_owner: str, decision: str) -> None:
    """Write while the record is as decided, done if it already holds the target, skip if someone moved it."""
    rows = {LEAD_18[:15]: {"Id": LEAD_18, "OwnerId": current_owner}}
    assert _conditional_decision(update(), rows).startswith(decision)


def test_conditional_update_of_a_missing_record() -> None:
    """A record the pre-check did not return (deleted) is reported as missing."""
    assert _conditional_decision(update(), {}) == "missing"


def test_skip_reason_names_the_changed_field() -> None:
    """The skip reason says which field changed, from what to what."""
    rows = {LEAD_18[:15]: {"Id": LEAD_18, "OwnerId": "0055g0000000009EAA"}}
    reason = _conditional_decision(update(), rows)
    assert "OwnerId" in reason and "0055g0000000009EAA" in reason and STD_OWNER in reason


def test_id_equality_ignores_the_case_safe_suffix_only() -> None:
    """15/18-character forms match; different records and different case do not."""
    assert _same("0055g0000000001", "0055g0000000001EAA")
    assert not _same("0055g0000000001EAA", "0055G0000000001EAA")
    assert not _same("0055g0000000001EAA", "0055g0000000002EAA")
    assert _same("Open", "Open") and not _same("Open", "open") and _same(None, None)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (OutboxEntry("k", "update", "Lead", {"OwnerId": ROUTED}, record_id="not-an-id"), "record id"),
        (OutboxEntry("k", "update", "Lead; DROP", {}, record_id=LEAD_18), "object name"),
        (OutboxEntry("k", "update", "Lead", {}, record_id=LEAD_18, expect={"Owner Id": "x"}), "field name"),
        (
            OutboxEntry(
                "k", "upsert", "Referral__c", {"Status__c": "Lead"}, external_id_field="External_Key__c"
            ),
            "value",
        ),
        (OutboxEntry("k", "create_once", "Task", {}, external_id_field="Key'--"), "external id field"),
    ],
)
def test_entries_that_can_never_be_written_are_recognised(entry: OutboxEntry, problem: str) -> None:
    """Malformed entries are dead-lettered instead of being sent (or pasted into SOQL)."""
    reason = _invalid(entry)
    assert reason is not None and problem in reason


def test_well_formed_entries_pass() -> None:
    """Valid update, upsert, create_once and email entries have no problem."""
    assert _invalid(update()) is None
    assert _invalid(OutboxEntry("k", "create_once", "Task", {"Subject": "Call"})) is None
    assert _invalid(OutboxEntry("k", "email", "", {"emailAddresses": "a@b.c"})) is None
    assert (
        _invalid(
            OutboxEntry(
                "k",
                "upsert",
                "Referral__c",
                {"External_Key__c": "lead:1"},
                external_id_field="External_Key__c",
            )
        )
        is None
    )


def test_drain_report_idle() -> None:
    """A report with nothing done and no pause is idle; anything else is not."""
    assert DrainReport().idle
    assert not DrainReport(done=1).idle
    assert not DrainReport(skipped=1).idle
