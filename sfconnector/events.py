"""Streaming messages -> typed domain events.

CometD delivers Change Data Capture, platform event and PushTopic messages as JSON.
This module turns one message into one immutable event or raises `BadEvent` with a
reason fit for the dead-letter table. It does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"})
CHANGE_TYPES = frozenset({"CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_OVERFLOW"}) | GAP_TYPES

# CDC nests compound fields; the pipeline reads flat API names.
_COMPOUND_FIELDS = frozenset(
    {"Name", "Address", "BillingAddress", "ShippingAddress", "MailingAddress", "OtherAddress"}
)


class BadEvent(ValueError):
    """A message that cannot be understood; it goes to the dead letters with this reason."""


@dataclass(frozen=True)
class RecordChange:
    """One Change Data Capture event: a create, update, delete, undelete, gap or overflow."""

    channel: str
    replay_id: int
    entity: str
    change_type: str
    record_ids: tuple[str, ...]
    fields: Mapping[str, Any]
    changed_fields: frozenset[str]
    change_origin: str
    transaction_key: str
    sequence_number: int
    commit_timestamp_ms: int
    commit_user: str

    @property
    def key(self) -> str:
        """Identity of the change, stable across replays and across channels."""
        return f"cdc:{self.transaction_key}:{self.sequence_number}:{self.entity}"

    @property
    def is_gap(self) -> bool:
        return self.change_type in GAP_TYPES

    @property
    def is_overflow(self) -> bool:
        return self.change_type == "GAP_OVERFLOW"

    def client_name(self) -> str | None:
        """The `client=` of the writer's Sforce-Call-Options, as Salesforce reports it."""
        return client_of_origin(self.change_origin)


@dataclass(frozen=True)
class PlatformEvent:
    """One platform event, e.g. Referral_Submitted__e."""

    channel: str
    replay_id: int
    event_name: str
    event_uuid: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"event:{self.event_uuid}" if self.event_uuid else f"event:{self.channel}:{self.replay_id}"


StreamEvent = RecordChange | PlatformEvent


def event_time_ms(message: Mapping[str, Any]) -> int | None:
    """When the event happened, in epoch ms (CDC commitTimestamp, platform event or PushTopic date)."""
    data = message.get("data")
    if not isinstance(data, Mapping):
        return None
    payload = data.get("payload")
    if isinstance(payload, Mapping):
        header = payload.get("ChangeEventHeader")
        if isinstance(header, Mapping) and isinstance(header.get("commitTimestamp"), int):
            stamp: int = header["commitTimestamp"]
            return stamp
        created = payload.get("CreatedDate")
    else:
        event = data.get("event")
        created = event.get("createdDate") if isinstance(event, Mapping) else None
    if isinstance(created, str):
        try:
            moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    return None


def client_of_origin(change_origin: str) -> str | None:
    """`com/salesforce/api/rest/59.0;client=sfconnector` -> `sfconnector`."""
    for part in change_origin.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name == "client":
            return value
    return None


def is_own_change(event: StreamEvent, client_name: str) -> bool:
    """True for changes the connector itself wrote: they must never trigger it again."""
    return isinstance(event, RecordChange) and event.client_name() == client_name


def _flatten(payload: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in payload.items():
        if name == "ChangeEventHeader":
            continue
        if name in _COMPOUND_FIELDS and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[name] = value
    return flat


def _replay_id(data: Mapping[str, Any]) -> int:
    event = data.get("event")
    if not isinstance(event, Mapping) or not isinstance(event.get("replayId"), int):
        raise BadEvent("message has no integer data.event.replayId")
    replay_id: int = event["replayId"]
    return replay_id


def parse_message(message: Mapping[str, Any]) -> StreamEvent:
    """Parse one delivered CometD message (`{"channel": ..., "data": {...}}`)."""
    channel = message.get("channel")
    data = message.get("data")
    if not isinstance(channel, str) or not isinstance(data, Mapping):
        raise BadEvent("message lacks channel or data")
    replay_id = _replay_id(data)
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        raise BadEvent(f"message on {channel} has no payload object")
    if channel.startswith("/event/"):
        event = data.get("event", {})
        return PlatformEvent(
            channel=channel,
            replay_id=replay_id,
            event_name=channel.removeprefix("/event/"),
            event_uuid=event.get("EventUuid") if isinstance(event, Mapping) else None,
            payload=dict(payload),
        )
    header = payload.get("ChangeEventHeader")
    if not isinstance(header, Mapping):
        raise BadEvent(f"change event on {channel} has no ChangeEventHeader")
    change_type = header.get("changeType")
    if change_type not in CHANGE_TYPES:
        raise BadEvent(f"unknown changeType {change_type!r} on {channel}")
    record_ids = header.get("recordIds") or []
    entity = header.get("entityName")
    if not isinstance(entity, str) or not isinstance(record_ids, list):
        raise BadEvent(f"change event on {channel} has a malformed header")
    changed = header.get("changedFields") or []
    return RecordChange(
        channel=channel,
        replay_id=replay_id,
        entity=entity,
        change_type=change_type,
        record_ids=tuple(str(r) for r in record_ids),
        fields=_flatten(payload),
        changed_fields=frozenset(str(f).rpartition(".")[2] for f in changed),
        change_origin=str(header.get("changeOrigin") or ""),
        transaction_key=str(header.get("transactionKey") or ""),
        sequence_number=int(header.get("sequenceNumber") or 0),
        commit_timestamp_ms=int(header.get("commitTimestamp") or 0),
        commit_user=str(header.get("commitUser") or ""),
    )
