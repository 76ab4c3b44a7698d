"""The lifecycle decisions of a batch, against a fake org reader: signals, overlay of decisions still being
written, replays, and the keys that make totals and emails idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sfconnector.events import RecordChange
from sfconnector.mapping.model import SchemaMapping
from sfconnector.pipeline.lifecycle import LifecycleDecider
from sfconnector.pipeline.lifecycle_events import lifecycle_signals
from sfconnector.pipeline.lifecycle_reads import AdvocateRow, ReferralRow, RewardRow, id15
from sfconnector.pipeline.referrals import DecisionRules
from sfconnector.rules.model import AttributionPolicy, RoutingRules
from sfconnector.rules.notifications import compile_notifications
from sfconnector.rules.rewards import RewardRules, compile_rewards

MAPPING = SchemaMapping()
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADVOCATE = "a0A000000000001AAA"
LEAD = "00Q000000000001AAA"
OPP = "006000000000001AAA"
CONTACT = "003000000000001AAA"


def change(
    entity: str, record_id: str, fields: dict[str, Any], *, origin: str = "", seq: int = 1
) -> RecordChange:
    return RecordChange(
        channel=f"/data/{entity}ChangeEvent",
        replay_id=seq,
        entity=entity,
        change_type="UPDATE",
        record_ids=(record_id,),
        fields=fields,
        changed_fields=frozenset(fields),
        change_origin=origin,
        transaction_key=f"tx{seq}",
        sequence_number=1,
        commit_timestamp_ms=int(NOW.timestamp() * 1000),
        commit_user="005000000000001AAA",
    )


def converted(seq: int = 1) -> RecordChange:
    return change(
        "Lead",
        LEAD,
        {
            "IsConverted": True,
            "ConvertedContactId": CONTACT,
            "ConvertedOpportunityId": OPP,
            "Status": "Closed - Converted",
        },
        seq=seq,
    )


def won(seq: int = 2) -> RecordChange:
    return change("Opportunity", OPP, {"StageName": "Closed Won", "IsWon": True, "IsClosed": True}, seq=seq)


class FakeOrg:
    """What the lifecycle reads, held in memory; writes are applied by `land`."""

    def __init__(self) -> None:
        self.referrals: dict[str, ReferralRow] = {
            f"lead:{LEAD}": ReferralRow(
                key=f"lead:{LEAD}",
                status="Lead",
                id="a0B000000000001AAA",
                advocate_id=ADVOCATE,
                lead_id=LEAD,
                channel="Card",
                name="Pat Prospect",
                last_modified=datetime(2026, 11, 1, tzinfo=UTC),
            )
        }
        self.rewards: dict[str, RewardRow] = {}
        self.opportunity: dict[str, Any] = {
            "Id": OPP,
            "Amount": 5000,
            "StageName": "Closed Won",
            "IsWon": True,
            "IsClosed": True,
        }
        self.queries: list[str] = []

    # the LifecycleReader surface
    def referrals_of(self, lead_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[ReferralRow]:
        self.queries.append("referrals_of")
        leads, opps = {id15(i) for i in lead_ids}, {id15(i) for i in opportunity_ids}
        return [
            r for r in self.referrals.values() if id15(r.lead_id) in leads or id15(r.opportunity_id) in opps
        ]

    def referrals_by(self, *, ids: Sequence[str] = (), keys: Sequence[str] = ()) -> list[ReferralRow]:
        self.queries.append("referrals_by")
        return [r for r in self.referrals.values() if r.key in keys or id15(r.id) in {id15(i) for i in ids}]

    def rewards_by_id(self, ids: Sequence[str]) -> list[RewardRow]:
        return [r for r in self.rewards.values() if id15(r.id) in {id15(i) for i in ids}]

    def rewards_by_key(self, keys: Sequence[str]) -> list[RewardRow]:
        return [r for r in self.rewards.values() if r.key in keys]

    def rewards_of(self, advocate_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[RewardRow]:
        opps = {id15(i) for i in opportunity_ids}
        return [r for r in self.rewards.values() if id15(r.opportunity_id) in opps]

    def opportunities(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {id15(OPP): dict(self.opportunity)} if id15(OPP) in {id15(i) for i in ids} else {}

    def advocates(self, ids: Sequence[str]) -> dict[str, AdvocateRow]:
        row = AdvocateRow(
            id=ADVOCATE,
            name="Grace Hopper",
            email="grace@advocates.example",
            email_opt_out=False,
            owner_id="005000000000009AAA",
            owner_name="Alice Nguyen",
            program="Customer",
            preferred_reward="Gift Card",
            status="Active",
            referral_code="GRACE-1001",
            totals=(1, 0, Decimal("0.00")),
        )
        return {id15(ADVOCATE): row} if id15(ADVOCATE) in {id15(i) for i in ids} else {}

    def referral_counts(self, ids: Sequence[str]) -> dict[str, dict[str, int]]:
        counts: dict[str, int] = {}
        for r in self.referrals.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return {id15(ADVOCATE): counts}

    def reward_sums(self, ids: Sequence[str]) -> dict[str, dict[str, Decimal]]:
        sums: dict[str, Decimal] = {}
        for r in self.rewards.values():
            sums[r.status] = sums.get(r.status, Decimal(0)) + r.amount
        return {id15(ADVOCATE): sums}

    def logged_notifications(self, keys: Sequence[str]) -> set[str]:
        return set()

    def land(self, referral_status: str | None = None, at: datetime = NOW) -> None:
        """The outbox wrote the referral's new status (and links) and the rewards."""
        key = f"lead:{LEAD}"
        if referral_status:
            self.referrals[key] = replace(
                self.referrals[key],
                status=referral_status,
                opportunity_id=OPP,
                contact_id=CONTACT,
                last_modified=at,
            )


def rules(rewards: RewardRules) -> DecisionRules:
    return DecisionRules(
        mapping=MAPPING,
        routing=RoutingRules(),
        attribution=AttributionPolicy(),
        notifications=compile_notifications(
            {
                "advocate": {"converted": True, "won": True, "reward_approved": True},
                "rep_tasks": {"won": True},
            },
            lambda *_: None,
        ),
    )


def decider(org: FakeOrg) -> LifecycleDecider:
    problems: list[Any] = []
    reward_rules = compile_rewards({"rules": [{"name": "base", "amount": 100}]}, problems)
    assert problems == []
    return LifecycleDecider(rules(reward_rules), reward_rules, org, "sfconnector")  # type: ignore[arg-type]


def test_signals_are_conversions_disqualifications_stage_changes_and_reward_updates_by_people() -> None:
    """The connector's own writes and creates are not signals; a closed, unconverted status is a disqualification."""
    events = [
        converted(1),
        change("Lead", "00Q000000000002AAA", {"Status": "Closed - Not Converted"}, seq=2),
        won(3),
        change("Reward__c", "a0C000000000001AAA", {"Status__c": "Paid"}, seq=4),
        change(
            "Opportunity",
            "006000000000002AAA",
            {"StageName": "Closed Won"},
            origin="x;client=sfconnector",
            seq=5,
        ),
        change("Opportunity", "006000000000003AAA", {"Description": "notes"}, seq=6),
    ]
    signals = lifecycle_signals(events, MAPPING, "sfconnector", NOW.date())
    assert [(c.lead_id, c.opportunity_id) for c in signals.conversions] == [(LEAD, OPP)]
    assert [d.lead_id for d in signals.disqualified] == ["00Q000000000002AAA"]
    assert list(signals.opportunities) == [OPP]
    assert [(r.reward_id, r.status) for r in signals.rewards] == [("a0C000000000001AAA", "Paid")]


def test_a_win_decided_before_the_conversion_landed_builds_on_the_conversion() -> None:
    """Batch 2 sees the referral at Lead in Salesforce, but moves from the Converted batch 1 decided."""
    org = FakeOrg()
    lifecycle = decider(org)
    first = lifecycle.decide([converted()], [], NOW)
    [status] = [e for e in first.outbox if e.key.startswith("referral-status:")]
    assert status.fields["Status__c"] == "Converted" and status.expect == {"Status__c": "Lead"}
    second = lifecycle.decide([won()], [], NOW)  # nothing landed in between
    [status] = [e for e in second.outbox if e.key.startswith("referral-status:")]
    assert status.fields["Status__c"] == "Won" and status.expect == {"Status__c": "Converted"}
    [reward] = [e for e in second.outbox if e.sobject == "Reward__c"]
    assert reward.fields["Amount__c"] == 100.0 and reward.fields["Referral__c"] == "a0B000000000001AAA"
    [totals] = [e for e in second.outbox if e.sobject == "Advocate__c"]
    assert totals.fields == {
        "Total_Referrals__c": 1,
        "Successful_Referrals__c": 1,
        "Reward_Balance__c": 100.0,
    }
    assert {e.key for e in second.outbox if e.op == "email"} == {
        f"notify:lead:{LEAD}:Won",
        f"notify:reward:{OPP}:base:Approved",
    }


def test_replayed_events_decide_nothing_once_salesforce_shows_their_effects() -> None:
    """A fresh process (no memory) replaying conversion and win after both landed writes nothing at all."""
    org = FakeOrg()
    org.land("Won")
    org.rewards[f"reward:{OPP}:base"] = RewardRow(
        key=f"reward:{OPP}:base",
        status="Approved",
        amount=Decimal(100),
        id="a0C000000000001AAA",
        advocate_id=ADVOCATE,
        opportunity_id=OPP,
        rule="base",
        last_modified=NOW,
    )
    result = decider(org).decide([converted(), won()], [], NOW)
    assert [e for e in result.outbox if e.sobject != "Advocate__c"] == []


def test_totals_entries_differ_when_values_return_to_an_earlier_state() -> None:
    """A -> B -> A must write A again: the totals key carries the events, not only the values."""
    org = FakeOrg()
    org.land("Converted")
    org.referrals[f"lead:{LEAD}"] = replace(org.referrals[f"lead:{LEAD}"], opportunity_id=OPP)
    lifecycle = decider(org)
    org.opportunity.update(StageName="Closed Won", IsWon=True, IsClosed=True)
    up = lifecycle.decide([won(2)], [], NOW)
    org.land("Won", at=NOW)
    org.opportunity.update(StageName="Closed Lost", IsWon=False, IsClosed=True)
    down = lifecycle.decide([change("Opportunity", OPP, {"StageName": "Closed Lost"}, seq=3)], [], NOW)
    org.land("Lost", at=NOW)
    org.opportunity.update(StageName="Closed Won", IsWon=True, IsClosed=True)
    again = lifecycle.decide([won(4)], [], NOW)
    keys = [next(e.key for e in r.outbox if e.sobject == "Advocate__c") for r in (up, down, again)]
    assert len(set(keys)) == 3
    successful = [
        next(e.fields for e in r.outbox if e.sobject == "Advocate__c")["Successful_Referrals__c"]
        for r in (up, down, again)
    ]
    assert successful == [1, 0, 1]


def test_a_batch_decided_again_after_a_failed_commit_decides_the_same_writes() -> None:
    """The daemon retries a batch whose commit failed: its first, lost decisions must not silence it."""
    org = FakeOrg()
    lifecycle = decider(org)
    first = lifecycle.decide([converted()], [], NOW)
    retried = lifecycle.decide([converted()], [], NOW)
    assert [e.key for e in retried.outbox] == [e.key for e in first.outbox]
    assert any(e.key.startswith("referral-status:") for e in retried.outbox)


def test_a_win_read_weeks_later_is_dated_by_its_commit_not_by_the_local_clock() -> None:
    """Hold and promotions count from the day Salesforce stamped the win (UTC), however late it is read."""
    org = FakeOrg()
    org.land("Converted")
    problems: list[Any] = []
    reward_rules = compile_rewards(
        {
            "hold_days": 10,
            "rules": [{"name": "share", "percent": 2, "max": 250}],
            "promotions": [{"name": "year-end", "from": "2026-12-01", "to": "2026-12-31", "multiply": 3}],
        },
        problems,
    )
    assert problems == []
    lifecycle = LifecycleDecider(rules(reward_rules), reward_rules, org, "sfconnector")  # type: ignore[arg-type]
    stamped = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    late = replace(won(), commit_timestamp_ms=int(stamped.timestamp() * 1000))
    result = lifecycle.decide([late], [], datetime(2027, 1, 20, 9, 0, tzinfo=UTC))
    [reward] = [e for e in result.outbox if e.sobject == "Reward__c"]
    # 2% of 5,000 = 100, x3 in the year-end promotion = 300, capped at 250 after promotions
    assert reward.fields["Amount__c"] == 250.0
    assert reward.fields["Payable_On__c"] == "2027-01-10"
