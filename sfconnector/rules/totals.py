"""Advocate totals, recomputed from the referral and reward records, never incremented.

What counts: one definition, used for the Advocate__c fields the daemon writes, for SOQL aggregates, and by
every place that shows an advocate's numbers (`sfconnector report`, `explain --opportunity`, the demo):

- `Total_Referrals__c` ("referrals"): referrals with status Lead, Converted, Won or Lost. Rejected
  (self-referral, disqualified) and Duplicate referrals are not real introductions, so they are not counted;
  they are counted apart as `rejected_referrals` ("rejected") so none disappears from a report.
- `Successful_Referrals__c` ("successful"): referrals with status Won.
- `Reward_Balance__c` ("owed"): what the program owes the advocate now: the sum of Approved rewards, i.e.
  approved and not yet Paid, including approved negative clawback adjustments (so it can go below zero when a
  paid reward is taken back and nothing else is owed: the advocate then owes that much from the next payout).
  Pending Approval is not owed yet ("awaiting approval", `awaiting_approval`), Paid is settled (`paid`),
  Rejected never will be; those are shown apart, never added to what is owed.

Records are deduplicated by external key first, so reading the same record twice (overlapping query pages,
a replayed decision still in the outbox) cannot change a total. When two versions of one key disagree, the one
modified last wins (ties broken by content), which keeps the result independent of the order records arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from sfconnector.rules.lifecycle import CONVERTED, DUPLICATE, LEAD, LOST, REJECTED, WON
from sfconnector.rules.rewards import APPROVED, CENT, PAID, PENDING_APPROVAL

COUNTED_REFERRAL_STATUSES = frozenset({LEAD, CONVERTED, WON, LOST})
REJECTED_REFERRAL_STATUSES = frozenset({REJECTED, DUPLICATE})
SUCCESSFUL_REFERRAL_STATUSES = frozenset({WON})
OWED_REWARD_STATUSES = frozenset({APPROVED})  # Reward_Balance__c
AWAITING_APPROVAL_REWARD_STATUSES = frozenset({PENDING_APPROVAL})


@dataclass(frozen=True)
class ReferralRecord:
    key: str
    status: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class RewardRecord:
    key: str
    amount: Decimal
    status: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class AdvocateTotals:
    """The three Advocate__c fields, plus what reports show beside them (never part of them)."""

    total_referrals: int
    successful_referrals: int
    reward_balance: Decimal  # "owed": Approved, not yet Paid
    awaiting_approval: Decimal = Decimal("0.00")
    paid: Decimal = Decimal("0.00")
    rejected_referrals: int = 0  # Rejected and Duplicate: not in total_referrals

    @property
    def owed(self) -> Decimal:
        """What the program owes the advocate now: the same number as `reward_balance` (Reward_Balance__c)."""
        return self.reward_balance


_Record = TypeVar("_Record", ReferralRecord, RewardRecord)


def _version(record: ReferralRecord | RewardRecord) -> tuple[str, str, str]:
    stamp = record.last_modified
    when = "" if stamp is None else (stamp.astimezone(UTC) if stamp.tzinfo else stamp).isoformat()
    amount = str(record.amount) if isinstance(record, RewardRecord) else ""
    return (when, record.status, amount)


def dedupe(records: Iterable[_Record]) -> list[_Record]:
    """One record per key: the last modified (ties broken by content), in key order."""
    latest: dict[str, _Record] = {}
    for record in records:
        held = latest.get(record.key)
        if held is None or _version(record) > _version(held):
            latest[record.key] = record
    return [latest[key] for key in sorted(latest)]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def totals_from_aggregates(
    referrals_by_status: Mapping[str, int], reward_sums_by_status: Mapping[str, Decimal]
) -> AdvocateTotals:
    """Totals from `SELECT Status__c, COUNT(Id)` / `SUM(Amount__c) ... GROUP BY Status__c` results."""

    def count(statuses: frozenset[str]) -> int:
        return sum(n for s, n in referrals_by_status.items() if s in statuses)

    def total(statuses: frozenset[str]) -> Decimal:
        return _cents(sum((a for s, a in reward_sums_by_status.items() if s in statuses), Decimal(0)))

    return AdvocateTotals(
        total_referrals=count(COUNTED_REFERRAL_STATUSES),
        successful_referrals=count(SUCCESSFUL_REFERRAL_STATUSES),
        reward_balance=total(OWED_REWARD_STATUSES),
        awaiting_approval=total(AWAITING_APPROVAL_REWARD_STATUSES),
        paid=total(frozenset({PAID})),
        rejected_referrals=count(REJECTED_REFERRAL_STATUSES),
    )


def recompute_totals(referrals: Iterable[ReferralRecord], rewards: Iterable[RewardRecord]) -> AdvocateTotals:
    """The advocate's totals from all of its referral and reward records (duplicates allowed, any order)."""
    counts: dict[str, int] = {}
    for referral in dedupe(referrals):
        counts[referral.status] = counts.get(referral.status, 0) + 1
    sums: dict[str, Decimal] = {}
    for reward in dedupe(rewards):
        sums[reward.status] = sums.get(reward.status, Decimal(0)) + reward.amount
    return totals_from_aggregates(counts, sums)


def successful_referrals_excluding(referrals: Iterable[ReferralRecord], referral_key: str | None) -> int:
    """The advocate's Won referrals other than `referral_key`: the count reward tiers are picked by."""
    return sum(
        1 for r in dedupe(referrals) if r.status in SUCCESSFUL_REFERRAL_STATUSES and r.key != referral_key
    )
