"""Which events move a referral along: lead conversions and disqualifications, opportunity stage changes,
and a person's change to a reward. Pure: events in, `LifecycleSignals` out.

Opportunity changes are only *triggers*: the decision reads the opportunity as it is now (batched SOQL) and
moves the referral towards that, so a replayed or reordered stage event can never flip a referral back to an
outcome the opportunity has since left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sfconnector.events import RecordChange, StreamEvent
from sfconnector.mapping.model import SchemaMapping

OPPORTUNITY = "Opportunity"
# A stage change shows up as any of these; IsWon/IsClosed are derived from StageName by Salesforce.
OPPORTUNITY_OUTCOME_FIELDS = frozenset({"StageName", "IsWon", "IsClosed"})


@dataclass(frozen=True)
class LeadConversion:
    lead_id: str
    contact_id: str | None
    opportunity_id: str | None
    event_key: str


@dataclass(frozen=True)
class LeadDisqualified:
    lead_id: str
    status: str
    event_key: str


@dataclass(frozen=True)
class OpportunityChange:
    opportunity_id: str
    event_key: str
    changed_on: date  # the commit date: dates a win (promotions, hold) or a reversal (clawback window)


@dataclass(frozen=True)
class RewardChange:
    """A person changed a Reward__c (approved it, paid it, edited its amount): notify and recompute totals."""

    reward_id: str
    status: str | None  # the new status when Status__c changed, else None
    event_key: str


@dataclass(frozen=True)
class LifecycleSignals:
    conversions: list[LeadConversion] = field(default_factory=list)
    disqualified: list[LeadDisqualified] = field(default_factory=list)
    opportunities: dict[str, OpportunityChange] = field(default_factory=dict)  # id -> the latest change
    rewards: list[RewardChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.conversions or self.disqualified or self.opportunities or self.rewards)

    @property
    def event_keys(self) -> list[str]:
        keys = [c.event_key for c in self.conversions] + [d.event_key for d in self.disqualified]
        keys += [r.event_key for r in self.rewards]
        return keys + [o.event_key for o in self.opportunities.values()]


def _commit_date(change: RecordChange, today: date) -> date:
    if change.commit_timestamp_ms <= 0:  # Salesforce always stamps it; a hand-made event may not
        return today
    return datetime.fromtimestamp(change.commit_timestamp_ms / 1000, tz=UTC).date()


def _id(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def lifecycle_signals(
    events: Sequence[StreamEvent], mapping: SchemaMapping, own_client: str, today: date
) -> LifecycleSignals:
    """The lifecycle triggers among `events` (the connector's own writes never are). A change is dated by
    its commit timestamp (the org's time); `today` only dates one that carries none."""
    signals = LifecycleSignals()
    lead, reward = mapping.lead, mapping.reward
    for event in events:
        if not isinstance(event, RecordChange) or event.change_type != "UPDATE":
            continue
        if event.client_name() == own_client:
            continue
        fields, changed = event.fields, event.changed_fields
        if event.entity == lead.object:
            if lead.is_converted in changed and fields.get(lead.is_converted) is True:
                for lead_id in event.record_ids:
                    signals.conversions.append(
                        LeadConversion(
                            lead_id,
                            _id(fields.get(lead.converted_contact)),
                            _id(fields.get(lead.converted_opportunity)),
                            event.key,
                        )
                    )
            elif lead.status in changed and str(fields.get(lead.status) or "").lower().startswith("closed"):
                for lead_id in event.record_ids:
                    signals.disqualified.append(
                        LeadDisqualified(lead_id, str(fields.get(lead.status)), event.key)
                    )
        elif event.entity == OPPORTUNITY and changed & OPPORTUNITY_OUTCOME_FIELDS:
            for opportunity_id in event.record_ids:
                signals.opportunities[opportunity_id] = OpportunityChange(
                    opportunity_id, event.key, _commit_date(event, today)
                )
        elif event.entity == reward.object:
            status = fields.get(reward.status) if reward.status in changed else None
            for reward_id in event.record_ids:
                signals.rewards.append(RewardChange(reward_id, _id(status), event.key))
    return signals
