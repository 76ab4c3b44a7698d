"""The daemon's durable local state: one SQLite file (WAL), versioned by migrations."""

from ._migrations import MIGRATIONS, Migration
from ._store import StateStore
from ._types import (
    CREATE_OPS,
    ChannelStatus,
    DeadLetter,
    DecidedBatch,
    ErrorRecord,
    NewDeadLetter,
    OutboxEntry,
    RoutingLogRow,
    StateError,
    StateStatus,
)

__all__ = [
    "CREATE_OPS",
    "MIGRATIONS",
    "ChannelStatus",
    "DeadLetter",
    "DecidedBatch",
    "ErrorRecord",
    "Migration",
    "NewDeadLetter",
    "OutboxEntry",
    "RoutingLogRow",
    "StateError",
    "StateStatus",
    "StateStore",
]
