"""Commits -> Change Data Capture and platform event messages, serialised as Salesforce sends them over CometD.

Pure functions: a commit in, (channel, body) pairs out. The shapes follow salesforce-notes.md section 5.5:
compound fields nest (`Name`, `Address`, `BillingAddress`...), UPDATE carries only changed fields with explicit
nulls, DELETE carries none, and `changedFields` names nested parts as `Name.LastName`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sfemulator.streaming._bus import EventBody

ALL_CHANGE_EVENTS = "/data/ChangeEvents"
UI_CHANGE_ORIGIN = "com/salesforce/api/soap/60.0;client=SfdcInternalAPI/"

_NAME_PARTS = ("Salutation", "FirstName", "MiddleName", "LastName", "Suffix")
_ADDRESS_PARTS = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "StateCode",
    "CountryCode",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
)


def _address(prefix: str, compound: str) -> dict[str, tuple[str, str]]:
    return {prefix + part: (compound, part) for part in _ADDRESS_PARTS}


_NAME = {part: ("Name", part) for part in _NAME_PARTS}
# field API name -> (compound field, part) for the standard objects whose CDC payloads nest them
COMPOUND_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "Lead": {**_NAME, **_address("", "Address")},
    "Contact": {**_NAME, **_address("Mailing", "MailingAddress"), **_address("Other", "OtherAddress")},
    "Account": {**_address("Billing", "BillingAddress"), **_address("Shipping", "ShippingAddress")},
}
_COMPOUND_NAMES = {entity: {c for c, _ in parts.values()} for entity, parts in COMPOUND_FIELDS.items()}
# Never in a change event body: the id travels in recordIds, the rest are not tracked by CDC.
_NOT_IN_BODY = frozenset(
    {"Id", "IsDeleted", "attributes", "SystemModstamp", "LastViewedDate", "LastReferencedDate"}
)
_NOT_IN_PE_BODY = frozenset({"Id", "attributes", "ReplayId", "EventUuid"})


class ChangeLike(Protocol):
    @property
    def entity(self) -> str: ...
    @property
    def change_type(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def fields(self) -> dict[str, Any]: ...
    @property
    def event_uuid(self) -> str | None: ...


class CommitLike(Protocol):
    @property
    def changes(self) -> tuple[Any, ...]: ...
    @property
    def transaction_key(self) -> str: ...
    @property
    def commit_user(self) -> str: ...
    @property
    def commit_timestamp_ms(self) -> int: ...
    @property
    def commit_number(self) -> int: ...
    @property
    def api(self) -> str | None: ...
    @property
    def api_version(self) -> str | None: ...
    @property
    def client(self) -> str | None: ...


_REST_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+0000$")


def event_value(value: Any) -> Any:
    """Datetimes as event payloads carry them (`...000Z`), not as the REST API does (`...000+0000`)."""
    if isinstance(value, str) and _REST_DATETIME.match(value):
        return value[:-5] + "Z"
    return value


def schema_id(name: str) -> str:
    """A stable 22-character schema id per entity or event, shaped like Salesforce's."""
    digest = hashlib.sha256(f"schema:{name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def iso_ms(epoch_ms: int) -> str:
    """`2017-04-09T18:31:40.517Z`, the date format of streaming payloads."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def cdc_channel(entity: str) -> str:
    """/data/LeadChangeEvent; custom objects drop the `c`: /data/Advocate__ChangeEvent."""
    base = entity[:-1] if entity.endswith("__c") else entity
    return f"/data/{base}ChangeEvent"


def pe_channel(entity: str) -> str:
    return f"/event/{entity}"


def is_platform_event(entity: str) -> bool:
    return entity.endswith("__e")


def change_origin(api: str | None, api_version: str | None, client: str | None) -> str:
    """`com/salesforce/api/rest/59.0;client=NAME`; `;client=` only when the caller named itself."""
    if not api or not api_version:
        return UI_CHANGE_ORIGIN
    origin = f"com/salesforce/api/{api}/{api_version}"
    return f"{origin};client={client}" if client else origin


def nest_fields(
    entity: str, fields: Mapping[str, Any], *, keep_nulls: bool
) -> tuple[dict[str, Any], list[str]]:
    """Body fields with compound parts nested, and the changedFields names (`Name.LastName`)."""
    compounds = COMPOUND_FIELDS.get(entity, {})
    body: dict[str, Any] = {}
    names: list[str] = []
    for name, value in fields.items():
        if name in _NOT_IN_BODY or (value is None and not keep_nulls):
            continue
        part = compounds.get(name)
        if part is not None:
            compound, sub = part
            nested = body.get(compound)
            if not isinstance(nested, dict):
                nested = body[compound] = {}
            nested[sub] = event_value(value)
            names.append(f"{compound}.{sub}")
        elif name in _COMPOUND_NAMES.get(entity, ()):
            continue  # the read-only full value of a compound field is never sent
        else:
            body[name] = event_value(value)
            names.append(name)
    return body, names


def change_event_header(
    commit: CommitLike,
    *,
    entity: str,
    record_ids: list[str],
    change_type: str,
    sequence_number: int,
    changed_fields: list[str] | None,
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change_type,
        "changeOrigin": change_origin(commit.api, commit.api_version, commit.client),
        "transactionKey": commit.transaction_key,
        "sequenceNumber": sequence_number,
        "commitTimestamp": commit.commit_timestamp_ms,
        "commitUser": commit.commit_user,
        "commitNumber": commit.commit_number,
    }
    if changed_fields is not None:
        header["changedFields"] = changed_fields
    return header


def _data_body(schema: str, payload: Mapping[str, Any], event_prefix: str = "") -> EventBody:
    head = (
        '{"data":{"schema":'
        + json.dumps(schema)
        + ',"payload":'
        + json.dumps(payload, separators=(",", ":"), default=str)
        + ',"event":{'
        + event_prefix
        + '"replayId":'
    )
    return EventBody(head, '}},"channel":')


def _cdc_fields(change: ChangeLike) -> tuple[dict[str, Any], list[str] | None]:
    """The event body fields of one change and its changedFields (UPDATE only)."""
    change_type = change.change_type
    if change_type == "DELETE":
        return {}, None
    payload, names = nest_fields(change.entity, change.fields, keep_nulls=change_type == "UPDATE")
    return payload, names if change_type == "UPDATE" else None


def cdc_body(
    commit: CommitLike, change: ChangeLike, sequence_number: int, record_ids: list[str] | None = None
) -> EventBody:
    """One change event (shared by the entity channel and /data/ChangeEvents)."""
    payload, changed = _cdc_fields(change)
    payload["ChangeEventHeader"] = change_event_header(
        commit,
        entity=change.entity,
        record_ids=record_ids or [change.record_id],
        change_type=change.change_type,
        sequence_number=sequence_number,
        changed_fields=changed,
    )
    return _data_body(schema_id(change.entity), payload)


def pe_body(commit: CommitLike, change: ChangeLike) -> EventBody:
    payload = {
        k: event_value(v) for k, v in change.fields.items() if k not in _NOT_IN_PE_BODY and v is not None
    }
    payload.setdefault("CreatedDate", iso_ms(commit.commit_timestamp_ms))
    payload.setdefault("CreatedById", commit.commit_user)
    event_uuid = change.event_uuid or str(uuid.uuid4())
    return _data_body(schema_id(change.entity), payload, '"EventUuid":' + json.dumps(event_uuid) + ",")


def header_only_body(header: Mapping[str, Any], entity: str) -> EventBody:
    """Gap and overflow events: the header and nothing else."""
    return _data_body(schema_id(entity), {"ChangeEventHeader": dict(header)})


def commit_events(commit: CommitLike, excluded_entities: Iterable[str] = ()) -> list[tuple[str, EventBody]]:
    """Every CDC and platform event message a commit publishes, in commit order."""
    excluded = set(excluded_entities)
    # Salesforce sends one change event for the same change to several records of one object in one
    # transaction (notes §5.5: recordIds holds them all), at the place of the first of them.
    groups: dict[tuple[str, str, str], list[str]] = {}
    slots: list[tuple[str, Any]] = []  # ("pe", change) | ("cdc", (change, its group's record ids))
    for change in commit.changes:
        if change.change_type == "PUBLISH" or is_platform_event(change.entity):
            slots.append(("pe", change))
            continue
        if change.entity in excluded:
            continue
        fields, changed = _cdc_fields(change)
        key = (change.entity, change.change_type, json.dumps([fields, changed], sort_keys=True, default=str))
        ids = groups.get(key)
        if ids is not None and change.record_id not in ids:
            ids.append(change.record_id)
            continue
        groups[key] = ids = [change.record_id]
        slots.append(("cdc", (change, ids)))
    out: list[tuple[str, EventBody]] = []
    sequence = 0
    for kind, item in slots:
        if kind == "pe":
            out.append((pe_channel(item.entity), pe_body(commit, item)))
            continue
        change, ids = item
        sequence += 1
        body = cdc_body(commit, change, sequence, ids)
        out.append((cdc_channel(change.entity), body))
        out.append((ALL_CHANGE_EVENTS, body))
    return out
