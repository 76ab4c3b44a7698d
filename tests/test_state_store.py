"""StateStore: migrations, one-transaction batches, idempotent replays, outbox life cycle, dead letters."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sfconnector.clock import ManualClock
from sfconnector.state import (
    MIGRATIONS,
    DecidedBatch,
    Migration,
    NewDeadLetter,
    OutboxEntry,
    RoutingLogRow,
    StateError,
    StateStore,
)
from sfconnector.state._migrations import migrate

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """The store's local clock, fixed at T0: nothing here depends on today's date."""
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> StateStore:
    s = StateStore.open(tmp_path / "state" / "sfconnector.db", clock=clock)
    yield s
    s.close()


def owner_update(lead: str, owner: str = "005A", expect: str = "005STD") -> OutboxEntry:
    return OutboxEntry(
        key=f"lead-owner:{lead}",
        op="update",
        sobject="Lead",
        fields={"OwnerId": owner},
        record_id=lead,
        expect={"OwnerId": expect},
    )


def referral(lead: str, status: str = "Lead") -> OutboxEntry:
    return OutboxEntry(
        key=f"referral:{lead}",
        op="upsert",
        sobject="Referral__c",
        fields={"External_Key__c": f"lead:{lead}", "Lead__c": lead, "Status__c": status},
        external_id_field="External_Key__c",
    )


def batch(channel: str, replay_id: int, *entries: OutboxEntry, **kw: object) -> DecidedBatch:
    return DecidedBatch(
        checkpoints={channel: replay_id},
        outbox=entries,
        processed_keys=[f"{channel}:{replay_id}"],
        **kw,  # type: ignore[arg-type]
    )


def test_open_creates_directories_wal_and_schema_version(tmp_path: Path) -> None:
    """A fresh open creates the parent directories, a WAL-mode file and records every migration."""
    path = tmp_path / "a" / "b" / "state.db"
    with StateStore.open(path) as s:
        assert s.schema_version == max(m.version for m in MIGRATIONS)
    assert path.stat().st_mode & 0o077 == 0  # personal data: owner-only
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]
    conn.close()


def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    """Opening an existing file applies nothing twice and keeps checkpoints."""
    path = tmp_path / "state.db"
    with StateStore.open(path) as s:
        s.commit_batch(batch("/data/LeadChangeEvent", 41))
    with StateStore.open(path) as s:
        assert s.checkpoint("/data/LeadChangeEvent") == 41
        assert s.schema_version == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_new_migration_applies_once_on_next_open(tmp_path: Path) -> None:
    """A migration appended later runs exactly once, at the next open."""
    path = tmp_path / "state.db"
    StateStore.open(path).close()
    calls: list[int] = []

    def add_column(db: object) -> None:
        calls.append(1)
        db.execute("ALTER TABLE checkpoints ADD COLUMN note TEXT")  # type: ignore[attr-defined]

    extra = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "note column", add_column))
    import sqlite_utils

    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    assert migrate(db, extra) == len(MIGRATIONS) + 1
    assert migrate(db, extra) == len(MIGRATIONS) + 1
    assert calls == [1]
    assert "note" in db.table("checkpoints").columns_dict
    db.close()


def test_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A file whose schema is newer than the code is refused with a clear StateError."""
    path = tmp_path / "state.db"
    StateStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01')")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer"):
        StateStore.open(path)


def test_garbage_file_is_a_state_error(tmp_path: Path) -> None:
    """A file that is not SQLite gives a StateError, not a sqlite3 traceback."""
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="not a usable"):
        StateStore.open(path)


def test_commit_batch_stores_everything_together(store: StateStore) -> None:
    """Checkpoint, outbox, processed keys, routing log and dead letters land together."""
    store.commit_batch(
        batch(
            "/data/LeadChangeEvent",
            7,
            owner_update("00Q1"),
            referral("00Q1"),
            routing_log=[
                RoutingLogRow("00Q1", "a01", "005STD", "005A", "advocate-owner", "owner of ADV-1", T0)
            ],
            dead_letters=[NewDeadLetter("event", "/data/LeadChangeEvent", 6, {"bad": True}, "unparseable")],
        )
    )
    assert store.checkpoint("/data/LeadChangeEvent") == 7
    assert store.is_processed("/data/LeadChangeEvent:7")
    assert not store.is_processed("/data/LeadChangeEvent:8")
    assert [e.key for e in store.pending_outbox(10, T0 + timedelta(days=1))] == [
        "lead-owner:00Q1",
        "referral:00Q1",
    ]
    log = store.routing_log("00Q1")
    assert [(r.routed_owner_id, r.rule, r.decided_at) for r in log] == [("005A", "advocate-owner", T0)]
    assert [d.reason for d in store.dead_letters()] == ["unparseable"]


def test_failure_mid_transaction_leaves_checkpoint_and_outbox_unchanged(store: StateStore) -> None:
    """If any part of a batch fails, nothing of it is kept: the checkpoint does not move past lost work."""
    store.commit_batch(batch("/data/LeadChangeEvent", 10, owner_update("00Q1")))
    poisoned = batch(
        "/data/LeadChangeEvent",
        11,
        owner_update("00Q2"),
        dead_letters=[NewDeadLetter("event", None, None, {"x": object()}, "not JSON-serialisable")],
    )
    with pytest.raises(TypeError):
        store.commit_batch(poisoned)
    assert store.checkpoint("/data/LeadChangeEvent") == 10
    assert [e.key for e in store.pending_outbox(10, T0 + timedelta(days=1))] == ["lead-owner:00Q1"]
    assert not store.is_processed("/data/LeadChangeEvent:11")
    assert store.dead_letters() == []
    # and the store still works afterwards
    store.commit_batch(batch("/data/LeadChangeEvent", 11, owner_update("00Q2")))
    assert store.checkpoint("/data/LeadChangeEvent") == 11


def test_replayed_batch_adds_nothing_and_keeps_progress(store: StateStore) -> None:
    """Committing the same decisions again (a replay) neither duplicates nor resets outbox entries."""
    now = T0 + timedelta(days=1)
    store.commit_batch(batch("/data/LeadChangeEvent", 5, owner_update("00Q1"), referral("00Q1")))
    store.mark_done(["referral:00Q1"], {"referral:00Q1": "a02000000000001AAA"})
    store.mark_retry("lead-owner:00Q1", "HTTP 503", now + timedelta(minutes=5))
    for _ in range(3):
        store.commit_batch(
            batch("/data/LeadChangeEvent", 5, owner_update("00Q1"), referral("00Q1", "Changed"))
        )
    assert store.pending_outbox(10, now) == []  # the retry is not due yet, the upsert is done
    entry = store.outbox_entry("referral:00Q1")
    assert entry is not None and entry.status == "done" and entry.fields["Status__c"] == "Lead"
    retrying = store.outbox_entry("lead-owner:00Q1")
    assert retrying is not None and retrying.attempts == 1 and retrying.status == "retrying"
    status = store.status()
    assert (status.outbox_pending, status.outbox_retrying) == (0, 1)


def test_pending_outbox_respects_due_time_order_and_limit(store: StateStore) -> None:
    """Only due entries are returned, in seq order, at most ``limit``."""
    store.commit_batch(batch("c", 1, *(owner_update(f"00Q{i}") for i in range(5))))
    store.mark_retry("lead-owner:00Q0", "locked", T0 + timedelta(days=365 * 10))
    due = store.pending_outbox(3, T0)
    assert [e.key for e in due] == ["lead-owner:00Q1", "lead-owner:00Q2", "lead-owner:00Q3"]
    assert due[0].seq < due[1].seq < due[2].seq
    assert store.next_outbox_due() is not None


def test_outbox_dead_letter_keeps_payload_and_retry_requeues(store: StateStore) -> None:
    """A dead-lettered entry is listed with its payload; retrying it re-queues the same key with 0 attempts."""
    store.commit_batch(batch("c", 1, owner_update("00Q1")))
    store.mark_retry("lead-owner:00Q1", "locked", T0)
    store.dead_letter_outbox("lead-owner:00Q1", "FIELD_CUSTOM_VALIDATION_EXCEPTION: no")
    assert store.pending_outbox(10, T0 + timedelta(days=1)) == []
    (letter,) = store.dead_letters()
    assert letter.source == "outbox" and letter.payload["key"] == "lead-owner:00Q1"
    assert letter.payload["fields"] == {"OwnerId": "005A"}
    # a replay of the original batch must not resurrect it behind the operator's back
    store.commit_batch(batch("c", 1, owner_update("00Q1")))
    assert store.pending_outbox(10, T0 + timedelta(days=1)) == []
    retried = store.retry_dead_letter(letter.id)
    assert retried.id == letter.id
    assert store.dead_letters() == []
    (entry,) = store.pending_outbox(10, T0 + timedelta(seconds=1))
    assert entry.key == "lead-owner:00Q1" and entry.attempts == 0 and entry.status == "pending"


def test_event_dead_letters_list_retry_and_drop(store: StateStore) -> None:
    """Event dead letters are listed in order; retry hands one back and removes it; drop removes one."""
    first = store.add_dead_letter("event", "/data/LeadChangeEvent", 3, {"replayId": 3}, "rule error")
    second = store.add_dead_letter("event", "/event/Referral_Submitted__e", 9, {"replayId": 9}, "bad code")
    assert [d.id for d in store.dead_letters()] == [first, second]
    back = store.retry_dead_letter(first)
    assert (back.channel, back.replay_id, back.payload) == ("/data/LeadChangeEvent", 3, {"replayId": 3})
    store.drop_dead_letter(second)
    assert store.dead_letters() == []
    with pytest.raises(StateError):
        store.drop_dead_letter(second)
    with pytest.raises(StateError):
        store.retry_dead_letter(12345)


def test_invalid_outbox_entry_is_refused_before_anything_is_written(store: StateStore) -> None:
    """An entry with an unknown op or a missing record id is refused and the batch is not committed."""
    bad = OutboxEntry(key="x", op="delete", sobject="Lead", fields={})
    with pytest.raises(StateError, match="unknown op"):
        store.commit_batch(batch("c", 1, bad))
    assert store.checkpoint("c") is None


def test_status_and_errors(store: StateStore) -> None:
    """status() reports channels, outbox depth, dead letters and the latest errors, newest first."""
    store.commit_batch(batch("/data/LeadChangeEvent", 3, owner_update("00Q1"), referral("00Q1")))
    store.mark_done(["referral:00Q1"], {"referral:00Q1": None})
    store.add_dead_letter("event", None, None, {}, "x")
    store.record_error("stream", "403::Unknown client")
    store.record_error("writer", "HTTP 503")
    s = store.status()
    assert [(c.channel, c.checkpoint) for c in s.channels] == [("/data/LeadChangeEvent", 3)]
    assert (s.outbox_pending, s.outbox_retrying, s.dead_letters) == (1, 0, 1)
    assert [e.where for e in s.last_errors] == ["writer", "stream"]
    assert s.oldest_pending_at is not None


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    """After close() (idempotent), calls fail with StateError rather than a sqlite3 error."""
    s = StateStore.open(tmp_path / "s.db")
    s.close()
    s.close()
    with pytest.raises(StateError):
        s.checkpoint("c")


def test_concurrent_writer_and_pipeline_threads_do_not_corrupt_state(store: StateStore) -> None:
    """Commits from one thread and outbox updates from another interleave safely."""
    import threading

    def pipeline() -> None:
        for i in range(50):
            store.commit_batch(batch("c", i, owner_update(f"00Q{i}")))

    def writer() -> None:
        for _ in range(50):
            for entry in store.pending_outbox(5, T0 + timedelta(seconds=1)):
                store.mark_done([entry.key], {entry.key: entry.record_id})

    threads = [threading.Thread(target=pipeline), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert store.checkpoint("c") == 49
    entries = [store.outbox_entry(f"lead-owner:00Q{i}") for i in range(50)]
    assert all(e is not None for e in entries)
    done = [e for e in entries if e is not None and e.status == "done"]
    assert all(e.result_id == e.record_id for e in done)
    assert store.status().outbox_pending == 50 - len(done)


def test_batch_can_settle_a_dead_letter_in_the_same_transaction(store: StateStore) -> None:
    """An event decided again removes its dead letter atomically with the new decisions."""
    letter = store.add_dead_letter(
        "event", "/data/LeadChangeEvent", 4, {"data": {}}, "advocate lookup failed"
    )
    store.commit_batch(DecidedBatch(outbox=[owner_update("00Q9")], resolves_dead_letters=[letter]))
    assert store.dead_letters() == []
    assert [e.key for e in store.pending_outbox(10, T0 + timedelta(days=1))] == ["lead-owner:00Q9"]


def test_prune_forgets_old_history_but_keeps_email_keys_and_open_work(store: StateStore) -> None:
    """Old processed keys, routing rows and finished writes go; emails and unfinished entries stay."""
    email = OutboxEntry("email:lead:1:received", "email", "", {"emailAddresses": "a@b.c"})
    store.commit_batch(
        batch(
            "c",
            1,
            owner_update("00Q1"),
            referral("00Q1"),
            email,
            routing_log=[
                RoutingLogRow("00Q1", None, None, None, None, "x", datetime(2026, 1, 1, tzinfo=UTC))
            ],
        )
    )
    store.mark_done(["lead-owner:00Q1", email.key], {})
    removed = store.prune(T0 + timedelta(seconds=1))
    assert removed == {"processed_events": 1, "routing_log": 1, "outbox": 1}
    assert store.outbox_entry("lead-owner:00Q1") is None
    assert store.outbox_entry(email.key) is not None  # a replay still cannot mail twice
    assert store.outbox_entry("referral:00Q1") is not None  # still pending
    assert store.checkpoint("c") == 1
