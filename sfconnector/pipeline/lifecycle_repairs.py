"""Reconciliation's lifecycle repairs through the daemon's own decisions.

`sfconnector reconcile` finds referrals whose status lags their lead or opportunity and won opportunities
without a reward; `LifecycleRepairer` (its `LifecycleRepairs`) turns them into the triggers a change event would
have been and runs `LifecycleDecider.decide_signals`, so a repair writes exactly what the event would have:
the same keys, rewards, totals, emails and tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sfconnector.pipeline.lifecycle import LifecycleDecider, PipelineRules
from sfconnector.pipeline.lifecycle_events import (
    LeadConversion,
    LeadDisqualified,
    LifecycleSignals,
    OpportunityChange,
)
from sfconnector.pipeline.lifecycle_reads import LifecycleReader
from sfconnector.pipeline.lookups import Querier
from sfconnector.pipeline.referrals import DecisionRules
from sfconnector.rules.lifecycle import CONVERTED, LOST, REJECTED, WON, StatusDecision
from sfconnector.state import OutboxEntry


class StatusLagLike(Protocol):
    @property
    def referral_id(self) -> str: ...
    @property
    def lead_id(self) -> str | None: ...
    @property
    def decision(self) -> StatusDecision: ...


class MissingRewardLike(Protocol):
    @property
    def referral_id(self) -> str: ...
    @property
    def opportunity_id(self) -> str: ...


class LifecycleRepairer:
    """Implements reconciliation's `LifecycleRepairs` protocol."""

    def __init__(
        self, decider: LifecycleDecider, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._decider, self._clock = decider, clock

    def status_entries(self, lags: Sequence[StatusLagLike]) -> list[OutboxEntry]:
        now = self._clock()
        signals = LifecycleSignals()
        for lag in lags:
            d = lag.decision
            key = f"reconcile:{lag.referral_id}:{d.status}"
            if lag.lead_id and (d.contact_id or d.opportunity_id) and d.status != REJECTED:
                # The lead was converted (the sweep linked its contact and opportunity): the conversion comes
                # first, so the opportunity's outcome then finds its referral.
                signals.conversions.append(LeadConversion(lag.lead_id, d.contact_id, d.opportunity_id, key))
            elif lag.lead_id and d.status == REJECTED:
                signals.disqualified.append(LeadDisqualified(lag.lead_id, REJECTED, key))
            if d.opportunity_id and d.status in (WON, LOST, CONVERTED):
                signals.opportunities[d.opportunity_id] = OpportunityChange(d.opportunity_id, key, now.date())
        return self._decider.decide_signals(signals, [], now).outbox

    def reward_entries(self, missing: Sequence[MissingRewardLike]) -> list[OutboxEntry]:
        now = self._clock()
        signals = LifecycleSignals()
        for item in missing:
            key = f"reconcile:{item.referral_id}:reward"
            signals.opportunities[item.opportunity_id] = OpportunityChange(
                item.opportunity_id, key, now.date()
            )
        return self._decider.decide_signals(signals, [], now).outbox


def lifecycle_repairer(rules: DecisionRules, client: Querier, own_client: str) -> LifecycleRepairer:
    """The repairer for a sweep, with the reward rules when `rules` carries them (see `wiring.decision_rules`)."""
    rewards = rules.rewards if isinstance(rules, PipelineRules) else None
    reader = LifecycleReader(client, rules.mapping, rewards)
    return LifecycleRepairer(LifecycleDecider(rules, rewards, reader, own_client))
