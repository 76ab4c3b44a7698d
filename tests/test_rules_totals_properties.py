"""Property tests of advocate totals: invariant under record order and duplicates, consistent with aggregates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sfconnector.rules.lifecycle import REFERRAL_STATUSES
from sfconnector.rules.rewards import REWARD_STATUSES
from sfconnector.rules.totals import (
    ReferralRecord,
    RewardRecord,
    recompute_totals,
    totals_from_aggregates,
)

referral_sets = st.dictionaries(
    st.integers(0, 50).map(lambda i: f"lead:00Q{i:015d}"), st.sampled_from(REFERRAL_STATUSES), max_size=20
).map(lambda d: [ReferralRecord(k, s) for k, s in d.items()])
reward_sets = st.dictionaries(
    st.integers(0, 50).map(lambda i: f"reward:006{i:015d}:base"),
    st.tuples(
        st.decimals(min_value=Decimal(-5000), max_value=Decimal(5000), places=2),
        st.sampled_from(REWARD_STATUSES),
    ),
    max_size=20,
).map(lambda d: [RewardRecord(k, a, s) for k, (a, s) in d.items()])


@given(st.data(), referral_sets, reward_sets)
def test_totals_ignore_order_and_duplicate_records(
    data: st.DataObject, referrals: list[ReferralRecord], rewards: list[RewardRecord]
) -> None:
    expected = recompute_totals(referrals, rewards)
    noisy_referrals = data.draw(
        st.permutations(
            referrals
            + data.draw(st.lists(st.sampled_from(referrals), max_size=10) if referrals else st.just([]))
        )
    )
    noisy_rewards = data.draw(
        st.permutations(
            rewards + data.draw(st.lists(st.sampled_from(rewards), max_size=10) if rewards else st.just([]))
        )
    )
    assert recompute_totals(noisy_referrals, noisy_rewards) == expected


@given(referral_sets, reward_sets)
def test_totals_match_the_documented_definitions(
    referrals: list[ReferralRecord], rewards: list[RewardRecord]
) -> None:
    totals = recompute_totals(referrals, rewards)
    assert totals.total_referrals == sum(r.status in ("Lead", "Converted", "Won", "Lost") for r in referrals)
    assert totals.successful_referrals == sum(r.status == "Won" for r in referrals)
    assert totals.successful_referrals <= totals.total_referrals
    assert totals.reward_balance == sum((r.amount for r in rewards if r.status == "Approved"), Decimal(0))
    assert totals.awaiting_approval == sum(
        (r.amount for r in rewards if r.status == "Pending Approval"), Decimal(0)
    )
    # every referral is counted once: as a referral (the advocate's total) or as rejected
    assert totals.total_referrals + totals.rejected_referrals == sum(
        r.status in ("Lead", "Converted", "Won", "Lost", "Rejected", "Duplicate") for r in referrals
    )
    counts: dict[str, int] = {}
    for referral in referrals:
        counts[referral.status] = counts.get(referral.status, 0) + 1
    sums: dict[str, Decimal] = {}
    for reward in rewards:
        sums[reward.status] = sums.get(reward.status, Decimal(0)) + reward.amount
    assert totals_from_aggregates(counts, sums) == totals


@given(
    st.data(),
    st.lists(
        st.tuples(
            st.integers(0, 5).map(lambda i: f"reward:006{i:015d}:base"),
            st.sampled_from(REWARD_STATUSES),
            st.none() | st.datetimes(timezones=st.just(UTC)),
        ),
        max_size=15,
    ),
)
def test_conflicting_versions_of_a_key_resolve_the_same_in_any_order(
    data: st.DataObject, versions: list[tuple[str, str, datetime | None]]
) -> None:
    rewards = [RewardRecord(key, Decimal("10.00"), status, modified) for key, status, modified in versions]
    referrals = [
        ReferralRecord(key.replace("reward", "lead"), "Won" if status == "Paid" else "Lead", modified)
        for key, status, modified in versions
    ]
    expected = recompute_totals(referrals, rewards)
    assert (
        recompute_totals(data.draw(st.permutations(referrals)), data.draw(st.permutations(rewards)))
        == expected
    )
    assert expected.total_referrals == len({key for key, _, _ in versions})
