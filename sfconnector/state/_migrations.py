"""Versioned schema migrations of the state file.

Each migration is a function applied once, in its own transaction together with its ``schema_version`` row,
so a crash half-way through leaves the file at the previous version. Append new migrations; never edit one
that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

from ..clock import Clock, system_clock
from ._types import StateTooNew


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite_utils.Database], None]


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.table("checkpoints").create(
        {"channel": str, "replay_id": int, "updated_at": str},
        pk="channel",
        not_null={"replay_id", "updated_at"},
    )
    db.table("outbox").create(
        {
            "seq": int,
            "key": str,
            "op": str,
            "sobject": str,
            "fields": str,
            "record_id": str,
            "external_id_field": str,
            "expect": str,
            "depends_on": str,
            "status": str,
            "attempts": int,
            "last_error": str,
            "next_attempt_at": str,
            "result_id": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="seq",
        not_null={"key", "op", "sobject", "fields", "status", "attempts", "next_attempt_at", "created_at"},
        defaults={"status": "pending", "attempts": 0},
    )
    db.execute("CREATE UNIQUE INDEX outbox_key ON outbox(key)")
    db.execute("CREATE INDEX outbox_due ON outbox(status, next_attempt_at, seq)")
    db.table("processed_events").create({"key": str, "processed_at": str}, pk="key")
    db.table("routing_log").create(
        {
            "id": int,
            "lead_id": str,
            "advocate_id": str,
            "standard_owner_id": str,
            "routed_owner_id": str,
            "rule": str,
            "reason": str,
            "decided_at": str,
        },
        pk="id",
    )
    db.execute("CREATE INDEX routing_log_lead ON routing_log(lead_id, id)")
    db.table("dead_letters").create(
        {
            "id": int,
            "source": str,
            "channel": str,
            "replay_id": int,
            "payload": str,
            "reason": str,
            "created_at": str,
        },
        pk="id",
        not_null={"source", "payload", "reason", "created_at"},
    )
    db.table("errors").create({"id": int, "where_": str, "message": str, "at": str}, pk="id")


def _v2_live_since(db: sqlite_utils.Database) -> None:
    # A channel started at "latest" has no replay id to resume from until its first batch commits; when it
    # first went live is what lets a restart before that replay (-2) from then on instead of losing it.
    db.table("live_since").create({"channel": str, "since_ms": int}, pk="channel", not_null={"since_ms"})


def _v3_readings(db: sqlite_utils.Database) -> None:
    # What the running daemon last saw (API usage, the time of the last event per channel) for `status`,
    # which reads the file while the daemon runs and cannot ask it.
    db.table("readings").create({"name": str, "value": str, "updated_at": str}, pk="name", not_null={"value"})


def _v4_identity(db: sqlite_utils.Database) -> None:
    # Which org this file belongs to: checkpoints and outbox entries of one org must never be replayed or
    # written to another (a copied config, a sandbox refresh pointed at production's state).
    db.table("identity").create({"name": str, "value": str, "recorded_at": str}, pk="name", not_null={"value"})


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "checkpoints, outbox, processed events, routing log, dead letters", _v1_initial),
    Migration(2, "when each channel started at latest first went live", _v2_live_since),
    Migration(3, "the daemon's last readings: API usage, event times", _v3_readings),
    Migration(4, "the org the state belongs to", _v4_identity),
)


def known_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """The newest schema version this build knows."""
    return max((m.version for m in migrations), default=0)


def too_new_message(version: int, known: int) -> str:
    return (
        f"the state file is at schema version {version}, newer than this sfconnector knows ({known}): it was "
        "written by a newer sfconnector. Run that version (or newer), or restore a backup taken before the "
        "upgrade (docs/operations.md, Upgrades); this build never writes to it"
    )


def current_version(db: sqlite_utils.Database) -> int:
    if "schema_version" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(
    db: sqlite_utils.Database, migrations: tuple[Migration, ...] = MIGRATIONS, clock: Clock = system_clock
) -> int:
    """Apply the missing migrations; the resulting version. Safe to call on every open."""
    with db.atomic():
        if "schema_version" not in db.table_names():
            db.table("schema_version").create(
                {"version": int, "description": str, "applied_at": str}, pk="version"
            )
    version = current_version(db)
    known = known_version(migrations)
    if version > known:
        raise StateTooNew(too_new_message(version, known))
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= version:
            continue
        with db.atomic():
            migration.apply(db)
            db.table("schema_version").insert(
                {
                    "version": migration.version,
                    "description": migration.description,
                    "applied_at": clock().isoformat(),
                }
            )
        version = migration.version
    return version
