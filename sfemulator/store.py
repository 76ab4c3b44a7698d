"""The org's data: records, transactions, commits, and the rules Salesforce enforces on writes.

Everything a client can observe about a write is decided here (ids, validation errors, derived fields,
assignment rules); the REST layer only translates. Each successful transaction becomes one `Commit`
handed to the commit listeners (the streaming side turns them into change events).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfemulator.assignment import AssignmentRule
from sfemulator.errors import DmlError
from sfemulator.identity import Identity
from sfemulator.ids import IdFactory, looks_like_id, to18
from sfemulator.schema import (
    CONVERTED_LEAD_STATUSES,
    EVENT_ID_PREFIX,
    OPPORTUNITY_STAGES,
    FieldDef,
    ObjectDef,
    Schema,
    build_schema,
)
from sfemulator.soql_source import check_pushtopic_query
from sfemulator.values import coerce, format_datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordChange:
    entity: str  # "Lead", "Advocate__c", or a platform event "Referral_Submitted__e"
    change_type: str  # "CREATE" | "UPDATE" | "DELETE" | "UNDELETE" | "PUBLISH"
    record_id: str  # 18-char id (for PUBLISH: the e01… id)
    # CREATE/UNDELETE/PUBLISH: every non-null field value after the write (JSON-ready: dates and datetimes
    # as the REST API formats them); UPDATE: only changed fields (None when nulled) plus LastModifiedDate;
    # DELETE: {}
    fields: dict[str, Any]
    event_uuid: str | None = None  # PUBLISH only


@dataclass(frozen=True)
class Commit:
    changes: tuple[RecordChange, ...]  # in the order they happened; one Commit = one transaction
    transaction_key: str  # uuid4 string
    commit_user: str  # 18-char user id of the session user
    commit_timestamp_ms: int
    commit_number: int  # increasing
    api: str | None  # "rest", "soap" or None when made by the control API ("UI")
    api_version: str | None  # "59.0"
    client: str | None  # from Sforce-Call-Options client=


@dataclass(frozen=True)
class WriteContext:
    """Who writes, through which API, and whether assignment rules run."""

    user_id: str
    api: str | None = "rest"
    api_version: str | None = None
    client: str | None = None
    auto_assign: bool = True


class Clock:
    """The org's notion of now; tests move it forward instead of sleeping.

    It runs at the machine's speed from `start` (default: the machine's time), so an org can live on a fixed
    date (the demo's) whatever the calendar says.
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.offset = dt.timedelta()
        if start is not None:
            if start.tzinfo is None:
                raise ValueError("the org clock's start needs a time zone")
            self.offset = start - dt.datetime.now(dt.UTC)
        self._started = self.offset

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)

    def reset(self) -> None:
        """Undo every `advance`: back on the time line the clock started on."""
        self.offset = self._started


@dataclass
class Stats:
    """API calls as Salesforce counts them, by kind; events delivered per streaming channel."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    events_by_channel: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, api_call: bool = True) -> None:
        self.by_kind[kind] += 1
        if api_call:
            self.total += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_kind": dict(sorted(self.by_kind.items())),
            "events_by_channel": dict(self.events_by_channel),
        }


@dataclass
class OrgSettings:
    daily_api_requests: int = 100_000
    query_batch_size: int = 2000
    session_seconds: int = 7200
    org_name: str = "sfconnector Demo Org"


_AUTO_NUMBER_RE = re.compile(r"\{(0+)\}")


class Org:
    """One Salesforce org held in memory."""

    def __init__(
        self, schema: Schema | None = None, settings: OrgSettings | None = None, clock: Clock | None = None
    ) -> None:
        self.schema = schema or build_schema()
        self.settings = settings or OrgSettings()
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self._commit_listeners: list[Callable[[Commit], None]] = []
        self._reset_listeners: list[Callable[[], None]] = []
        self._commit_number = 0
        self.tls_dir: Path | None = None
        self._clear()

    # --- state -----------------------------------------------------------------------------------

    def _clear(self) -> None:
        self.ids = IdFactory()
        self.org_id = to18("00D5g00000" + "SfCnX")
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema.objects}
        self._where: dict[str, str] = {}  # id -> sobject
        self._unique: dict[tuple[str, str], dict[str, str]] = {}  # (sobject, field) -> value -> id
        self._auto_numbers: Counter[str] = Counter()
        self.usernames: dict[str, str] = {}  # lower(username) -> user id
        self.identity = Identity(self.org_id, self.clock, self.settings.session_seconds)
        self.assignment_rule: AssignmentRule | None = None
        self.emails: list[dict[str, Any]] = []
        self.queries: list[dict[str, Any]] = []
        self.stats = _reset_stats(getattr(self, "stats", None))
        self.api_limit = self.settings.daily_api_requests
        self.api_used = 0
        self.integration_user_id: str | None = None

    def reset(self) -> None:
        """Forget every record, session and counter (the caller loads a seed next)."""
        with self.lock:
            self._clear()
            self.clock.reset()
        for listener in list(self._reset_listeners):
            listener()

    def add_commit_listener(self, listener: Callable[[Commit], None]) -> None:
        """Called synchronously after each successful commit (never for rolled-back work)."""
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[Commit], None]) -> None:
        if listener in self._commit_listeners:
            self._commit_listeners.remove(listener)

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Called after `reset()` (POST /_emulator/reset), before the seed is loaded again."""
        self._reset_listeners.append(listener)

    def authenticate(self, access_token: str) -> str | None:
        """The user id behind a valid, unexpired access token, or None."""
        return self.identity.authenticate(access_token)

    def now_iso(self) -> str:
        return format_datetime(self.clock())

    # --- reads -----------------------------------------------------------------------------------

    def locate(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """(sobject, record) for a 15- or 18-char id, deleted records included."""
        if not looks_like_id(record_id):
            return None
        rid = to18(record_id)
        sobject = self._where.get(rid)
        if sobject is None:
            return None
        return sobject, self.tables[sobject][rid]

    def get(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """(sobject, record) for a live (not deleted) record."""
        found = self.locate(record_id)
        if found is None or found[1].get("IsDeleted"):
            return None
        return found

    def records(self, sobject: str, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        obj = self.schema.get(sobject)
        if obj is None:
            return iter(())
        rows = self.tables[obj.name].values()
        if include_deleted:
            return iter(list(rows))
        return iter([r for r in rows if not r.get("IsDeleted")])

    def find_by_field(self, sobject: str, fd: FieldDef, value: Any) -> list[str]:
        """Live record ids whose `fd` equals `value` (case-insensitive for text, as ext ids are)."""
        index = self._unique.get((sobject, fd.name))
        if index is not None:
            rid = index.get(_key(value))
            return [rid] if rid else []
        if fd.name == "Id":
            found = self.get(str(value))
            return [found[1]["Id"]] if found and found[0] == sobject else []
        wanted = _key(value)
        return [
            r["Id"]
            for r in self.tables[sobject].values()
            if not r.get("IsDeleted") and r.get(fd.name) is not None and _key(r[fd.name]) == wanted
        ]

    def is_active_user(self, user_id: str) -> bool:
        found = self.get(user_id)
        return found is not None and found[0] == "User" and bool(found[1].get("IsActive"))

    def is_queue(self, group_id: str) -> bool:
        found = self.get(group_id)
        return found is not None and found[0] == "Group" and found[1].get("Type") == "Queue"

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        uid = self.usernames.get(username.lower())
        if uid is None:
            return None
        found = self.get(uid)
        return found[1] if found else None

    # --- API allocation --------------------------------------------------------------------------

    def consume_api_call(self) -> bool:
        """Count one API call against the daily allocation; False when it is spent."""
        with self.lock:
            if self.api_used >= self.api_limit:
                return False
            self.api_used += 1
            return True

    def limit_info(self) -> str:
        return f"api-usage={self.api_used}/{self.api_limit}"

    # --- writes ----------------------------------------------------------------------------------

    def transaction(self, ctx: WriteContext, notify: bool = True) -> Transaction:
        return Transaction(self, ctx, notify)

    def _publish_commit(self, ctx: WriteContext, changes: list[RecordChange]) -> None:
        with self.lock:
            self._commit_number += 1
            number = self._commit_number
        commit = Commit(
            changes=tuple(changes),
            transaction_key=str(uuid.uuid4()),
            commit_user=ctx.user_id,
            commit_timestamp_ms=int(self.clock().timestamp() * 1000),
            commit_number=number,
            api=ctx.api,
            api_version=ctx.api_version,
            client=ctx.client,
        )
        for listener in list(self._commit_listeners):
            try:
                listener(commit)
            except Exception:  # a listener's bug must not undo or fail a committed write
                log.exception("commit listener failed")

    def _index_add(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        for fd in obj.fields.values():
            if fd.unique and record.get(fd.name) is not None:
                self._unique.setdefault((obj.name, fd.name), {})[_key(record[fd.name])] = record["Id"]
        if obj.name == "User" and record.get("Username"):
            self.usernames[str(record["Username"]).lower()] = record["Id"]

    def _index_remove(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        for fd in obj.fields.values():
            if fd.unique and record.get(fd.name) is not None:
                index = self._unique.get((obj.name, fd.name), {})
                if index.get(_key(record[fd.name])) == record["Id"]:
                    del index[_key(record[fd.name])]
        if obj.name == "User" and record.get("Username"):
            self.usernames.pop(str(record["Username"]).lower(), None)


def _reset_stats(previous: Stats | None) -> Stats:
    # Keep the same Stats object: the streaming side holds a reference to events_by_channel.
    if previous is None:
        return Stats()
    previous.total = 0
    previous.by_kind.clear()
    previous.events_by_channel.clear()
    return previous


def _key(value: Any) -> str:
    return str(value).lower()


def _person_name(record: Mapping[str, Any]) -> str | None:
    parts = [record.get("FirstName"), record.get("LastName")]
    name = " ".join(str(p) for p in parts if p)
    return name or None


class Transaction:
    """A unit of work: every write is undone on rollback; a commit publishes one `Commit`.

    Holds the org lock from enter to exit, so a transaction never interleaves with another.
    """

    def __init__(self, org: Org, ctx: WriteContext, notify: bool) -> None:
        self.org = org
        self.ctx = ctx
        self.notify = notify
        self._undo: list[tuple[str, str, dict[str, Any] | None]] = []  # (sobject, id, previous record)
        self.changes: list[RecordChange] = []
        self._done = False
        self._now: str | None = None

    def now_iso(self) -> str:
        """One timestamp for the whole transaction: Salesforce stamps every record of one DML alike, so the
        same change to several records is one change event, not one per millisecond they straddle."""
        if self._now is None:
            self._now = self.org.now_iso()
        return self._now

    def __enter__(self) -> Transaction:
        self.org.lock.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None and not self._done:
                self.commit()
            elif not self._done:
                self.rollback()
        finally:
            self.org.lock.release()

    # savepoints let one failed item of a partial-success request leave no trace
    def savepoint(self) -> tuple[int, int]:
        return len(self._undo), len(self.changes)

    def rollback_to(self, savepoint: tuple[int, int]) -> None:
        undo_len, changes_len = savepoint
        while len(self._undo) > undo_len:
            sobject, rid, previous = self._undo.pop()
            obj = self.org.schema.objects[sobject]
            table = self.org.tables[sobject]
            current = table.get(rid)
            if current is not None:
                self.org._index_remove(obj, current)
            if previous is None:
                table.pop(rid, None)
                self.org._where.pop(rid, None)
            else:
                table[rid] = previous
                if not previous.get("IsDeleted"):
                    self.org._index_add(obj, previous)
        del self.changes[changes_len:]

    def rollback(self) -> None:
        self.rollback_to((0, 0))
        self._done = True

    def commit(self) -> None:
        self._done = True
        if self.changes and self.notify:
            self.org._publish_commit(self.ctx, self.changes)

    # --- operations --------------------------------------------------------------------------------

    def _object(self, sobject: str) -> ObjectDef:
        obj = self.org.schema.get(sobject)
        if obj is None:
            raise DmlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        return obj

    def _coerce_values(self, obj: ObjectDef, values: Mapping[str, Any], creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        readonly: list[str] = []
        for key, raw in values.items():
            if key == "attributes":
                continue
            fd = obj.field(key)
            if fd is None:
                raise DmlError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                )
            if key == "Id" and not creating:
                continue  # collections' update items carry their own Id
            if creating and fd.name == "Id":
                raise DmlError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
                )
            if not (fd.createable if creating else fd.updateable):
                readonly.append(fd.name)
                continue
            value = coerce(fd, raw)
            if value is None and fd.type == "boolean":
                value = False  # checkboxes are never null: a null write clears them
            elif value is None and not fd.nillable and not creating:
                raise DmlError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{fd.name}]", [fd.name]
                )
            out[fd.name] = value
        if readonly:
            verb = "create" if creating else "update"
            raise DmlError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to {verb}/update fields: {', '.join(readonly)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                readonly,
            )
        return out

    def _check_topic(self, obj: ObjectDef, values: Mapping[str, Any]) -> None:
        """A PushTopic's query is checked as Salesforce checks it, so no stored topic can fail later."""
        if obj.name == "PushTopic" and values.get("Query") is not None:
            check_pushtopic_query(self.org, str(values["Query"]))

    def _check_references(self, obj: ObjectDef, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            fd = obj.fields[name]
            if fd.type != "reference" or value is None:
                continue
            target = self.org.schema.by_prefix(value[:3])
            if target is None or target.name not in fd.reference_to:
                raise DmlError(
                    "FIELD_INTEGRITY_EXCEPTION", f"{fd.label}: id value of incorrect type: {value}", [name]
                )
            if name == "OwnerId":
                self._check_owner(obj, value)
            elif self.org.get(value) is None:
                if self.org.locate(value) is not None:
                    raise DmlError("ENTITY_IS_DELETED", "entity is deleted", [name])
                raise DmlError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])

    def _check_owner(self, obj: ObjectDef, owner_id: str) -> None:
        # An inactive owner is refused with INACTIVE_OWNER_OR_USER, "operation performed with inactive user
        # [005…] as owner of <object>": that is the error Salesforce orgs report for it (seen verbatim in
        # many integration logs and help threads). An owner id that is neither a user nor a queue is a
        # FIELD_INTEGRITY_EXCEPTION ("id value of incorrect type"), the same wording as other lookups.
        prefix = owner_id[:3]
        if prefix == "005":
            found = self.org.get(owner_id)
            if found is None:
                raise DmlError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["OwnerId"])
            if not found[1].get("IsActive"):
                raise DmlError(
                    "INACTIVE_OWNER_OR_USER",
                    f"operation performed with inactive user [{owner_id[:15]}] as owner of {obj.name.lower()}",
                    [],
                )
        elif prefix == "00G":
            if not self.org.is_queue(owner_id):
                raise DmlError(
                    "FIELD_INTEGRITY_EXCEPTION", f"Owner ID: id value of incorrect type: {owner_id}", []
                )
        else:
            raise DmlError(
                "FIELD_INTEGRITY_EXCEPTION", f"Owner ID: id value of incorrect type: {owner_id}", []
            )

    def _check_unique(self, obj: ObjectDef, record: Mapping[str, Any], changed: Mapping[str, Any]) -> None:
        for name, value in changed.items():
            fd = obj.fields[name]
            if not fd.unique or value is None:
                continue
            other = self.org._unique.get((obj.name, name), {}).get(_key(value))
            if other is not None and other != record.get("Id"):
                raise DmlError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {name} duplicates value on record with id: {other}",
                    [],
                )

    def _check_required(self, obj: ObjectDef, record: Mapping[str, Any]) -> None:
        missing = [f.name for f in obj.fields.values() if f.required and record.get(f.name) is None]
        if missing:
            raise DmlError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )

    def _derive(self, obj: ObjectDef, record: dict[str, Any], changed: Mapping[str, Any]) -> None:
        if obj.name in ("Lead", "Contact", "User") and ("FirstName" in changed or "LastName" in changed):
            _set(record, "Name", _person_name(record))
        if obj.name == "Opportunity" and "StageName" in changed:
            stage = OPPORTUNITY_STAGES.get(record.get("StageName") or "")
            if stage is not None:
                record["IsClosed"] = stage.is_closed
                record["IsWon"] = stage.is_won
                record["ForecastCategory"] = stage.forecast_category
                if "Probability" not in changed:
                    record["Probability"] = stage.probability
        if obj.name == "Task" and "Status" in changed:
            record["IsClosed"] = record.get("Status") == "Completed"

    def _assign(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        rule = self.org.assignment_rule
        if obj.name != "Lead" or rule is None or not self.ctx.auto_assign:
            return
        owner = rule.choose_owner(record, lambda a: self.org.is_active_user(a) or self.org.is_queue(a))
        if owner is not None:
            record["OwnerId"] = owner

    def insert(self, sobject: str, values: Mapping[str, Any]) -> str:
        obj = self._object(sobject)
        if obj.is_platform_event:
            return self.publish(obj.name, values)[0]
        if not obj.createable:
            raise DmlError(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", f"entity type cannot be inserted: {obj.name}"
            )
        given = self._coerce_values(obj, values, creating=True)
        self._check_topic(obj, given)
        record: dict[str, Any] = {}
        for fd in obj.fields.values():
            if fd.default is not None and (fd.createable or fd.type == "boolean"):
                record[fd.name] = fd.default
        if obj.has_owner:
            record["OwnerId"] = self.ctx.user_id
        for name, value in given.items():
            _set(record, name, value)
        self._check_required(obj, record)
        self._derive(obj, record, record)
        if obj.name in ("Lead", "Contact", "User") and "Name" not in record:
            _set(record, "Name", _person_name(record))
        self._check_references(obj, {k: v for k, v in record.items() if k in given or k == "OwnerId"})
        self._assign(obj, record)
        if obj.auto_number_format:
            self.org._auto_numbers[obj.name] += 1
            record["Name"] = _auto_number(obj.auto_number_format, self.org._auto_numbers[obj.name])
        self._check_unique(obj, record, record)
        now = self.now_iso()
        rid = self.org.ids.new(obj.key_prefix)
        record.update(
            Id=rid,
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=self.ctx.user_id,
            LastModifiedDate=now,
            LastModifiedById=self.ctx.user_id,
            SystemModstamp=now,
        )
        self.org.tables[obj.name][rid] = record
        self.org._where[rid] = obj.name
        self.org._index_add(obj, record)
        self._undo.append((obj.name, rid, None))
        fields = {k: v for k, v in record.items() if v is not None and k not in ("Id", "IsDeleted")}
        self.changes.append(RecordChange(obj.name, "CREATE", rid, fields))
        return rid

    def _live(self, obj: ObjectDef | None, record_id: str) -> tuple[ObjectDef, dict[str, Any]]:
        found = self.org.locate(record_id)
        if found is None or (obj is not None and found[0] != obj.name):
            raise DmlError("NOT_FOUND", "The requested resource does not exist", [], http_status=404)
        if found[1].get("IsDeleted"):
            raise DmlError("ENTITY_IS_DELETED", "entity is deleted", [], http_status=404)
        return self.org.schema.objects[found[0]], found[1]

    def update(self, sobject: str | None, record_id: str, values: Mapping[str, Any]) -> None:
        obj, current = self._live(self._object(sobject) if sobject else None, record_id)
        if not obj.updateable:
            raise DmlError(
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", f"entity type cannot be updated: {obj.name}"
            )
        given = self._coerce_values(obj, values, creating=False)
        self._check_topic(obj, given)
        if obj.name == "Lead" and current.get("IsConverted"):
            raise DmlError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        record = dict(current)
        for name, value in given.items():
            _set(record, name, value)
        self._check_required(obj, record)
        self._derive(obj, record, given)
        changed_refs = {k: v for k, v in given.items() if v != current.get(k)}
        self._check_references(obj, changed_refs)
        self._assign(obj, record)
        self._check_unique(obj, record, {k: v for k, v in record.items() if v != current.get(k)})
        self._replace(obj, current, record, include_last_modified=True)

    def _replace(
        self, obj: ObjectDef, current: dict[str, Any], record: dict[str, Any], include_last_modified: bool
    ) -> None:
        now = self.now_iso()
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = self.ctx.user_id
        record["SystemModstamp"] = now
        rid = record["Id"]
        self.org._index_remove(obj, current)
        self.org.tables[obj.name][rid] = record
        self.org._index_add(obj, record)
        self._undo.append((obj.name, rid, current))
        changed = {
            k: record.get(k)
            for k in set(record) | set(current)
            if record.get(k) != current.get(k) and k not in ("SystemModstamp", "LastModifiedDate")
        }
        if include_last_modified:
            changed["LastModifiedDate"] = now
        self.changes.append(RecordChange(obj.name, "UPDATE", rid, changed))

    def upsert(
        self, sobject: str, ext_field: str, ext_value: str, values: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """(id, created). Raises DmlError NOT_FOUND for an unusable field, MULTIPLE_CHOICES for >1 match."""
        obj = self._object(sobject)
        fd = obj.field(ext_field)
        if fd is None or not (fd.external_id or fd.name == "Id" or fd.unique):
            raise DmlError(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {ext_field}",
                [],
                http_status=404,
            )
        matches = self.org.find_by_field(obj.name, fd, ext_value)
        if len(matches) > 1:
            raise DmlError(
                "MULTIPLE_CHOICES", "More than one record found for external id field", matches, 300
            )
        body = {k: v for k, v in values.items() if k != "attributes"}
        if matches:
            body = {k: v for k, v in body.items() if k.lower() != fd.name.lower()}
            self.update(obj.name, matches[0], body)
            return matches[0], False
        if fd.name != "Id":
            body[fd.name] = ext_value
        elif "Id" in body:
            body.pop("Id")
        return self.insert(obj.name, body), True

    def delete(self, record_id: str, sobject: str | None = None) -> str:
        obj, current = self._live(self._object(sobject) if sobject else None, record_id)
        if not obj.deletable:
            raise DmlError("DELETE_FAILED", f"entity type cannot be deleted: {obj.name}", [])
        record = dict(current)
        record["IsDeleted"] = True
        record["SystemModstamp"] = self.now_iso()
        rid = record["Id"]
        self.org._index_remove(obj, current)
        self.org.tables[obj.name][rid] = record
        self._undo.append((obj.name, rid, current))
        self.changes.append(RecordChange(obj.name, "DELETE", rid, {}))
        return rid

    def undelete(self, record_id: str) -> str:
        found = self.org.locate(record_id)
        if found is None:
            raise DmlError("INVALID_ID_FIELD", "invalid record id", [], http_status=404)
        obj = self.org.schema.objects[found[0]]
        current = found[1]
        if not current.get("IsDeleted"):
            raise DmlError("UNDELETE_FAILED", "Entity is not in the recycle bin", [])
        record = dict(current)
        record["IsDeleted"] = False
        self._check_unique(obj, record, record)
        rid = record["Id"]
        self.org.tables[obj.name][rid] = record
        self.org._index_add(obj, record)
        self._undo.append((obj.name, rid, current))
        fields = {k: v for k, v in record.items() if v is not None and k not in ("Id", "IsDeleted")}
        self.changes.append(RecordChange(obj.name, "UNDELETE", rid, fields))
        return rid

    def publish(self, sobject: str, values: Mapping[str, Any]) -> tuple[str, str]:
        """Publish a platform event: nothing is stored; (event id, EventUuid)."""
        obj = self._object(sobject)
        given = self._coerce_values(obj, values, creating=True)
        self._check_required(obj, given)
        event_uuid = str(uuid.uuid4())
        rid = self.org.ids.new(EVENT_ID_PREFIX)
        fields = {k: v for k, v in given.items() if v is not None}
        fields.update(CreatedDate=self.now_iso(), CreatedById=self.ctx.user_id, EventUuid=event_uuid)
        self.changes.append(RecordChange(obj.name, "PUBLISH", rid, fields, event_uuid))
        return rid, event_uuid

    def convert_lead(self, lead_id: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """What a rep's Convert button does: Account, Contact, optional Opportunity, then the Lead.

        Emits CREATE Account, CREATE Contact, CREATE Opportunity, UPDATE Lead in that order; the Lead change
        carries no LastModifiedDate (notes, gotcha 20).
        """
        obj, lead = self._live(self.org.schema.objects["Lead"], lead_id)
        if lead.get("IsConverted"):
            raise DmlError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        status = str(options.get("convertedStatus") or "Closed - Converted")
        if status not in CONVERTED_LEAD_STATUSES:
            raise DmlError("INVALID_STATUS", f"invalid convertedStatus: {status}", [])
        owner = str(options.get("ownerId") or lead["OwnerId"])
        if not self.org.is_active_user(owner):
            owner = self.ctx.user_id
        common = {"OwnerId": owner}
        account_id = options.get("accountId")
        if account_id:
            self._live(self.org.schema.objects["Account"], str(account_id))
            account_id = to18(str(account_id))
        else:
            account_id = self.insert(
                "Account",
                {
                    **common,
                    "Name": lead.get("Company") or _person_name(lead),
                    **_pick(lead, _ACCOUNT_FROM_LEAD),
                },
            )
        contact_id = self.insert(
            "Contact", {**common, "AccountId": account_id, **_pick(lead, _CONTACT_FROM_LEAD)}
        )
        opportunity_id = None
        if options.get("createOpportunity", True) and not options.get("doNotCreateOpportunity"):
            close = (self.org.clock() + dt.timedelta(days=30)).date().isoformat()
            opportunity_id = self.insert(
                "Opportunity",
                {
                    **common,
                    "AccountId": account_id,
                    "Name": options.get("opportunityName") or f"{lead.get('Company') or lead.get('Name')}-",
                    "StageName": options.get("stageName") or "Prospecting",
                    "CloseDate": options.get("closeDate") or close,
                    "LeadSource": lead.get("LeadSource"),
                },
            )
        record = dict(lead)
        record.update(
            IsConverted=True,
            ConvertedDate=self.org.clock().date().isoformat(),
            ConvertedAccountId=account_id,
            ConvertedContactId=contact_id,
            ConvertedOpportunityId=opportunity_id,
            Status=status,
        )
        _set(record, "ConvertedOpportunityId", opportunity_id)
        self._replace(obj, lead, record, include_last_modified=False)
        return {
            "leadId": lead["Id"],
            "accountId": account_id,
            "contactId": contact_id,
            "opportunityId": opportunity_id,
            "success": True,
            "errors": [],
        }


_ACCOUNT_FROM_LEAD = {
    "Street": "BillingStreet",
    "City": "BillingCity",
    "State": "BillingState",
    "PostalCode": "BillingPostalCode",
    "Country": "BillingCountry",
    "Phone": "Phone",
    "Website": "Website",
    "Industry": "Industry",
}
_CONTACT_FROM_LEAD = {
    "Salutation": "Salutation",
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Title": "Title",
    "Email": "Email",
    "Phone": "Phone",
    "MobilePhone": "MobilePhone",
    "LeadSource": "LeadSource",
    "Street": "MailingStreet",
    "City": "MailingCity",
    "State": "MailingState",
    "PostalCode": "MailingPostalCode",
    "Country": "MailingCountry",
}


def _pick(record: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    return {target: record[source] for source, target in mapping.items() if record.get(source) is not None}


def _set(record: dict[str, Any], name: str, value: Any) -> None:
    # Records keep only non-null values: a 100,000-record org stays small.
    if value is None:
        record.pop(name, None)
    else:
        record[name] = value


def _auto_number(fmt: str, n: int) -> str:
    return _AUTO_NUMBER_RE.sub(lambda m: str(n).zfill(len(m.group(1))), fmt)
