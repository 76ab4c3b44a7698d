"""PushTopics: a SOQL query plus notify rules, evaluated against every committed change of its object.

Topics are kept in step with the org from the commits that write PushTopic records (and loaded from the org's
records on first use), so matching a change costs one WHERE evaluation per topic of that object.
Event rules (SFDC `pushtopic_events_intro`): the record must match the WHERE clause after the write; an update
notifies when a changed field is in the set NotifyForFields names (All, Referenced = SELECT + WHERE, Select,
Where); the sobject carries the SELECTed fields and Id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sfemulator.soql import SoqlError, parse
from sfemulator.soql.literals import LikePattern
from sfemulator.soql.query import And, Comparison, Condition, FieldPath, Not, Or, Query, Value
from sfemulator.streaming._bus import EventBody
from sfemulator.streaming._events import iso_ms

log = logging.getLogger("sfemulator.streaming")

_TYPES = {"CREATE": "created", "UPDATE": "updated", "DELETE": "deleted", "UNDELETE": "undeleted"}
_FLAG = {
    "CREATE": "NotifyForOperationCreate",
    "UPDATE": "NotifyForOperationUpdate",
    "DELETE": "NotifyForOperationDelete",
    "UNDELETE": "NotifyForOperationUndelete",
}


@dataclass(frozen=True)
class Topic:
    query: Query
    record_id: str
    name: str
    sobject: str
    select: tuple[str, ...]
    where: Condition | None
    where_fields: frozenset[str]
    notify: frozenset[str]  # change types that notify
    notify_for_fields: str
    active: bool

    def fields_that_notify(self) -> frozenset[str] | None:
        """Lower-cased field names whose change notifies an update; None means any field."""
        mode = self.notify_for_fields.lower()
        if mode == "all":
            return None
        select = frozenset(f.lower() for f in self.select)
        if mode == "select":
            return select
        if mode == "where":
            return self.where_fields
        return select | self.where_fields


def compile_topic(record: Mapping[str, Any]) -> Topic | None:
    """A topic from a PushTopic record, or None when its query cannot be understood."""
    try:
        query = parse(str(record.get("Query") or ""))
    except SoqlError:
        return None
    select = tuple(item.text for item in query.select if isinstance(item, FieldPath))
    if "id" not in {s.lower() for s in select}:
        select = ("Id", *select)
    notify = frozenset(ct for ct, flag in _FLAG.items() if record.get(flag, True) not in (False, "false"))
    return Topic(
        query=query,
        record_id=str(record.get("Id", "")),
        name=str(record.get("Name", "")),
        sobject=query.sobject,
        select=select,
        where=query.where,
        where_fields=frozenset(_fields_in(query.where)),
        notify=notify,
        notify_for_fields=str(record.get("NotifyForFields") or "Referenced"),
        active=record.get("IsActive", True) not in (False, "false"),
    )


def _fields_in(cond: Condition | None) -> set[str]:
    if cond is None:
        return set()
    if isinstance(cond, Comparison):
        return {cond.field.text.lower()} if isinstance(cond.field, FieldPath) else set()
    if isinstance(cond, Not):
        return _fields_in(cond.item)
    out: set[str] = set()
    for item in cond.items:
        out |= _fields_in(item)
    return out


# --- WHERE evaluation over one record -------------------------------------------------------------


def matches(cond: Condition | None, record: Mapping[str, Any]) -> bool:
    if cond is None:
        return True
    if isinstance(cond, And):
        return all(matches(c, record) for c in cond.items)
    if isinstance(cond, Or):
        return any(matches(c, record) for c in cond.items)
    if isinstance(cond, Not):
        return not matches(cond.item, record)
    if not isinstance(cond.field, FieldPath):
        return False
    actual = _lookup(record, cond.field.text)
    if cond.op in ("IN", "NOT IN"):
        values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        found = any(_compare(actual, "=", v) for v in values)
        return found if cond.op == "IN" else not found
    assert isinstance(cond.value, Value)
    return _compare(actual, cond.op, cond.value)


def _lookup(record: Mapping[str, Any], name: str) -> Any:
    return _lookup_item(record, name)[1]


def _lookup_item(record: Mapping[str, Any], name: str) -> tuple[str, Any]:
    """(canonical field name, value); the name as written when the record lacks the field."""
    if name in record:
        return name, record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return key, value
    return name, None


def _normalise(actual: Any, value: Value) -> tuple[Any, Any]:
    expected = value.value
    if value.kind == "string" and isinstance(actual, str):
        return actual.lower(), str(expected).lower()
    if value.kind == "date" and isinstance(actual, str) and isinstance(expected, dt.date):
        return actual[:10], expected.isoformat()
    if value.kind == "datetime" and isinstance(actual, str) and isinstance(expected, dt.datetime):
        try:
            parsed = dt.datetime.fromisoformat(actual.replace("Z", "+00:00"))
        except ValueError:
            return actual, expected.isoformat()
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed, expected
    return actual, expected


def _compare(actual: Any, op: str, value: Value) -> bool:
    if value.kind == "null":
        return (actual is None) == (op == "=") if op in ("=", "!=") else False
    if value.kind == "like":
        return (
            isinstance(actual, str)
            and isinstance(value.value, LikePattern)
            and value.value.matches(actual.lower())
        )
    if actual is None:
        return op == "!="
    left, right = _normalise(actual, value)
    try:
        if op == "=":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
    except TypeError:
        return False
    return False


# --- the org's topics -----------------------------------------------------------------------------


def _org_records(org: Any, sobject: str) -> list[Mapping[str, Any]]:
    """Live records of `sobject` from the org store (its RecordSource face)."""
    records = getattr(org, "records", None)
    if records is None:
        return []
    return [r for r in records(sobject, False) if not r.get("IsDeleted")]


def _org_record(org: Any, record_id: str, deleted: bool = False) -> Mapping[str, Any] | None:
    """The stored record; with `deleted`, also one in the recycle bin (a delete is matched on its last values)."""
    get = getattr(org, "locate" if deleted else "get", None) or getattr(org, "get", None)
    found = get(record_id) if get is not None else None
    return found[1] if found else None


class PushTopics:
    """The org's PushTopics, and the /topic events a commit produces."""

    def __init__(self, org: Any) -> None:
        self._org = org
        self._records: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, Topic] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._predicates: dict[tuple[str, dt.date], Callable[[Mapping[str, Any]], bool]] = {}

    def _load(self) -> None:
        self._records = {str(r["Id"]): dict(r) for r in _org_records(self._org, "PushTopic") if "Id" in r}
        self._rebuild()
        self._loaded = True

    def _rebuild(self) -> None:
        topics = (compile_topic(r) for r in self._records.values())
        self._by_name = {t.name: t for t in topics if t is not None}
        self._predicates = {}

    def reload(self) -> None:
        with self._lock:
            self._loaded = False

    def exists(self, name: str) -> bool:
        with self._lock:
            if not self._loaded or name not in self._by_name:
                self._load()
            topic = self._by_name.get(name)
            return topic is not None and topic.active

    def _apply_topic_change(self, change: Any) -> None:
        rid = change.record_id
        if change.change_type == "DELETE":
            self._records.pop(rid, None)
        elif change.change_type == "UPDATE":
            self._records.setdefault(rid, {"Id": rid}).update(change.fields)
        else:
            self._records[rid] = {"Id": rid, **change.fields}
        self._rebuild()

    def events_for(self, commit: Any) -> list[tuple[str, EventBody]]:
        with self._lock:
            if not self._loaded:
                self._load()
            out: list[tuple[str, EventBody]] = []
            for change in commit.changes:
                if change.entity == "PushTopic":
                    self._apply_topic_change(change)
                    continue
                topics = [
                    t
                    for t in self._by_name.values()
                    if t.active
                    and t.sobject.lower() == change.entity.lower()
                    and change.change_type in t.notify
                ]
                if not topics:
                    continue
                record = self._record_after(change)
                for topic in topics:
                    try:
                        body = self._event(topic, commit, change, record)
                    except Exception:  # one topic's bug never costs the others (or CDC) their events
                        log.exception("streaming.pushtopic_failed topic=%s", topic.name)
                        continue
                    if body is not None:
                        out.append((f"/topic/{topic.name}", body))
            return out

    def _record_after(self, change: Any) -> dict[str, Any]:
        stored = _org_record(self._org, change.record_id, deleted=change.change_type == "DELETE")
        record = dict(stored) if stored else {}
        record.pop("IsDeleted", None)
        if change.change_type in ("CREATE", "UNDELETE", "UPDATE"):
            record.update(change.fields)  # the commit is the truth for what it wrote
        record["Id"] = change.record_id
        return record

    def _predicate(self, topic: Topic) -> Callable[[Mapping[str, Any]], bool]:
        """The WHERE clause with the SOQL executor's own semantics (relative dates fixed per org day)."""
        now = self._org.clock()
        key = (topic.record_id, now.date())
        predicate = self._predicates.get(key)
        if predicate is None:
            try:
                from sfemulator.soql import compile_where
                from sfemulator.soql_source import OrgRecordSource

                predicate = compile_where(topic.query, OrgRecordSource(self._org), now=now)
            except Exception:  # an org without the full store (unit tests): the plain evaluator
                where = topic.where
                predicate = lambda record: matches(where, record)  # noqa: E731
            self._predicates = {k: v for k, v in self._predicates.items() if k[1] == key[1]}
            self._predicates[key] = predicate
        return predicate

    def _event(self, topic: Topic, commit: Any, change: Any, record: Mapping[str, Any]) -> EventBody | None:
        if not self._predicate(topic)(record):
            return None
        if change.change_type == "UPDATE":
            notifying = topic.fields_that_notify()
            changed = {name.lower() for name in change.fields}
            if notifying is not None and not (changed & notifying):
                return None
        sobject = dict(_lookup_item(record, name) for name in topic.select)
        head = (
            '{"data":{"event":{"createdDate":'
            + json.dumps(iso_ms(commit.commit_timestamp_ms))
            + ',"type":'
            + json.dumps(_TYPES[change.change_type])
            + ',"replayId":'
        )
        mid = '},"sobject":' + json.dumps(sobject, separators=(",", ":"), default=str) + '},"channel":'
        return EventBody(head, mid)
