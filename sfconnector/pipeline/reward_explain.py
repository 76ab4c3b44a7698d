"""Why an opportunity earns what it earns: its referral, the advocate, and each reward rule's verdict.

Reads the org with the lifecycle's own queries and runs the same pure `explain_rewards` the daemon's
`decide_rewards` is built on; writes nothing. Used by `sfconnector explain --opportunity` and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sfconnector.pipeline.lifecycle_reads import AdvocateRow, LifecycleReader, ReferralRow, RewardRow, id15
from sfconnector.rules.lifecycle import FINAL_STATUSES, WON
from sfconnector.rules.rewards import (
    AdvocateFacts,
    ExistingReward,
    RewardRules,
    RuleOutcome,
    WonOpportunityFacts,
    explain_rewards,
)
from sfconnector.rules.totals import AdvocateTotals, totals_from_aggregates


class OpportunityNotFound(LookupError):
    """No opportunity with that id."""


@dataclass(frozen=True)
class OpportunityExplanation:
    opportunity_id: str
    stage: str
    amount: Decimal | None
    is_won: bool
    won_on: date
    referral: ReferralRow | None
    advocate: AdvocateRow | None
    successful_referrals: int
    outcomes: list[RuleOutcome] = field(default_factory=list)
    # The advocate's numbers by the one definition the daemon writes to the record (owed = Reward_Balance__c).
    advocate_totals: AdvocateTotals | None = None
    rewards: list[RewardRow] = field(default_factory=list)  # already in Salesforce
    note: str | None = None


def _existing(row: RewardRow) -> ExistingReward:
    return ExistingReward(
        external_key=row.key,
        opportunity_id=row.opportunity_id or "",
        advocate_id=row.advocate_id or "",
        rule=row.rule or "",
        amount=row.amount,
        status=row.status,
        type=row.type,
        referral_id=row.referral_id,
        payable_on=row.payable_on,
    )


def explain_opportunity(
    reader: LifecycleReader,
    rules: RewardRules | None,
    opportunity_id: str,
    today: date,
    *,
    ignore_existing: bool = False,
) -> OpportunityExplanation:
    """The reward rules' verdicts for `opportunity_id`; an opportunity not won yet is judged as if won today.

    `ignore_existing` shows what the rules give regardless of rewards already decided (their reasons).
    """
    opportunities = reader.opportunities([opportunity_id])
    opportunity: dict[str, Any] | None = opportunities.get(id15(opportunity_id))
    if opportunity is None:
        raise OpportunityNotFound(f"no opportunity {opportunity_id}")
    opp_id = str(opportunity["Id"])
    amount = opportunity.get("Amount")
    is_won = opportunity.get("IsWon") is True
    referrals = [r for r in reader.referrals_of([], [opp_id]) if r.advocate_id]
    credited = [r for r in referrals if r.status not in FINAL_STATUSES]
    candidates = credited or referrals
    referral = candidates[0] if candidates else None
    rewards = [r for r in reader.rewards_of([], [opp_id]) if id15(r.opportunity_id) == id15(opp_id)]
    created = [r.created.date() for r in rewards if r.created is not None]
    won_on = min(created) if created else today
    base = OpportunityExplanation(
        opportunity_id=opp_id,
        stage=str(opportunity.get("StageName") or ""),
        amount=Decimal(str(amount)) if amount is not None else None,
        is_won=is_won,
        won_on=won_on,
        referral=referral,
        advocate=None,
        successful_referrals=0,
        rewards=rewards,
    )
    if referral is None or referral.advocate_id is None:
        return _with(base, note="no referral with an advocate leads to this opportunity: no reward")
    if referral.status in FINAL_STATUSES:
        return _with(base, note=f"its referral is {referral.status}: no reward")
    advocate = reader.advocates([referral.advocate_id]).get(id15(referral.advocate_id))
    if advocate is None:
        return _with(base, note=f"advocate {referral.advocate_id} not found")
    counts = reader.referral_counts([advocate.id]).get(id15(advocate.id), {})
    totals = totals_from_aggregates(counts, reader.reward_sums([advocate.id]).get(id15(advocate.id), {}))
    base = _with(base, advocate_totals=totals)
    won = counts.get(WON, 0)
    successful = max(won - (1 if referral.status == WON else 0), 0)  # the advocate's *other* wins
    facts = WonOpportunityFacts(
        opportunity_id=opp_id,
        amount=base.amount,
        stage=base.stage,
        is_won=True,
        won_on=won_on,
        referral_id=referral.id,
        referral_channel=referral.channel,
        fields=opportunity,
    )
    advocate_facts = AdvocateFacts(
        id=advocate.id,
        program=advocate.program,
        preferred_reward=advocate.preferred_reward,
        successful_referrals=successful,
        status=advocate.status,
        fields=advocate.fields,
    )
    if rules is None or not rules.rules:
        return _with(
            base, advocate=advocate, successful_referrals=successful, note="no reward rules configured"
        )
    existing = [] if ignore_existing else [_existing(r) for r in rewards]
    outcomes = explain_rewards(facts, advocate_facts, existing, rules, today)
    note = None if is_won else f"not won yet (stage {base.stage}): judged as if it were won today"
    return _with(base, advocate=advocate, successful_referrals=successful, outcomes=outcomes, note=note)


def _with(base: OpportunityExplanation, **changes: Any) -> OpportunityExplanation:
    return replace(base, **changes)
