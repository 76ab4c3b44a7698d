"""Properties of the lifecycle pipeline over generated histories (hypothesis), against an in-memory org that
applies the outbox as the writer would (conditional updates, upserts by external key), sometimes late.

Whatever the order of stage changes, how batches are cut and when writes land:
- the referral ends in the status the opportunity's final stage gives it;
- each rule's reward exists at most once (and exists when the deal ends won), never again after a clawback;
- the advocate's stored totals equal a recomputation from the records;
- replaying the whole history in a fresh process (local state lost) writes nothing but totals it already has,
  and sends no email.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lifecycle_decider import ADVOCATE, CONTACT, LEAD, MAPPING, OPP

from sfconnector.events import RecordChange
from sfconnector.pipeline.lifecycle import LifecycleDecider
from sfconnector.pipeline.lifecycle_reads import AdvocateRow, ReferralRow, RewardRow, id15
from sfconnector.pipeline.referrals import DecisionRules
from sfconnector.rules.model import AttributionPolicy, RoutingRules
from sfconnector.rules.notifications import compile_notifications
from sfconnector.rules.rewards import compile_rewards
from sfconnector.rules.totals import ReferralRecord, RewardRecord, recompute_totals
from sfconnector.state import OutboxEntry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STAGES = {
    "won": {"StageName": "Closed Won", "IsWon": True, "IsClosed": True},
    "lost": {"StageName": "Closed Lost", "IsWon": False, "IsClosed": True},
    "open": {"StageName": "Negotiation/Review", "IsWon": False, "IsClosed": False},
}
FINAL = {"won": "Won", "lost": "Lost", "open": "Converted"}


class Org:
    """Referral__c, Reward__c and the advocate's totals, changed only by applying outbox entries."""

    def __init__(self) -> None:
        self.clock = 0
        self.referrals: dict[str, dict[str, Any]] = {
            f"lead:{LEAD}": {"Id": "a0B000000000001AAA", "Status__c": "Lead", "Lead__c": LEAD, "at": 0}
        }
        self.rewards: dict[str, dict[str, Any]] = {}
        self.stage = "open"
        self.totals: tuple[int, int, Decimal] | None = None
        self.emails: list[str] = []
        self.tasks: set[str] = set()  # External_Key__c of tasks created (reps' tasks, email logs)

    def tick(self) -> datetime:
        self.clock += 1
        return datetime.fromtimestamp(NOW.timestamp() + self.clock, tz=UTC)

    # -- writes, as the writer applies them ---------------------------------------------------------------

    def apply(self, entry: OutboxEntry) -> None:
        if entry.op == "email":
            self.emails.append(entry.key)
        elif entry.sobject == "Task":
            self.tasks.add(str(entry.fields["External_Key__c"]))
        elif entry.sobject == "Advocate__c":
            f = entry.fields
            self.totals = (
                f["Total_Referrals__c"],
                f["Successful_Referrals__c"],
                Decimal(str(f["Reward_Balance__c"])),
            )
        elif entry.sobject in ("Referral__c", "Reward__c"):
            table = self.referrals if entry.sobject == "Referral__c" else self.rewards
            if entry.op == "update":
                key, record = next((k, r) for k, r in table.items() if r["Id"] == entry.record_id)
                if entry.expect and any(record.get(f) != v for f, v in entry.expect.items()):
                    return  # changed since the decision: skipped
            else:
                key = str(entry.fields["External_Key__c"])
                record = table.setdefault(key, {"Id": f"a0C{len(table):015d}"})
            record.update({k: v for k, v in entry.fields.items() if k != "External_Key__c"})
            record["at"] = self.clock

    # -- reads, as LifecycleReader answers --------------------------------------------------------------

    def _referral(self, key: str) -> ReferralRow:
        r = self.referrals[key]
        return ReferralRow(
            key=key,
            status=r["Status__c"],
            id=r["Id"],
            advocate_id=ADVOCATE,
            lead_id=r["Lead__c"],
            contact_id=r.get("Contact__c"),
            opportunity_id=r.get("Opportunity__c"),
            last_modified=datetime.fromtimestamp(NOW.timestamp() + r["at"], tz=UTC),
        )

    def _reward(self, key: str) -> RewardRow:
        r = self.rewards[key]
        return RewardRow(
            key=key,
            status=r["Status__c"],
            amount=Decimal(str(r["Amount__c"])),
            id=r["Id"],
            advocate_id=ADVOCATE,
            opportunity_id=r.get("Opportunity__c"),
            referral_id=r.get("Referral__c"),
            rule=r.get("Rule__c"),
            created=NOW,
            last_modified=datetime.fromtimestamp(NOW.timestamp() + r["at"], tz=UTC),
        )

    def referrals_of(self, lead_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[ReferralRow]:
        rows = [self._referral(k) for k in self.referrals]
        return [
            r
            for r in rows
            if r.lead_id in lead_ids or (r.opportunity_id and r.opportunity_id in opportunity_ids)
        ]

    def referrals_by(self, *, ids: Sequence[str] = (), keys: Sequence[str] = ()) -> list[ReferralRow]:
        return [self._referral(k) for k, r in self.referrals.items() if k in keys or r["Id"] in ids]

    def rewards_by_id(self, ids: Sequence[str]) -> list[RewardRow]:
        return [self._reward(k) for k, r in self.rewards.items() if r["Id"] in ids]

    def rewards_by_key(self, keys: Sequence[str]) -> list[RewardRow]:
        return [self._reward(k) for k in self.rewards if k in keys]

    def rewards_of(self, advocate_ids: Sequence[str], opportunity_ids: Sequence[str]) -> list[RewardRow]:
        return [self._reward(k) for k in self.rewards]

    def opportunities(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {id15(OPP): {"Id": OPP, "Amount": 4000, **STAGES[self.stage]}}

    def advocates(self, ids: Sequence[str]) -> dict[str, AdvocateRow]:
        row = AdvocateRow(
            ADVOCATE,
            "Grace Hopper",
            "grace@advocates.example",
            False,
            "005000000000009AAA",
            "Alice",
            "Customer",
            "Gift Card",
            "Active",
            "GRACE-1001",
            self.totals,
        )
        return {id15(ADVOCATE): row}

    def referral_counts(self, ids: Sequence[str]) -> dict[str, dict[str, int]]:
        counts: dict[str, int] = {}
        for r in self.referrals.values():
            counts[r["Status__c"]] = counts.get(r["Status__c"], 0) + 1
        return {id15(ADVOCATE): counts}

    def reward_sums(self, ids: Sequence[str]) -> dict[str, dict[str, Decimal]]:
        sums: dict[str, Decimal] = {}
        for r in self.rewards.values():
            sums[r["Status__c"]] = sums.get(r["Status__c"], Decimal(0)) + Decimal(str(r["Amount__c"]))
        return {id15(ADVOCATE): sums}

    def logged_notifications(self, keys: Sequence[str]) -> set[str]:
        return self.tasks & set(keys)


def event(entity: str, record_id: str, fields: dict[str, Any], seq: int) -> RecordChange:
    return RecordChange(
        channel=f"/data/{entity}ChangeEvent",
        replay_id=seq,
        entity=entity,
        change_type="UPDATE",
        record_ids=(record_id,),
        fields=fields,
        changed_fields=frozenset(fields),
        change_origin="",
        transaction_key=f"tx{seq}",
        sequence_number=1,
        commit_timestamp_ms=int(NOW.timestamp() * 1000),
        commit_user="",
    )


def make_decider(org: Org) -> LifecycleDecider:
    problems: list[Any] = []
    reward_rules = compile_rewards(
        {"rules": [{"name": "base", "amount": 100}], "clawback": {"within_days": 30}}, problems
    )
    assert problems == []
    rules = DecisionRules(
        mapping=MAPPING,
        routing=RoutingRules(),
        attribution=AttributionPolicy(),
        notifications=compile_notifications(None, lambda *_: None),  # the defaults, reward_paid among them
    )
    return LifecycleDecider(rules, reward_rules, org, "sfconnector")  # type: ignore[arg-type]


history = st.lists(st.sampled_from(["won", "lost", "open", "pay"]), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=history, cuts=st.lists(st.booleans(), min_size=8, max_size=8), lag=st.integers(0, 2))
def test_any_history_converges_and_replays_silently(stages: list[str], cuts: list[bool], lag: int) -> None:
    """Stage changes after a conversion, cut into batches anyhow, writes landing up to `lag` batches late."""
    org = Org()
    conversion = {"IsConverted": True, "ConvertedContactId": CONTACT, "ConvertedOpportunityId": OPP}
    events: list[tuple[RecordChange, str | None]] = [(event("Lead", LEAD, conversion, 1), None)]
    for i, stage in enumerate(stages):
        if stage == "pay":  # finance pays the reward, if there is an approved one by then
            events.append((event("Reward__c", "?", {"Status__c": "Paid"}, i + 2), stage))
        else:
            events.append(
                (event("Opportunity", OPP, {"StageName": STAGES[stage]["StageName"]}, i + 2), stage)
            )
    decider = make_decider(org)
    pending: list[list[OutboxEntry]] = []
    batch: list[RecordChange] = []
    decided_keys: set[str] = set()

    def flush() -> None:
        nonlocal batch
        if batch:
            result = decider.decide(batch, [], org.tick())
            pending.append([e for e in result.outbox if e.key not in decided_keys])
            decided_keys.update(e.key for e in result.outbox)  # the outbox's INSERT OR IGNORE
            batch = []
        while len(pending) > lag:
            for entry in pending.pop(0):
                org.apply(entry)
            org.tick()

    replayable: list[RecordChange] = [events[0][0]]
    for n, (change, stage) in enumerate(events):
        if stage == "pay":
            reward = org.rewards.get(f"reward:{OPP}:base")
            if reward is None or reward["Status__c"] != "Approved":
                continue  # nothing to pay yet
            reward.update(Status__c="Paid", at=org.clock + 1)
            org.tick()
            change = event("Reward__c", reward["Id"], {"Status__c": "Paid"}, change.replay_id)
        elif stage is not None:
            org.stage = stage  # the person's change is in Salesforce before its event arrives
        if n:
            replayable.append(change)
        batch.append(change)
        if cuts[n % len(cuts)]:
            flush()
    flush()
    while pending:
        for entry in pending.pop(0):
            org.apply(entry)
        org.tick()

    referral = org.referrals[f"lead:{LEAD}"]
    outcomes = [stage for stage in stages if stage != "pay"]
    assert referral["Status__c"] == (FINAL[outcomes[-1]] if outcomes else "Converted")
    assert set(org.rewards) <= {f"reward:{OPP}:base", f"reward:{OPP}:base:clawback"}
    if outcomes and outcomes[-1] == "won":  # (a deal won and lost again before anyone saw it earns nothing)
        assert f"reward:{OPP}:base" in org.rewards
    expected = recompute_totals(
        [ReferralRecord(k, r["Status__c"]) for k, r in org.referrals.items()],
        [RewardRecord(k, Decimal(str(r["Amount__c"])), r["Status__c"]) for k, r in org.rewards.items()],
    )
    assert org.totals == (expected.total_referrals, expected.successful_referrals, expected.reward_balance)
    assert len(org.emails) == len(set(org.emails))
    if any(r["Status__c"] == "Paid" for r in org.rewards.values()):
        assert f"notify:reward:{OPP}:base:Paid" in org.emails

    # The whole history again, in a fresh process: nothing new.
    before = (dict(org.referrals), dict(org.rewards), org.totals, len(org.emails))
    replay = make_decider(org).decide(replayable, [], org.tick())
    assert [e for e in replay.outbox if e.sobject != "Advocate__c"] == []
    for entry in replay.outbox:
        org.apply(entry)
    assert (org.referrals, org.rewards, org.totals, len(org.emails)) == before
