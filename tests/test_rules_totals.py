"""Advocate totals recomputed from records: which statuses count, deduplication by key."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sfconnector.rules.totals import (
    AdvocateTotals,
    ReferralRecord,
    RewardRecord,
    recompute_totals,
    successful_referrals_excluding,
    totals_from_aggregates,
)


def test_counts_real_referrals_and_won_ones() -> None:
    statuses = ["Lead", "Converted", "Won", "Won", "Lost", "Rejected", "Duplicate"]
    referrals = [ReferralRecord(f"lead:{i}", s) for i, s in enumerate(statuses)]
    totals = recompute_totals(referrals, [])
    assert (totals.total_referrals, totals.successful_referrals, totals.rejected_referrals) == (5, 2, 2)


def test_balance_is_approved_not_paid_including_adjustments() -> None:
    rewards = [
        RewardRecord("reward:1:a", Decimal("100.00"), "Approved"),
        RewardRecord("reward:2:a", Decimal("250.00"), "Pending Approval"),
        RewardRecord("reward:3:a", Decimal("75.00"), "Paid"),
        RewardRecord("reward:3:a:clawback", Decimal("-75.00"), "Approved"),
        RewardRecord("reward:4:a", Decimal("40.00"), "Rejected"),
    ]
    assert recompute_totals([], rewards) == AdvocateTotals(
        total_referrals=0,
        successful_referrals=0,
        reward_balance=Decimal("25.00"),
        awaiting_approval=Decimal("250.00"),
        paid=Decimal("75.00"),
    )


def test_balance_goes_negative_when_a_paid_reward_is_clawed_back() -> None:
    rewards = [
        RewardRecord("reward:3:a", Decimal("75.00"), "Paid"),
        RewardRecord("reward:3:a:clawback", Decimal("-75.00"), "Approved"),
    ]
    assert recompute_totals([], rewards).reward_balance == Decimal("-75.00")


def test_duplicate_records_count_once_and_latest_version_wins() -> None:
    early = datetime(2026, 11, 1, tzinfo=UTC)
    late = datetime(2026, 11, 2, tzinfo=UTC)
    referrals = [
        ReferralRecord("lead:1", "Won", late),
        ReferralRecord("lead:1", "Converted", early),
        ReferralRecord("lead:1", "Won", late),
    ]
    rewards = [
        RewardRecord("reward:1:a", Decimal("10"), "Approved", late),
        RewardRecord("reward:1:a", Decimal("10"), "Pending Approval", early),
        RewardRecord("reward:1:a", Decimal("10"), "Approved", late),
    ]
    totals = recompute_totals(referrals, rewards)
    assert (totals.total_referrals, totals.successful_referrals, totals.reward_balance) == (
        1,
        1,
        Decimal("10.00"),
    )


def test_aggregate_results_use_the_same_definitions() -> None:
    totals = totals_from_aggregates(
        {"Lead": 3, "Won": 2, "Rejected": 4}, {"Approved": Decimal("12.345"), "Paid": Decimal("5")}
    )
    assert totals == AdvocateTotals(5, 2, Decimal("12.35"), Decimal("0.00"), Decimal("5.00"), 4)
    assert totals.owed == totals.reward_balance


def test_tier_count_excludes_this_referral() -> None:
    referrals = [
        ReferralRecord("lead:1", "Won"),
        ReferralRecord("lead:2", "Won"),
        ReferralRecord("lead:3", "Lost"),
    ]
    assert successful_referrals_excluding(referrals, "lead:2") == 1
    assert successful_referrals_excluding(referrals, None) == 2
