"""Outbox writer: drains decided writes from SQLite to Salesforce, exactly once in effect.

One :meth:`OutboxWriter.drain_once` takes the due entries and runs *rounds*. A round has two phases:

1. **reads**: for conditional updates, ``SELECT Id, <expect fields> FROM X WHERE Id IN (...)``; for
   ``create_once`` entries, ``SELECT Id, External_Key__c FROM X WHERE External_Key__c IN (...)``;
2. **writes**: one sObject Collections call per kind (update; upsert per (object, external id field); create),
   packed into ONE Composite request when there are several (Composite counts as one API call and takes up
   to 5 collection/query subrequests), plus one ``emailSimple`` call for all emails.

Every answer is applied to the store per entry at once: success -> done (with the record id); a transient
per-record or per-call failure -> another round in place (under the retry policy), then ``mark_retry`` with a
persisted jittered exponential backoff; a permanent failure -> dead letter with the reason.
``REQUEST_LIMIT_EXCEEDED`` or the API throttle stops the drain and reports when to resume.

Why this is crash-safe: updates and upserts are idempotent; a conditional update whose record already holds
the target counts as done; ``create_once`` looks for its key before creating, so a crash between the create
and ``mark_done`` finds the record next time instead of creating a twin. Emails are the exception: a crash
between the send and ``mark_done`` sends that email again (at-least-once), which beats losing it.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import structlog

from sfconnector.clock import Clock, system_clock
from sfconnector.errors import RequestLimitExceeded, SalesforceApiError, SfconnectorError
from sfconnector.retry import SALESFORCE_WRITE, RetryPolicy, backoff_seconds
from sfconnector.salesforce import (
    ApiErrorItem,
    ApiUsage,
    CompositeSubrequest,
    SalesforceClient,
    SaveResult,
    item_retryable,
    throttle_delay,
)
from sfconnector.salesforce.client import parse_save_results
from sfconnector.salesforce.errors import error_from_body
from sfconnector.soql import IdList, chunked_in, is_record_id, soql
from sfconnector.state import CREATE_OPS, OutboxEntry, StateStore

_log = structlog.get_logger("sfconnector.writer")

DEFAULT_CREATE_KEY_FIELD = "External_Key__c"
COLLECTION_MAX = 200
COMPOSITE_COLLECTIONS_MAX = 5  # query / collection subrequests allowed in one Composite request
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


@dataclass(frozen=True)
class DrainReport:
    """What one drain did."""

    done: int = 0
    retried: int = 0
    dead: int = 0
    paused_until: datetime | None = None
    api_calls: int = 0
    skipped: int = 0  # conditional updates no longer applicable (a person changed the record)
    deferred: int = 0  # waiting for the entry they depend on
    completed: tuple[str, ...] = ()  # keys of the entries written (done) in this drain

    @property
    def idle(self) -> bool:
        """Nothing was due (or everything due was waiting on another entry)."""
        return self.done + self.retried + self.dead + self.skipped == 0 and self.paused_until is None


class _Paused(Exception):
    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class _RoundFailed(SfconnectorError):
    """Some entries of a round failed transiently; the retry policy runs another round for them."""

    retryable = True

    def __init__(self, entries: list[OutboxEntry], errors: dict[str, str]) -> None:
        super().__init__(
            f"{len(entries)} outbox entries failed transiently: {next(iter(errors.values()), '')}"
        )
        self.entries = entries
        self.errors = errors


AUTO_ASSIGN = "Sforce-Auto-Assign"


@dataclass
class _Tally:
    done: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, OutboxEntry] = field(default_factory=dict)  # transient failures of this round
    errors: dict[str, str] = field(default_factory=dict)
    solo: set[str] = field(default_factory=set)  # entries to send one per call (isolating a bad record)


@dataclass
class _WriteOp:
    ref: str
    kind: str  # "update" | "upsert" | "create"
    sobject: str
    ext_field: str | None
    entries: list[OutboxEntry]
    records: list[dict[str, Any]]
    assign: bool = False  # create with the org's assignment rules (Sforce-Auto-Assign: TRUE)

    def subrequest(self) -> CompositeSubrequest:
        body = {"allOrNone": False, "records": self.records}
        if self.kind == "update":
            return CompositeSubrequest("PATCH", "composite/sobjects", self.ref, body)
        if self.kind == "upsert":
            return CompositeSubrequest(
                "PATCH", f"composite/sobjects/{self.sobject}/{self.ext_field}", self.ref, body
            )
        headers = {AUTO_ASSIGN: "TRUE"} if self.assign else None
        return CompositeSubrequest("POST", "composite/sobjects", self.ref, body, http_headers=headers)


class OutboxWriter:
    """Drains the outbox of a :class:`StateStore` through a :class:`SalesforceClient`."""

    def __init__(
        self,
        state: StateStore,
        client: SalesforceClient,
        *,
        batch_size: int = 200,
        retry_policy: RetryPolicy = SALESFORCE_WRITE,
        max_attempts: int = 12,
        backoff_initial_s: float = 5.0,
        backoff_max_s: float = 900.0,
        api_reserve: float = 0.10,
        limit_pause_s: float = 900.0,
        use_composite: bool = True,
        rand: Callable[[], float] = random.random,
        clock: Clock = system_clock,
    ) -> None:
        self._state = state
        self._clock = clock
        self._client = client
        self._batch_size = max(1, batch_size)
        self._retry = retry_policy
        self._max_attempts = max(1, max_attempts)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._api_reserve = api_reserve
        self._limit_pause = limit_pause_s
        self._use_composite = use_composite
        self._rand = rand
        self._pause: tuple[ApiUsage, datetime] | None = None  # the usage reading a pause was decided on

    # -- public -----------------------------------------------------------------------------------------

    def drain_once(self, now: datetime | None = None) -> DrainReport:
        """Write the entries due at ``now`` (default: the writer's clock); never sleeps for throttling."""
        now = now or self._clock()
        calls_before = self._client.api_calls
        tally = _Tally()
        paused_until: datetime | None = None
        deferred = 0
        try:
            self._check_throttle(now)
            entries = self._state.pending_outbox(self._batch_size, now)
            ready = [e for e in entries if not e.depends_on]
            dependent, waiting = self._resolve_dependencies([e for e in entries if e.depends_on], tally)
            # Two entries for the same record wait for separate drains: a collection must not carry the
            # same record twice, and the later entry must see the earlier one applied.
            targets: set[tuple[str, ...]] = set()
            ready, held = _one_per_target([*ready, *dependent], targets)
            for _ in range(3):  # later rounds take entries whose dependency was written in this drain
                if not ready:
                    break
                self._run_with_retries(ready, tally, now)
                ready, waiting = self._resolve_dependencies(waiting, tally)
                ready, later = _one_per_target(ready, targets)
                held.extend(later)
            deferred = len(waiting) + len(held)
            self._defer_waiting(waiting, now)
        except _Paused as paused:
            paused_until = paused.until
            _log.warning("outbox.paused", until=paused.until.isoformat(), reason=paused.reason)
        report = DrainReport(
            done=tally.done,
            retried=tally.retried,
            dead=tally.dead,
            paused_until=paused_until,
            api_calls=self._client.api_calls - calls_before,
            skipped=tally.skipped,
            deferred=deferred,
            completed=tuple(tally.completed),
        )
        if not report.idle:
            _log.info(
                "outbox.drained",
                done=report.done,
                retried=report.retried,
                dead=report.dead,
                skipped=report.skipped,
                deferred=report.deferred,
                api_calls=report.api_calls,
            )
        return report

    def next_due(self) -> datetime | None:
        """When the earliest open entry becomes due (None: the outbox is empty); a drain loop sleeps until
        then (or until new decisions are committed), instead of polling."""
        return self._state.next_outbox_due()

    # -- rounds -----------------------------------------------------------------------------------------

    def _run_with_retries(self, entries: list[OutboxEntry], tally: _Tally, now: datetime) -> None:
        remaining = entries
        try:
            for attempt in self._retry.retrying():
                with attempt:
                    tally.failed.clear()
                    tally.errors.clear()
                    self._round(remaining, tally, now)
                    if tally.failed:
                        remaining = list(tally.failed.values())
                        raise _RoundFailed(remaining, dict(tally.errors))
        except _RoundFailed as failed:
            for entry in failed.entries:
                self._schedule_retry(entry, failed.errors.get(entry.key, "transient failure"), now, tally)

    def _round(self, entries: list[OutboxEntry], tally: _Tally, now: datetime) -> None:
        updates = [e for e in entries if e.op == "update"]
        upserts = [e for e in entries if e.op == "upsert"]
        creates = [e for e in entries if e.op in CREATE_OPS]
        emails = [e for e in entries if e.op == "email"]

        for entry in [*updates, *creates]:
            problem = _invalid(entry)
            if problem:
                self._dead(entry, problem, tally)
        updates = [e for e in updates if not _invalid(e)]
        creates = [e for e in creates if not _invalid(e)]
        upserts_ok = []
        for entry in upserts:
            problem = _invalid(entry)
            if problem:
                self._dead(entry, problem, tally)
            else:
                upserts_ok.append(entry)

        # phase 1: reads. Upserts are read by key when they are conditional, or when an update of the same
        # object is in the round: the one record an upsert and an update may both address is found by id.
        conditional = [e for e in updates if e.expect]
        updated_objects = {e.sobject for e in updates}
        keyed = [e for e in upserts_ok if e.expect or e.sobject in updated_objects]
        queries = self._precheck_queries(conditional, creates, keyed)
        rows = self._run_queries(queries, tally, now)
        upserts_ok, updates = self._one_write_per_record(keyed, upserts_ok, updates, rows, tally)

        # decide
        to_update = [e for e in updates if not e.expect]
        for entry in (e for e in updates if e.expect):
            if entry.key in tally.failed:
                continue
            decision = _conditional_decision(entry, rows.get(("update", entry.sobject), {}))
            if decision == "write":
                to_update.append(entry)
            elif decision == "already":
                self._done(entry, entry.record_id, tally)
            elif decision == "missing":
                self._dead(entry, f"{entry.sobject} {entry.record_id} not found (deleted?)", tally)
            else:
                self._skip(entry, decision, tally)
        to_create = []
        for entry in creates:
            if entry.key in tally.failed:
                continue
            key_field = entry.external_id_field or DEFAULT_CREATE_KEY_FIELD
            existing = rows.get(("create", f"{entry.sobject}.{key_field}"), {}).get(
                _create_key(entry).lower()
            )
            if existing is not None:
                _log.info("outbox.create_found_existing", key=entry.key, record_id=existing.get("Id"))
                self._done(entry, str(existing.get("Id")), tally)
            else:
                to_create.append(entry)

        # phase 2: writes
        ops = self._write_ops(to_update, upserts_ok, to_create, tally)
        self._run_writes(ops, tally, now)
        if emails:
            self._send_emails(emails, tally, now)

    def _one_write_per_record(
        self,
        keyed: list[OutboxEntry],
        upserts: list[OutboxEntry],
        updates: list[OutboxEntry],
        rows: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]],
        tally: _Tally,
    ) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
        """Settle conditional upserts against the record their key finds, and hold back every write to a
        record an earlier write (by decision order) of this round also addresses: an upsert by key and an
        update by id of the same record land one after the other, oldest first, never reordered."""
        record_of: dict[str, str] = {}  # entry key -> record id (15)
        settled: set[str] = set()
        for entry in keyed:
            if entry.key in tally.failed:
                settled.add(entry.key)
                continue
            ext = str(entry.external_id_field)
            row = rows.get(("upsert", f"{entry.sobject}.{ext}"), {}).get(str(entry.fields.get(ext)).lower())
            if row is None:
                continue  # creates its record: nothing else can address it yet
            record_of[entry.key] = str(row.get("Id") or "")[:15]
            if entry.expect:
                decision = _conditional_decision(
                    replace(entry, record_id=str(row.get("Id"))), {record_of[entry.key]: row}
                )
                if decision == "already":
                    self._done(entry, str(row.get("Id")), tally)
                    settled.add(entry.key)
                elif decision != "write":
                    self._skip(entry, decision, tally)
                    settled.add(entry.key)
        for entry in updates:
            record_of.setdefault(entry.key, str(entry.record_id)[:15])
        first: dict[str, OutboxEntry] = {}
        held: set[str] = set()
        for entry in sorted((e for e in [*upserts, *updates] if e.key not in settled), key=lambda e: e.seq):
            record = record_of.get(entry.key)
            if record is None:
                continue
            if record in first:
                held.add(entry.key)  # stays pending: the next drain sends it after the earlier one landed
                _log.info("outbox.held_for_order", key=entry.key, after=first[record].key)
            else:
                first[record] = entry
        return (
            [e for e in upserts if e.key not in settled and e.key not in held],
            [e for e in updates if e.key not in held],
        )

    # -- phase 1 ----------------------------------------------------------------------------------------

    def _precheck_queries(
        self, conditional: list[OutboxEntry], creates: list[OutboxEntry], keyed: Sequence[OutboxEntry] = ()
    ) -> list[tuple[tuple[str, str], str, list[OutboxEntry], str]]:
        """(group, soql, entries, key column) for every pre-check; IN lists kept short (URI limits)."""
        queries: list[tuple[tuple[str, str], str, list[OutboxEntry], str]] = []
        by_upsert_key: dict[tuple[str, str], list[OutboxEntry]] = defaultdict(list)
        for entry in keyed:
            by_upsert_key[(entry.sobject, str(entry.external_id_field))].append(entry)
        for (sobject, ext), group in by_upsert_key.items():
            columns = "".join(
                f", {f}" for f in sorted({f for e in group for f in (e.expect or {})} - {"Id", ext})
            )
            for keys in chunked_in(sorted({str(e.fields.get(ext)) for e in group})):
                wanted = set(keys)
                chunk = [e for e in group if str(e.fields.get(ext)) in wanted]
                query = soql(f"SELECT Id, {ext}{columns} FROM {sobject} WHERE {ext} IN {{keys}}", keys=keys)
                queries.append((("upsert", f"{sobject}.{ext}"), query, chunk, ext))
        by_object: dict[str, list[OutboxEntry]] = defaultdict(list)
        for entry in conditional:
            by_object[entry.sobject].append(entry)
        for sobject, group in by_object.items():
            columns = "".join(f", {f}" for f in sorted({f for e in group for f in (e.expect or {})} - {"Id"}))
            for ids in chunked_in(sorted({str(e.record_id) for e in group})):
                wanted = set(ids)
                chunk = [e for e in group if e.record_id in wanted]
                query = soql(f"SELECT Id{columns} FROM {sobject} WHERE Id IN {{ids}}", ids=IdList(ids))
                queries.append((("update", sobject), query, chunk, "Id"))
        by_key: dict[tuple[str, str], list[OutboxEntry]] = defaultdict(list)
        for entry in creates:
            by_key[(entry.sobject, entry.external_id_field or DEFAULT_CREATE_KEY_FIELD)].append(entry)
        for (sobject, key_field), group in by_key.items():
            for keys in chunked_in(sorted({_create_key(e) for e in group})):
                wanted = set(keys)
                chunk = [e for e in group if _create_key(e) in wanted]
                query = soql(
                    f"SELECT Id, {key_field} FROM {sobject} WHERE {key_field} IN {{keys}}", keys=keys
                )
                queries.append((("create", f"{sobject}.{key_field}"), query, chunk, key_field))
        return queries

    def _run_queries(
        self,
        queries: list[tuple[tuple[str, str], str, list[OutboxEntry], str]],
        tally: _Tally,
        now: datetime,
    ) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """Rows of every pre-check, indexed by group and key (ids by 15-char prefix, keys lower-cased)."""
        rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)

        def index(group: tuple[str, str], key_column: str, records: list[dict[str, Any]]) -> None:
            for record in records:
                raw = str(record.get(key_column) or "")
                rows[group][raw[:15] if key_column == "Id" else raw.lower()] = record

        if self._use_composite and len(queries) > 1:
            for chunk in _chunks(queries, COMPOSITE_COLLECTIONS_MAX):
                subs = [
                    CompositeSubrequest("GET", f"query?q={_urlquote(soql)}", f"q{i}")
                    for i, (_, soql, _, _) in enumerate(chunk)
                ]
                try:
                    self._check_throttle(now)
                    answers = self._client.composite(subs)
                except SalesforceApiError as exc:
                    self._call_failed([e for q in chunk for e in q[2]], exc, tally, now)
                    continue
                for (group, _, entries, key_column), answer in zip(chunk, answers, strict=False):
                    if answer.ok and isinstance(answer.body, Mapping):
                        index(group, key_column, list(answer.body.get("records", [])))
                    else:
                        self._call_failed(entries, error_from_body(answer.status, answer.body), tally, now)
        else:
            for group, soql, entries, key_column in queries:
                try:
                    self._check_throttle(now)
                    index(group, key_column, self._client.query(soql))
                except SalesforceApiError as exc:
                    self._call_failed(entries, exc, tally, now)
        return rows

    # -- phase 2 ----------------------------------------------------------------------------------------

    def _write_ops(
        self,
        updates: list[OutboxEntry],
        upserts: list[OutboxEntry],
        creates: list[OutboxEntry],
        tally: _Tally,
    ) -> list[_WriteOp]:
        ops: list[_WriteOp] = []
        counter = iter(range(10_000))

        def add(
            kind: str, sobject: str, ext: str | None, group: list[OutboxEntry], assign: bool = False
        ) -> None:
            normal = [e for e in group if e.key not in tally.solo]
            solos = [[e] for e in group if e.key in tally.solo]
            for chunk in [*_chunks(normal, COLLECTION_MAX), *solos]:
                records = [_record(kind, e) for e in chunk]
                ops.append(_WriteOp(f"w{next(counter)}", kind, sobject, ext, chunk, records, assign))

        if updates:
            add("update", "", None, updates)
        by_upsert: dict[tuple[str, str], list[OutboxEntry]] = defaultdict(list)
        for entry in upserts:
            by_upsert[(entry.sobject, str(entry.external_id_field))].append(entry)
        for (sobject, ext), group in by_upsert.items():
            add("upsert", sobject, ext, group)
        # A create the org's assignment rules must see goes in its own call: the header is per request.
        plain = [e for e in creates if e.op != "create_assigned"]
        assigned = [e for e in creates if e.op == "create_assigned"]
        if plain:
            add("create", "", None, plain)
        if assigned:
            add("create", "", None, assigned, assign=True)
        return ops

    def _run_writes(self, ops: list[_WriteOp], tally: _Tally, now: datetime) -> None:
        if self._use_composite and len(ops) > 1:
            for chunk in _chunks(ops, COMPOSITE_COLLECTIONS_MAX):
                if len(chunk) == 1:
                    self._run_write_direct(chunk[0], tally, now)
                    continue
                try:
                    self._check_throttle(now)
                    answers = self._client.composite([op.subrequest() for op in chunk])
                except SalesforceApiError as exc:
                    self._call_failed([e for op in chunk for e in op.entries], exc, tally, now)
                    continue
                for op, answer in zip(chunk, answers, strict=False):
                    if answer.ok and isinstance(answer.body, list):
                        self._apply_save_results(op, _save_results(answer.body), tally, now)
                    else:
                        self._op_failed(op, error_from_body(answer.status, answer.body), tally, now)
        else:
            for op in ops:
                self._run_write_direct(op, tally, now)

    def _run_write_direct(self, op: _WriteOp, tally: _Tally, now: datetime) -> None:
        try:
            self._check_throttle(now)
            if op.kind == "update":
                results = self._client.collection_update(op.records)
            elif op.kind == "upsert":
                results = self._client.collection_upsert(op.sobject, str(op.ext_field), op.records)
            else:
                results = self._client.collection_create(op.records, auto_assign=op.assign)
        except SalesforceApiError as exc:
            self._op_failed(op, exc, tally, now)
            return
        self._apply_save_results(op, results, tally, now)

    def _apply_save_results(
        self, op: _WriteOp, results: list[SaveResult], tally: _Tally, now: datetime
    ) -> None:
        if len(results) != len(op.entries):
            for entry in op.entries:
                self._transient(entry, f"{len(results)} results for {len(op.entries)} records", tally)
            return
        for entry, result in zip(op.entries, results, strict=True):
            if result.success:
                self._done(entry, result.id or entry.record_id, tally)
            elif item_retryable(result.errors):
                self._transient(entry, _describe(result.errors), tally)
            else:
                self._dead(entry, _describe(result.errors), tally)

    def _send_emails(self, emails: list[OutboxEntry], tally: _Tally, now: datetime) -> None:
        try:
            self._check_throttle(now)
            # At most once: if the process dies during the call, these stay 'sending' and are quarantined
            # at the next start instead of being sent again.
            self._state.mark_sending([e.key for e in emails])
            results = self._client.email_simple([dict(e.fields) for e in emails])
        except SalesforceApiError as exc:
            self._call_failed(emails, exc, tally, now)
            return
        if len(results) != len(emails):
            for entry in emails:
                self._transient(entry, f"{len(results)} results for {len(emails)} emails", tally)
            return
        for entry, result in zip(emails, results, strict=True):
            if result.success:
                self._done(entry, None, tally)
            elif item_retryable(result.errors):
                self._transient(entry, _describe(result.errors), tally)
            else:
                self._dead(entry, _describe(result.errors), tally)

    # -- outcomes ---------------------------------------------------------------------------------------

    def _op_failed(self, op: _WriteOp, exc: SalesforceApiError, tally: _Tally, now: datetime) -> None:
        if not exc.retryable and len(op.entries) > 1 and not isinstance(exc, RequestLimitExceeded):
            # One bad record can make a whole collection call fail: isolate each record in the next round.
            for entry in op.entries:
                tally.solo.add(entry.key)
                self._transient(entry, f"isolating after a refused call: {exc}", tally)
            return
        self._call_failed(op.entries, exc, tally, now)

    def _call_failed(
        self, entries: Sequence[OutboxEntry], exc: SalesforceApiError, tally: _Tally, now: datetime
    ) -> None:
        if isinstance(exc, RequestLimitExceeded):
            until = now + timedelta(seconds=self._limit_pause)
            usage = self._client.api_usage
            if usage is not None:
                self._pause = (usage, until)  # after this pause, one call may test the water
            raise _Paused(until, str(exc)) from exc
        for entry in entries:
            if exc.retryable:
                self._transient(entry, str(exc), tally)
            else:
                self._dead(entry, str(exc), tally)

    def _transient(self, entry: OutboxEntry, error: str, tally: _Tally) -> None:
        tally.failed[entry.key] = entry
        tally.errors[entry.key] = error

    def _done(self, entry: OutboxEntry, record_id: str | None, tally: _Tally) -> None:
        self._state.mark_done([entry.key], {entry.key: record_id})
        tally.failed.pop(entry.key, None)
        tally.done += 1
        tally.completed.append(entry.key)

    def _skip(self, entry: OutboxEntry, reason: str, tally: _Tally) -> None:
        self._state.mark_skipped(entry.key, reason)
        _log.info("outbox.skipped", key=entry.key, reason=reason)
        tally.skipped += 1

    def _dead(self, entry: OutboxEntry, reason: str, tally: _Tally) -> None:
        self._state.dead_letter_outbox(entry.key, reason)
        tally.failed.pop(entry.key, None)
        _log.error("outbox.dead_lettered", key=entry.key, op=entry.op, sobject=entry.sobject, reason=reason)
        tally.dead += 1

    def _schedule_retry(self, entry: OutboxEntry, error: str, now: datetime, tally: _Tally) -> None:
        current = self._state.outbox_entry(entry.key)
        attempts = (current.attempts if current else entry.attempts) + 1
        if attempts >= self._max_attempts:
            self._dead(entry, f"gave up after {attempts} attempts: {error}", tally)
            return
        delay = backoff_seconds(
            attempts, initial=self._backoff_initial, maximum=self._backoff_max, jitter=1.0, rand=self._rand()
        )
        retry_at = now + timedelta(seconds=delay)
        self._state.mark_retry(entry.key, error, retry_at)
        _log.warning(
            "outbox.retry_scheduled",
            key=entry.key,
            attempts=attempts,
            retry_at=retry_at.isoformat(),
            error=error,
        )
        tally.retried += 1

    def _check_throttle(self, now: datetime) -> None:
        """Pause before a call while API usage is inside the reserve.

        A pause is tied to the usage reading that caused it; once it has elapsed, one call goes out, and its
        answer (a fresh Sforce-Limit-Info) decides the next pause. Without that, a stale reading would pause
        the writer forever.
        """
        usage = self._client.api_usage
        if usage is None:
            return
        delay = throttle_delay(
            usage.used, usage.max, reserve=self._api_reserve, exhausted_pause_s=self._limit_pause
        )
        if delay <= 0:
            self._pause = None
            return
        if self._pause is not None and self._pause[0] is usage:
            if now >= self._pause[1]:
                return
            raise _Paused(self._pause[1], f"API usage {usage.used}/{usage.max}")
        until = now + timedelta(seconds=delay)
        self._pause = (usage, until)
        raise _Paused(until, f"API usage {usage.used}/{usage.max}")

    # -- dependencies -----------------------------------------------------------------------------------

    def _defer_waiting(self, waiting: list[OutboxEntry], now: datetime) -> None:
        """An entry whose dependency is waiting for its retry time is not due before then either, so a
        drain loop sleeping until the next due entry does not spin on it."""
        for entry in waiting:
            dep = self._state.outbox_entry(str(entry.depends_on))
            if dep is not None and dep.next_attempt_at is not None and dep.next_attempt_at > now:
                self._state.defer(entry.key, dep.next_attempt_at)

    def _resolve_dependencies(
        self, entries: list[OutboxEntry], tally: _Tally
    ) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
        """Split dependent entries into ready ones (placeholders filled) and ones still waiting."""
        ready: list[OutboxEntry] = []
        waiting: list[OutboxEntry] = []
        for entry in entries:
            dep_key = str(entry.depends_on)
            dep = self._state.outbox_entry(dep_key)
            if dep is None or dep.status in ("dead", "skipped"):
                state = "missing" if dep is None else dep.status
                self._dead(entry, f"depends on {dep_key}, which is {state}", tally)
            elif dep.status == "done" and dep.result_id:
                ready.append(_fill(entry, dep_key, dep.result_id))
            elif dep.status == "done":
                self._dead(entry, f"depends on {dep_key}, which returned no record id", tally)
            else:
                waiting.append(entry)
        return ready, waiting


# -- pure helpers ---------------------------------------------------------------------------------------


def _target(entry: OutboxEntry) -> tuple[str, ...]:
    """The Salesforce record an entry writes (as far as it can be known before sending)."""
    if entry.op == "update":
        return ("id", str(entry.record_id)[:15])
    if entry.op == "upsert":
        ext = str(entry.external_id_field)
        return ("key", entry.sobject, ext, str(entry.fields.get(ext, "")).lower())
    if entry.op in CREATE_OPS:
        return (
            "key",
            entry.sobject,
            entry.external_id_field or DEFAULT_CREATE_KEY_FIELD,
            _create_key(entry).lower(),
        )
    return ("entry", entry.key)


def _one_per_target(
    entries: list[OutboxEntry], seen: set[tuple[str, ...]]
) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
    """The first entry (by seq) for each target not in ``seen`` (updated), and those held for a later drain."""
    first: list[OutboxEntry] = []
    held: list[OutboxEntry] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        target = _target(entry)
        if target in seen:
            held.append(entry)
        else:
            seen.add(target)
            first.append(entry)
    return first, held


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _urlquote(soql: str) -> str:
    return quote_plus(soql)


def _invalid(entry: OutboxEntry) -> str | None:
    """Why an entry can never be written (None: it can)."""
    if entry.op != "email" and not _IDENT.match(entry.sobject):
        return f"invalid object name {entry.sobject!r}"
    if entry.op == "update":
        if not is_record_id(entry.record_id):
            return f"invalid record id {entry.record_id!r}"
        if any(not _IDENT.match(f) for f in entry.expect or {}):
            return "invalid field name in expect"
    if entry.op == "upsert" and any(not _IDENT.match(f) for f in entry.expect or {}):
        return "invalid field name in expect"
    if entry.op == "upsert" or entry.op in CREATE_OPS:
        ext = entry.external_id_field or (DEFAULT_CREATE_KEY_FIELD if entry.op in CREATE_OPS else "")
        if not _IDENT.match(ext):
            return f"invalid external id field {ext!r}"
        if entry.op == "upsert" and entry.fields.get(ext) in (None, ""):
            return f"upsert without a value for {ext}"
    return None


def _create_key(entry: OutboxEntry) -> str:
    key_field = entry.external_id_field or DEFAULT_CREATE_KEY_FIELD
    return str(entry.fields.get(key_field) or entry.key)


def _record(kind: str, entry: OutboxEntry) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": entry.sobject}}
    record.update({k: v for k, v in entry.fields.items() if k != "attributes"})
    if kind == "update":
        record["id"] = entry.record_id
        record.pop("Id", None)
    elif kind == "create":
        record[entry.external_id_field or DEFAULT_CREATE_KEY_FIELD] = _create_key(entry)
    return record


def _same(a: Any, b: Any) -> bool:
    """Field equality, treating a 15- and an 18-character form of the same record id as equal."""
    if isinstance(a, str) and isinstance(b, str) and _RECORD_ID.match(a) and _RECORD_ID.match(b):
        return a[:15] == b[:15]
    return bool(a == b)


def _conditional_decision(entry: OutboxEntry, rows: Mapping[str, Mapping[str, Any]]) -> str:
    """ "write", "already" (target values in place), "missing", or the reason to skip."""
    row = rows.get(str(entry.record_id)[:15])
    if row is None:
        return "missing"
    expect = entry.expect or {}
    if all(_same(row.get(f), v) for f, v in expect.items()):
        return "write"
    targets = {f: entry.fields[f] for f in expect if f in entry.fields}
    if targets and all(_same(row.get(f), v) for f, v in targets.items()):
        return "already"
    changed = ", ".join(
        f"{f}={row.get(f)!r} (expected {v!r})" for f, v in expect.items() if not _same(row.get(f), v)
    )
    return f"changed since the decision: {changed}"


def _fill(entry: OutboxEntry, dep_key: str, result_id: str) -> OutboxEntry:
    placeholder = "@{" + dep_key + "}"

    def sub(value: Any) -> Any:
        return value.replace(placeholder, result_id) if isinstance(value, str) else value

    return replace(entry, fields={k: sub(v) for k, v in entry.fields.items()})


def _save_results(body: list[Any]) -> list[SaveResult]:
    return parse_save_results(body)


def _describe(errors: Sequence[ApiErrorItem]) -> str:
    if not errors:
        return "failed without an error message"
    return "; ".join(
        f"{e.status_code}: {e.message}" + (f" [{', '.join(e.fields)}]" if e.fields else "") for e in errors
    )
