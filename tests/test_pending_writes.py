"""Replaying the outbox's unfinished writes over Salesforce's rows gives the versions a process that never
stopped would have remembered."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.lifecycle_reads import ReferralRow, RewardRow
from sfconnector.pipeline.pending_writes import pending_targets, replay_pending
from sfconnector.state import OutboxEntry

MAPPING = SchemaMapping()
DECIDED = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
REFERRAL_ID = "a01Q000000Zz9kLIAR"


def _upsert(key: str, **fields: object) -> OutboxEntry:
    return OutboxEntry(
        f"referral:{key}", "upsert", "Referral__c", {"External_Key__c": key, **fields},
        external_id_field="External_Key__c", created_at=DECIDED,
    )  # fmt: skip


def _status(status: str, expect: str, opportunity: str | None = None) -> OutboxEntry:
    fields: dict[str, object] = {"Status__c": status}
    if opportunity:
        fields["Opportunity__c"] = opportunity
    return OutboxEntry(
        f"referral-status:x:{status}", "update", "Referral__c", fields, record_id=REFERRAL_ID,
        expect={"Status__c": expect}, created_at=DECIDED,
    )  # fmt: skip


def test_a_conversion_waiting_in_the_outbox_links_the_referral_to_its_opportunity() -> None:
    in_salesforce = ReferralRow("lead:00QQ000000Ab1XYZ", "Lead", id=REFERRAL_ID, advocate_id="a00Q0000001")
    pending = replay_pending([_status("Converted", "Lead", "006Q000000Kk7Aa")], [in_salesforce], [], MAPPING)
    decided_at, row, versions = pending.referrals["lead:00QQ000000Ab1XYZ"]
    assert (row.status, row.opportunity_id, row.advocate_id) == (
        "Converted",
        "006Q000000Kk7Aa",
        "a00Q0000001",
    )
    assert decided_at == DECIDED and [v.status for v in versions] == ["Converted"]


def test_a_conditional_update_the_record_no_longer_expects_is_left_out_as_the_writer_skips_it() -> None:
    in_salesforce = ReferralRow("lead:00QQ000000Ab1XYZ", "Lost", id=REFERRAL_ID)
    pending = replay_pending([_status("Converted", "Lead")], [in_salesforce], [], MAPPING)
    assert pending.referrals == {}


def test_writes_apply_in_decision_order_and_an_upsert_creates_what_salesforce_lacks() -> None:
    entries = [
        _upsert(
            "lead:00QQ000000Cc2DEF", Status__c="Lead", Advocate__c="a00Q0000002", Lead__c="00QQ000000Cc2DEF"
        ),
        _upsert("lead:00QQ000000Cc2DEF", Status__c="Converted", Contact__c="003Q0000009"),
        _upsert("lead:@{lead:pe-77}", Status__c="Lead"),  # its lead is still being created: no key yet
    ]
    pending = replay_pending(entries, [], [], MAPPING)
    assert list(pending.referrals) == ["lead:00QQ000000Cc2DEF"]
    _, row, versions = pending.referrals["lead:00QQ000000Cc2DEF"]
    assert [v.status for v in versions] == ["Lead", "Converted"]
    assert (row.advocate_id, row.lead_id, row.contact_id) == (
        "a00Q0000002",
        "00QQ000000Cc2DEF",
        "003Q0000009",
    )
    targets = pending_targets(entries, MAPPING)
    assert targets.referral_keys == ("lead:00QQ000000Cc2DEF",) and not targets.referral_ids


def test_rewards_and_the_last_unfinished_totals_per_advocate_are_replayed() -> None:
    reward = OutboxEntry(
        "reward:006Q000000Kk7Aa:flat", "upsert", "Reward__c",
        {"External_Key__c": "reward:006Q000000Kk7Aa:flat", "Amount__c": 125.5, "Status__c": "Approved",
         "Advocate__c": "a00Q0000002", "Opportunity__c": "006Q000000Kk7Aa"},
        external_id_field="External_Key__c", created_at=DECIDED,
    )  # fmt: skip
    totals = [
        OutboxEntry(
            f"advocate-totals:a00Q0000002AAA:{n}",
            "update",
            "Advocate__c",
            {"Total_Referrals__c": n, "Successful_Referrals__c": 1, "Reward_Balance__c": 125.5},
            record_id="a00Q0000002AAAA",
        )
        for n in (3, 4)
    ]
    existing = RewardRow("reward:other", "Paid", Decimal(10), id="a02Q0000000001")
    pending = replay_pending([reward, *totals], [], [existing], MAPPING)
    _, row, _ = pending.rewards["reward:006Q000000Kk7Aa:flat"]
    assert (row.amount, row.status, row.created) == (Decimal("125.5"), "Approved", DECIDED)
    assert pending.totals == {"a00Q0000002AAAA"[:15]: (4, 1, Decimal("125.5"))}


def test_a_conditional_upsert_of_a_record_not_created_yet_creates_it() -> None:
    entry = _upsert("lead:00QQ000000Ee3GHI", Status__c="Lead", Advocate__c="a00Q0000003")
    entry = OutboxEntry(**{**entry.__dict__, "expect": {"Status__c": "Lead"}})
    pending = replay_pending([entry], [], [], MAPPING)
    assert pending.referrals["lead:00QQ000000Ee3GHI"][1].status == "Lead"
    moved_on = ReferralRow("lead:00QQ000000Ee3GHI", "Won", id=REFERRAL_ID)
    assert replay_pending([entry], [moved_on], [], MAPPING).referrals == {}
