"""StateStore: the daemon's durable local state in one SQLite file (sqlite-utils).

Durability: WAL journal with ``synchronous=FULL``. Under NORMAL a power loss or OS crash may roll back the
last commits; the data stays consistent and every write is idempotent, so that would only rewind the replay
checkpoint, which is safe *only while the rewind stays inside Salesforce's event retention*. FULL removes the
case altogether for one extra fsync per commit, and the daemon commits once per batch of events (not per
event) and once per outbox drain, so the cost is small against the REST round trips around it
(see ``bench/bench_writer.py``). A process kill (SIGKILL) is safe at any level.

One connection per store, shared by threads under a lock: SQLite serialises writers anyway, and the daemon
has a single writer task plus the pipeline.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ..clock import Clock, system_clock
from ._migrations import current_version, known_version, migrate, too_new_message
from ._types import (
    OUTBOX_OPS,
    BackupSummary,
    ChannelStatus,
    DeadLetter,
    DecidedBatch,
    ErrorRecord,
    OutboxEntry,
    RoutingLogRow,
    StateError,
    StateOfAnotherOrg,
    StateStatus,
    StateTooNew,
)

_OPEN_STATUSES = ("pending", "retrying")
_MAX_ERROR_ROWS = 200  # keep the errors table small: it is for "last error", not an audit trail


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so string comparison in SQL is time comparison."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _stamp(text: str) -> datetime:
    """A NOT NULL stamp column."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class StateStore:
    """Checkpoints, outbox, processed event keys, routing log and dead letters."""

    def __init__(self, db: sqlite_utils.Database, path: Path, clock: Clock = system_clock) -> None:
        self._db = db
        self._path = path
        self._now = clock
        self._lock = threading.RLock()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, clock: Clock = system_clock, *, readonly: bool = False) -> StateStore:
        """Open (creating directories and file as needed) and bring the schema up to date.

        `clock` stamps rows (created, updated, dead-lettered): local scheduling time, never a business date.
        `readonly`: for commands that only look (status, deadletters list): the file must exist, is never
        migrated or written, and must be at exactly this build's schema version.
        """
        path = Path(path)
        if readonly:
            return cls._open_readonly(path, clock)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                # Outbox payloads carry people's names and email addresses: owner-only from the start
                # (SQLite gives the -wal and -shm files the database file's permissions).
                path.touch(mode=0o600)
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state file {path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            db = sqlite_utils.Database(conn)
            migrate(db, clock=clock)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path} is not a usable sfconnector state file: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        match_owner(path)
        return cls(db, path, clock)

    @classmethod
    def _open_readonly(cls, path: Path, clock: Clock) -> StateStore:
        if not path.is_file():
            raise StateError(f"no state at {path}")
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                timeout=10.0,
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state file {path}: {exc}") from exc
        try:
            db = sqlite_utils.Database(conn)
            version, known = current_version(db), known_version()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path} is not a usable sfconnector state file: {exc}") from exc
        match_owner(path)
        if version > known:
            conn.close()
            raise StateTooNew(too_new_message(version, known))
        if version < known:
            conn.close()
            raise StateError(
                f"the state file is at schema version {version}, older than this sfconnector's ({known}): "
                "the daemon of this version migrates it when it starts (restart it after an upgrade); "
                "this command never writes to it"
            )
        return cls(db, path, clock)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def schema_version(self) -> int:
        with self._lock:
            return current_version(self._db)

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            if self._closed:
                raise StateError("the state store is closed")
            with self._db.atomic():
                yield self._db

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            if self._closed:
                raise StateError("the state store is closed")
            return list(self._db.query(sql, params))

    # -- checkpoints and decisions ----------------------------------------------------------------------

    def checkpoint(self, channel: str) -> int | None:
        """The replay id of the last processed event on ``channel`` (None: never processed anything)."""
        rows = self._rows("SELECT replay_id FROM checkpoints WHERE channel = ?", [channel])
        return int(rows[0]["replay_id"]) if rows else None

    def live_since(self, channel: str) -> int | None:
        """When ``channel`` first went live at "latest" (epoch ms), if it has done so."""
        rows = self._rows("SELECT since_ms FROM live_since WHERE channel = ?", [channel])
        return int(rows[0]["since_ms"]) if rows else None

    def record_readings(self, readings: Mapping[str, str]) -> None:
        """Remember what the daemon last saw (e.g. `api_usage`, `last_event:<channel>`), for `status`."""
        now = _ts(self._now())
        with self._tx() as db:
            for name, value in readings.items():
                db.execute(
                    "INSERT INTO readings (name, value, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    [name, value, now],
                )

    def readings(self) -> dict[str, tuple[str, datetime | None]]:
        """name -> (value, when it was recorded)."""
        rows = self._rows("SELECT name, value, updated_at FROM readings")
        return {str(r["name"]): (str(r["value"]), _parse_ts(r["updated_at"])) for r in rows}

    def record_live_since(self, channel: str, since_ms: int) -> None:
        """Remember the first time ``channel`` went live at "latest" (later calls keep the first)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO live_since (channel, since_ms) VALUES (?, ?)", [channel, since_ms]
            )

    def commit_batch(self, batch: DecidedBatch) -> None:
        """Make a batch's decisions durable in ONE transaction; the checkpoint moves only with them.

        Outbox entries and processed keys are INSERT OR IGNORE by key, so committing a replayed batch again
        adds nothing and never resets an entry that is already done or being retried.
        """
        now = _ts(self._now())
        for entry in batch.outbox:
            _validate_entry(entry)
        with self._tx() as db:
            for entry in batch.outbox:
                db.execute(
                    "INSERT OR IGNORE INTO outbox (key, op, sobject, fields, record_id, external_id_field, expect,"
                    " depends_on, status, attempts, next_attempt_at, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                    [
                        entry.key,
                        entry.op,
                        entry.sobject,
                        _dump(dict(entry.fields)),
                        entry.record_id,
                        entry.external_id_field,
                        _dump(dict(entry.expect)) if entry.expect is not None else None,
                        entry.depends_on,
                        now,
                        now,
                        now,
                    ],
                )
            for key in batch.processed_keys:
                db.execute(
                    "INSERT OR IGNORE INTO processed_events (key, processed_at) VALUES (?, ?)", [key, now]
                )
            for row in batch.routing_log:
                db.execute(
                    "INSERT INTO routing_log (lead_id, advocate_id, standard_owner_id, routed_owner_id, rule,"
                    " reason, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        row.lead_id,
                        row.advocate_id,
                        row.standard_owner_id,
                        row.routed_owner_id,
                        row.rule,
                        row.reason,
                        _ts(row.decided_at),
                    ],
                )
            for letter in batch.dead_letters:
                self._insert_dead_letter(
                    db, letter.source, letter.channel, letter.replay_id, letter.payload, letter.reason, now
                )
            for letter_id in batch.resolves_dead_letters:
                db.execute("DELETE FROM dead_letters WHERE id = ?", [int(letter_id)])
            for channel, replay_id in batch.checkpoints.items():
                db.execute(
                    "INSERT INTO checkpoints (channel, replay_id, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(channel) DO UPDATE SET replay_id = excluded.replay_id,"
                    " updated_at = excluded.updated_at",
                    [channel, int(replay_id), now],
                )

    def is_processed(self, event_key: str) -> bool:
        return bool(self._rows("SELECT 1 FROM processed_events WHERE key = ?", [event_key]))

    # -- outbox -----------------------------------------------------------------------------------------

    def pending_outbox(self, limit: int, now: datetime) -> list[OutboxEntry]:
        """Entries due at ``now`` (pending, or retrying whose retry time has come), oldest first."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?"
            " ORDER BY seq LIMIT ?",
            [_ts(now), int(limit)],
        )
        return [_entry(r) for r in rows]

    def unfinished_outbox(self, sobjects: Sequence[str]) -> list[OutboxEntry]:
        """Writes to these objects decided and not yet landed (pending, retrying, being sent), in decision
        order, with the record ids their done dependencies returned filled into their "@{key}" placeholders:
        what a restarted process must overlay on Salesforce's answers to decide as its predecessor would."""
        if not sobjects:
            return []
        marks = ", ".join("?" for _ in sobjects)
        rows = self._rows(
            "SELECT o.*, d.result_id AS dependency_result FROM outbox o"
            " LEFT JOIN outbox d ON d.key = o.depends_on AND d.status = 'done'"
            f" WHERE o.status IN ('pending', 'retrying', 'sending') AND o.sobject IN ({marks}) ORDER BY o.seq",
            list(sobjects),
        )
        entries: list[OutboxEntry] = []
        for row in rows:
            entry = _entry(row)
            if entry.depends_on and row["dependency_result"]:
                placeholder, result = "@{" + entry.depends_on + "}", str(row["dependency_result"])
                fields = {
                    k: v.replace(placeholder, result) if isinstance(v, str) else v for k, v in entry.fields.items()
                }
                entry = replace(entry, fields=fields)
            entries.append(entry)
        return entries

    def outbox_entry(self, key: str) -> OutboxEntry | None:
        rows = self._rows("SELECT * FROM outbox WHERE key = ?", [key])
        return _entry(rows[0]) if rows else None

    def next_outbox_due(self) -> datetime | None:
        """When the earliest open entry becomes due (None: nothing open); lets the writer sleep until then."""
        rows = self._rows(
            "SELECT MIN(next_attempt_at) AS due FROM outbox WHERE status IN ('pending', 'retrying')"
        )
        return _parse_ts(rows[0]["due"]) if rows else None

    def mark_done(self, keys: Sequence[str], results: Mapping[str, str | None]) -> None:
        """Entries written; ``results`` maps key -> the record id Salesforce returned (if any)."""
        now = _ts(self._now())
        with self._tx() as db:
            for key in keys:
                db.execute(
                    "UPDATE outbox SET status = 'done', result_id = ?, last_error = NULL, updated_at = ?"
                    " WHERE key = ?",
                    [results.get(key), now, key],
                )

    def mark_sending(self, keys: Sequence[str]) -> None:
        """Emails about to be handed to Salesforce: committed first, so a crash during the call is known."""
        now = _ts(self._now())
        with self._tx() as db:
            for key in keys:
                db.execute(
                    "UPDATE outbox SET status = 'sending', updated_at = ? WHERE key = ? AND status IN"
                    " ('pending', 'retrying')",
                    [now, key],
                )

    def quarantine_interrupted_sends(self) -> list[str]:
        """Emails the process was sending when it stopped: they may have gone out, so they are never sent
        again by themselves (an advocate is told at most once); each becomes a dead letter an admin can
        retry after checking. Returns their keys."""
        reason = (
            "the connector stopped while this email was being sent; it may have reached the advocate, so it is"
            " not sent again automatically (retry it if they did not get it)"
        )
        with self._tx() as db:
            rows = list(db.query("SELECT * FROM outbox WHERE status = 'sending'"))
        for row in rows:
            self.dead_letter_outbox(str(row["key"]), reason)
        return [str(row["key"]) for row in rows]

    def mark_skipped(self, key: str, reason: str) -> None:
        """The write no longer applies (a person changed the record meanwhile); nothing more to do."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET status = 'skipped', last_error = ?, updated_at = ? WHERE key = ?",
                [reason, _ts(self._now()), key],
            )

    def defer(self, key: str, until: datetime) -> None:
        """Not due before ``until`` (waiting for another entry); attempts and status unchanged."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE key = ? AND status IN"
                " ('pending', 'retrying')",
                [_ts(until), _ts(self._now()), key],
            )

    def mark_retry(self, key: str, error: str, retry_at: datetime) -> None:
        """A transient failure: attempts += 1, keep the error, try again at ``retry_at``."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET status = 'retrying', attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE key = ?",
                [error[:2000], _ts(retry_at), _ts(self._now()), key],
            )

    def dead_letter_outbox(self, key: str, reason: str) -> None:
        """Give up on an entry: it becomes a dead letter carrying its payload; the key stays taken."""
        now = _ts(self._now())
        with self._tx() as db:
            rows = list(db.query("SELECT * FROM outbox WHERE key = ?", [key]))
            if not rows:
                raise StateError(f"no outbox entry {key!r}")
            entry = _entry(rows[0])
            db.execute(
                "UPDATE outbox SET status = 'dead', last_error = ?, updated_at = ? WHERE key = ?",
                [reason[:2000], now, key],
            )
            self._insert_dead_letter(db, "outbox", None, None, _entry_payload(entry), reason, now)

    # -- dead letters -----------------------------------------------------------------------------------

    def add_dead_letter(
        self,
        source: str,
        channel: str | None,
        replay_id: int | None,
        payload: Mapping[str, Any],
        reason: str,
    ) -> int:
        with self._tx() as db:
            return self._insert_dead_letter(db, source, channel, replay_id, payload, reason, _ts(self._now()))

    @staticmethod
    def _insert_dead_letter(
        db: sqlite_utils.Database,
        source: str,
        channel: str | None,
        replay_id: int | None,
        payload: Mapping[str, Any],
        reason: str,
        now: str,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO dead_letters (source, channel, replay_id, payload, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [source, channel, replay_id, _dump(dict(payload)), reason[:4000], now],
        )
        return int(cursor.lastrowid or 0)

    def dead_letters(self) -> list[DeadLetter]:
        return [_dead_letter(r) for r in self._rows("SELECT * FROM dead_letters ORDER BY id")]

    def retry_dead_letter(self, id: int) -> DeadLetter:
        """Take a dead letter back out.

        An outbox dead letter is re-queued here, in the same transaction (attempts reset). Any other dead
        letter is removed and returned: the caller (the pipeline) feeds its payload through again.
        """
        with self._tx() as db:
            rows = list(db.query("SELECT * FROM dead_letters WHERE id = ?", [id]))
            if not rows:
                raise StateError(f"no dead letter with id {id}")
            letter = _dead_letter(rows[0])
            if letter.source == "outbox":
                key = str(letter.payload.get("key", ""))
                now = _ts(self._now())
                cursor = db.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, last_error = NULL,"
                    " next_attempt_at = ?, updated_at = ? WHERE key = ?",
                    [now, now, key],
                )
                if cursor.rowcount == 0:
                    raise StateError(
                        f"dead letter {id} refers to outbox entry {key!r}, which no longer exists"
                    )
            db.execute("DELETE FROM dead_letters WHERE id = ?", [id])
            return letter

    def drop_dead_letter(self, id: int) -> None:
        with self._tx() as db:
            cursor = db.execute("DELETE FROM dead_letters WHERE id = ?", [id])
            if cursor.rowcount == 0:
                raise StateError(f"no dead letter with id {id}")

    def prune(self, before: datetime) -> dict[str, int]:
        """Forget history older than ``before``: processed event keys, routing log rows and finished outbox
        entries. Email entries are kept: their key is what stops a replay or a reconcile sweep from mailing an
        advocate twice, and email cannot be made idempotent on the Salesforce side. Choose ``before`` well
        beyond the event retention (72 h) and any reconcile window. Returns rows deleted per table."""
        cutoff = _ts(before)
        with self._tx() as db:
            counts = {
                "processed_events": db.execute(
                    "DELETE FROM processed_events WHERE processed_at < ?", [cutoff]
                ).rowcount,
                "routing_log": db.execute("DELETE FROM routing_log WHERE decided_at < ?", [cutoff]).rowcount,
                "outbox": db.execute(
                    "DELETE FROM outbox WHERE status IN ('done', 'skipped') AND op != 'email' AND updated_at < ?",
                    [cutoff],
                ).rowcount,
            }
        return counts

    # -- routing log, errors, status --------------------------------------------------------------------

    def routing_log(self, lead_id: str | None = None, limit: int = 100) -> list[RoutingLogRow]:
        """Most recent decisions first, optionally for one lead."""
        if lead_id is None:
            rows = self._rows("SELECT * FROM routing_log ORDER BY id DESC LIMIT ?", [int(limit)])
        else:
            rows = self._rows(
                "SELECT * FROM routing_log WHERE lead_id = ? ORDER BY id DESC LIMIT ?", [lead_id, int(limit)]
            )
        return [
            RoutingLogRow(
                lead_id=r["lead_id"],
                advocate_id=r["advocate_id"],
                standard_owner_id=r["standard_owner_id"],
                routed_owner_id=r["routed_owner_id"],
                rule=r["rule"],
                reason=r["reason"],
                decided_at=_parse_ts(r["decided_at"]) or self._now(),
            )
            for r in rows
        ]

    def record_error(self, where: str, message: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO errors (where_, message, at) VALUES (?, ?, ?)",
                [where, message[:2000], _ts(self._now())],
            )
            db.execute("DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - ?", [_MAX_ERROR_ROWS])

    def org_id(self) -> str | None:
        """The org this state belongs to (None: not yet bound; a file from before schema version 4)."""
        rows = self._rows("SELECT value FROM identity WHERE name = 'org_id'")
        return str(rows[0]["value"]) if rows else None

    def bind_org(self, org_id: str) -> bool:
        """Remember that this state belongs to `org_id` (True the first time), or refuse another org.

        Org ids compare on their first 15 characters (the 18-character form only adds a case checksum).
        """
        with self._tx() as db:
            row = db.execute("SELECT value FROM identity WHERE name = 'org_id'").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO identity (name, value, recorded_at) VALUES ('org_id', ?, ?)",
                    [org_id, _ts(self._now())],
                )
                return True
        known = str(row[0])
        if known[:15] != org_id[:15]:
            raise StateOfAnotherOrg(
                f"the state file {self._path} belongs to org {known}, but the config logs in to org "
                f"{org_id}: its checkpoints and pending writes are not this org's. Point state.path (or "
                "--state) at this org's own state file, or move this one away to start afresh "
                "(docs/operations.md, Backups and moves)"
            )
        return False

    def last_outbox_error(self) -> str | None:
        """The error of the write retried most recently, for /healthz."""
        rows = self._rows(
            "SELECT last_error FROM outbox WHERE status = 'retrying' AND last_error IS NOT NULL"
            " ORDER BY updated_at DESC LIMIT 1"
        )
        return str(rows[0]["last_error"]) if rows else None

    def status(self) -> StateStatus:
        channels = tuple(
            ChannelStatus(r["channel"], int(r["replay_id"]), _parse_ts(r["updated_at"]))
            for r in self._rows("SELECT * FROM checkpoints ORDER BY channel")
        )
        counts = {
            r["status"]: int(r["n"])
            for r in self._rows("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        }
        oldest = self._rows(
            "SELECT MIN(created_at) AS t FROM outbox WHERE status IN ('pending', 'retrying')"
        )[0]["t"]
        dead = int(self._rows("SELECT COUNT(*) AS n FROM dead_letters")[0]["n"])
        errors = tuple(
            ErrorRecord(r["where_"], r["message"], _parse_ts(r["at"]) or self._now())
            for r in self._rows("SELECT * FROM errors ORDER BY id DESC LIMIT 5")
        )
        return StateStatus(
            channels=channels,
            outbox_pending=counts.get("pending", 0),
            outbox_retrying=counts.get("retrying", 0),
            outbox_dead=counts.get("dead", 0),
            dead_letters=dead,
            last_errors=errors,
            oldest_pending_at=_parse_ts(oldest),
            schema_version=self.schema_version,
        )


def _validate_entry(entry: OutboxEntry) -> None:
    if entry.op not in OUTBOX_OPS:
        raise StateError(f"outbox entry {entry.key!r}: unknown op {entry.op!r}")
    if not entry.key:
        raise StateError("outbox entry without a key")
    if entry.op == "update" and not entry.record_id:
        raise StateError(f"outbox entry {entry.key!r}: update needs a record_id")
    if entry.op == "upsert" and not entry.external_id_field:
        raise StateError(f"outbox entry {entry.key!r}: upsert needs an external_id_field")


def _entry(row: Mapping[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        key=row["key"],
        op=row["op"],
        sobject=row["sobject"],
        fields=json.loads(row["fields"]),
        record_id=row["record_id"],
        external_id_field=row["external_id_field"],
        expect=json.loads(row["expect"]) if row["expect"] is not None else None,
        depends_on=row["depends_on"],
        seq=int(row["seq"]),
        attempts=int(row["attempts"]),
        status=row["status"],
        last_error=row["last_error"],
        result_id=row["result_id"],
        next_attempt_at=_parse_ts(row["next_attempt_at"]),
        created_at=_parse_ts(row["created_at"]),
    )


def _entry_payload(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "op": entry.op,
        "sobject": entry.sobject,
        "fields": dict(entry.fields),
        "record_id": entry.record_id,
        "external_id_field": entry.external_id_field,
        "expect": dict(entry.expect) if entry.expect is not None else None,
        "depends_on": entry.depends_on,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
    }


def _dead_letter(row: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(
        id=int(row["id"]),
        source=row["source"],
        channel=row["channel"],
        replay_id=int(row["replay_id"]) if row["replay_id"] is not None else None,
        payload=json.loads(row["payload"]),
        reason=row["reason"],
        created_at=_stamp(row["created_at"]),
    )


def match_owner(path: Path) -> None:
    """Root in a shell (`status`, `deadletters`) must not leave the -wal and -shm files it made root's: the
    daemon's own (systemd DynamicUser=) user could then no longer open the file. Give them its owner."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    try:
        owner = path.stat()
    except OSError:
        return
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            st = side.stat()
            if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(side, owner.st_uid, owner.st_gid)
        except OSError:
            continue


def backup_state(source: Path, destination: Path, *, overwrite: bool = False) -> BackupSummary:
    """A consistent copy of the state file through SQLite's online backup API, safe while the daemon runs.

    The copy is written next to `destination` and renamed into place once complete and checked
    (`PRAGMA integrity_check`), owner-only (it holds people's names and email addresses). Any schema
    version is copied: a backup is how one goes back after an upgrade.
    """
    source, destination = Path(source), Path(destination)
    if destination.is_dir():
        destination = destination / source.name
    if not source.is_file():
        raise StateError(f"no state at {source}")
    if destination.exists() and not overwrite:
        raise StateError(f"{destination} exists already (pass --force to replace it)")
    if destination.resolve() == source.resolve():
        raise StateError("the backup cannot replace the state file itself")
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open the state file {source}: {exc}") from exc
    try:
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(str(partial))
        try:
            src.backup(dst, pages=1024)
            # One self-contained file (no -wal beside it to lose in the rename or a copy); the daemon turns
            # WAL on again when it opens a restored copy.
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise StateError(f"the copy of {source} failed its integrity check: {check}")
            db = sqlite_utils.Database(dst)
            version = current_version(db)
            org = None
            if "identity" in db.table_names():
                row = dst.execute("SELECT value FROM identity WHERE name = 'org_id'").fetchone()
                org = str(row[0]) if row else None
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
        os.replace(partial, destination)
    except sqlite3.DatabaseError as exc:
        partial.unlink(missing_ok=True)
        raise StateError(f"{source} is not a usable sfconnector state file: {exc}") from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StateError(f"cannot write the backup {destination}: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
        match_owner(source)
    return BackupSummary(
        source=str(source),
        destination=str(destination),
        schema_version=version,
        size_bytes=destination.stat().st_size,
        pages=pages,
        org_id=org,
    )
