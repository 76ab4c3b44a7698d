"""Which events are referrals: lead creates (and late referral codes) and submitted-referral platform events.

Pure: events in, `ReferralCandidate`s out. A candidate is a lead that carries a referral code and has not
yet been attributed; deciding what to do with it is `referrals.decide_referral`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sfconnector.events import BadEvent, PlatformEvent, RecordChange, StreamEvent
from sfconnector.mapping.codes import normalise_code
from sfconnector.mapping.model import SchemaMapping

CHANNELS = frozenset({"Card", "Verbal", "Email", "Social", "SMS", "Web"})

# Referral_Submitted__e field -> Lead field (the default schema's platform event).
SUBMITTED_TO_LEAD = {
    "First_Name__c": "FirstName",
    "Last_Name__c": "LastName",
    "Email__c": "Email",
    "Company__c": "Company",
    "Phone__c": "Phone",
}
SUBMITTED_EVENT = "Referral_Submitted__e"
# Salesforce's own placeholder when web-to-lead has no company (Lead.Company is required).
NO_COMPANY = "[not provided]"


@dataclass(frozen=True)
class ReferralCandidate:
    """A lead that carries a referral code and waits for a routing and attribution decision."""

    source_key: str  # the event's identity, e.g. cdc:<transactionKey>:<seq>:Lead or event:<EventUuid>
    lead_id: str | None  # None: the lead is still to be created (platform event)
    raw_code: str
    code: str  # normalised as the mapping says
    channel: str | None
    email: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime = field(
        kw_only=True
    )  # the org's time: when the lead (or the submitted referral) was created
    standard_owner_id: str | None = None
    manually_reassigned: bool = False
    current_owner_id: str | None = None
    needs_lead_fetch: bool = False  # an update that added a code: the pipeline reads the whole lead
    event_uuid: str | None = None

    @property
    def referral_key(self) -> str:
        """External_Key__c of the Referral__c: `lead:<LeadId>`, or the submitted event's until the lead exists."""
        return f"lead:{self.lead_id}" if self.lead_id else f"lead:event:{self.event_uuid}"


def _created_at(change: RecordChange) -> datetime:
    return datetime.fromtimestamp(change.commit_timestamp_ms / 1000, tz=UTC)


def _channel(value: Any) -> str | None:
    return value if isinstance(value, str) and value in CHANNELS else None


def _code(value: Any, mapping: SchemaMapping) -> tuple[str, str] | None:
    if not isinstance(value, str) or not value.strip():
        return None
    code = normalise_code(value, mapping.referral_code)
    return (value, code) if code else None


def from_lead_change(change: RecordChange, mapping: SchemaMapping) -> list[ReferralCandidate]:
    """A created lead with a code, or an update that gave an unattributed lead its code."""
    lead = mapping.lead
    if change.entity != lead.object or change.change_type not in ("CREATE", "UPDATE"):
        return []
    fields = change.fields
    found = _code(fields.get(lead.referral_code), mapping)
    if found is None:
        return []
    if change.change_type == "UPDATE" and (
        lead.referral_code not in change.changed_fields or fields.get(lead.advocate)
    ):
        return []
    raw, code = found
    return [
        ReferralCandidate(
            source_key=change.key if len(change.record_ids) == 1 else f"{change.key}:{record_id}",
            lead_id=record_id,
            raw_code=raw,
            code=code,
            channel=_channel(fields.get(lead.channel)),
            email=fields.get(lead.email) or None,
            fields=dict(fields),
            standard_owner_id=fields.get(lead.owner) if change.change_type == "CREATE" else None,
            created_at=_created_at(change),
            needs_lead_fetch=change.change_type == "UPDATE",
        )
        for record_id in change.record_ids
    ]


def from_submitted_referral(event: PlatformEvent, mapping: SchemaMapping, now: datetime) -> ReferralCandidate:
    """A referral captured outside Salesforce: the connector creates its lead, already routed."""
    payload = event.payload
    found = _code(payload.get("Referral_Code__c"), mapping)
    if not payload.get("Last_Name__c"):
        raise BadEvent(f"{SUBMITTED_EVENT} without Last_Name__c: a lead needs a last name")
    if not event.event_uuid:
        raise BadEvent(f"{SUBMITTED_EVENT} without EventUuid: cannot create its lead idempotently")
    fields = {
        lead_field: payload[pe_field]
        for pe_field, lead_field in SUBMITTED_TO_LEAD.items()
        if payload.get(pe_field)
    }
    fields.setdefault("Company", NO_COMPANY)
    channel = _channel(payload.get("Channel__c"))
    raw, code = found if found else ("", "")
    fields[mapping.lead.referral_code] = raw or None
    if channel:
        fields[mapping.lead.channel] = channel
    created = payload.get("CreatedDate")
    created_at = now  # Salesforce always stamps CreatedDate; a gateway's hand-made event may not
    if isinstance(created, str):
        try:
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            pass
        if created_at.tzinfo is None:  # a gateway that omits the offset means UTC, as Salesforce does
            created_at = created_at.replace(tzinfo=UTC)
    return ReferralCandidate(
        source_key=event.key,
        lead_id=None,
        raw_code=raw,
        code=code,
        channel=channel,
        email=fields.get("Email"),
        fields=fields,
        created_at=created_at,
        event_uuid=event.event_uuid,
    )


def referral_candidates(
    events: Sequence[StreamEvent], mapping: SchemaMapping, own_client: str, now: datetime
) -> list[ReferralCandidate]:
    """Candidates among `events`; the connector's own writes never are. `now` dates a submitted referral
    that carries no CreatedDate."""
    candidates: list[ReferralCandidate] = []
    for event in events:
        if isinstance(event, PlatformEvent):
            if event.event_name == SUBMITTED_EVENT:
                candidates.append(from_submitted_referral(event, mapping, now))
        elif event.client_name() != own_client:
            candidates.extend(from_lead_change(event, mapping))
    return candidates
