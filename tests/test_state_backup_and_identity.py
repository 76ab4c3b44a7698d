"""The state file as IT handles it: online backups, the org it belongs to, and read-only opening for the
commands that only look (never migrating, explaining a newer schema instead of failing on it)."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfconnector.cli import main
from sfconnector.clock import ManualClock
from sfconnector.state import (
    DecidedBatch,
    StateError,
    StateOfAnotherOrg,
    StateStore,
    StateTooNew,
    backup_state,
    known_version,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ORG = "00D5g0000000001EAA"


def _store(path: Path) -> StateStore:
    return StateStore.open(path, clock=ManualClock(T0))


def test_a_backup_taken_while_batches_commit_is_a_consistent_checked_owner_only_copy(tmp_path: Path) -> None:
    source = tmp_path / "state" / "sfconnector.db"
    store = _store(source)
    store.bind_org(ORG)
    done, committing = threading.Event(), threading.Event()

    def commit_for_a_while() -> None:
        replay_id = 0
        while not done.is_set():
            replay_id += 1
            store.commit_batch(
                DecidedBatch(
                    checkpoints={"/data/LeadChangeEvent": replay_id}, processed_keys=[f"k:{replay_id}"]
                )
            )
            committing.set()

    writer = threading.Thread(target=commit_for_a_while)
    writer.start()
    try:
        assert committing.wait(timeout=30)
        summaries = [backup_state(source, tmp_path / f"copy-{i}.db") for i in range(3)]
    finally:
        done.set()
        writer.join()
        store.close()
    for summary in summaries:
        copy = Path(summary.destination)
        assert summary.schema_version == known_version() and summary.org_id == ORG
        assert copy.stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(copy) as conn:
            checkpoint = conn.execute("SELECT replay_id FROM checkpoints").fetchone()[0]
            processed = conn.execute("SELECT COUNT(*) FROM processed_events").fetchone()[0]
        assert checkpoint == processed  # the checkpoint and what it covers, as of one moment
    assert not list(tmp_path.glob(".*.partial"))


def test_a_backup_never_replaces_a_file_unless_told_and_never_the_state_itself(tmp_path: Path) -> None:
    source = tmp_path / "sfconnector.db"
    _store(source).close()
    target = tmp_path / "copy.db"
    target.write_text("an older backup")
    with pytest.raises(StateError, match="--force"):
        backup_state(source, target)
    assert backup_state(source, target, overwrite=True).size_bytes > 0
    with pytest.raises(StateError, match="cannot replace the state file itself"):
        backup_state(source, source, overwrite=True)
    directory = tmp_path / "backups"
    directory.mkdir()
    assert backup_state(source, directory).destination == str(directory / "sfconnector.db")


def test_a_state_from_a_newer_sfconnector_can_still_be_backed_up(tmp_path: Path) -> None:
    source = tmp_path / "sfconnector.db"
    _store(source).close()
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01')")
    assert backup_state(source, tmp_path / "copy.db").schema_version == 999


def test_the_state_remembers_its_org_and_refuses_another(tmp_path: Path) -> None:
    path = tmp_path / "sfconnector.db"
    with _store(path) as store:
        assert store.org_id() is None
        assert store.bind_org(ORG) is True
        assert store.bind_org(ORG) is False
        assert store.bind_org(ORG[:15]) is False  # the 15-character form of the same id
        with pytest.raises(
            StateOfAnotherOrg, match=f"belongs to org {ORG}, but the config logs in to org 00D"
        ):
            store.bind_org("00D000000000999AAA")
        assert store.org_id() == ORG


def test_read_only_opening_never_migrates_and_explains_other_schema_versions(tmp_path: Path) -> None:
    path = tmp_path / "sfconnector.db"
    with pytest.raises(StateError, match="no state at"):
        StateStore.open(path, readonly=True)
    _store(path).close()
    with StateStore.open(path, readonly=True) as store:
        assert store.schema_version == known_version()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.record_readings({"x": "y"})
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = ?", [known_version()])
    with pytest.raises(StateError, match=r"older than this sfconnector's .* migrates it when it starts"):
        StateStore.open(path, readonly=True)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == known_version() - 1
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01')")
    with pytest.raises(StateTooNew, match="newer than this sfconnector knows"):
        StateStore.open(path, readonly=True)


def test_status_on_a_newer_state_explains_instead_of_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "sfconnector.db"
    _store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01')")
    for args in (["status"], ["deadletters", "list"]):
        result = CliRunner().invoke(main, [*args, "--state", str(path)])
        assert result.exit_code == 1, result.output
        assert "schema version 999, newer than this sfconnector knows" in result.output
        assert "Traceback" not in result.output


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root (chown)")
def test_root_reading_the_state_leaves_its_side_files_to_the_daemons_user(tmp_path: Path) -> None:
    path = tmp_path / "sfconnector.db"
    _store(path).close()
    for name in (path, tmp_path):
        os.chown(name, 65534, 65534)  # the daemon's own (DynamicUser=) user
    with StateStore.open(path, readonly=True) as store:
        store.status()
    sides = [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert sides and all(p.stat().st_uid == 65534 for p in sides)
