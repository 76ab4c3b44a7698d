"""The daemon's durable local state: one SQLite file (WAL), versioned by migrations."""

from ._migrations import MIGRATIONS, Migration, known_version
from ._store import StateStore, backup_state
from ._types import (
    CREATE_OPS,
    BackupSummary,
    ChannelStatus,
    DeadLetter,
    DecidedBatch,
    ErrorRecord,
    NewDeadLetter,
    OutboxEntry,
    RoutingLogRow,
    StateError,
    StateOfAnotherOrg,
    StateSetupError,
    StateStatus,
    StateTooNew,
)

__all__ = [
    "CREATE_OPS",
    "MIGRATIONS",
    "BackupSummary",
    "ChannelStatus",
    "DeadLetter",
    "DecidedBatch",
    "ErrorRecord",
    "Migration",
    "NewDeadLetter",
    "OutboxEntry",
    "RoutingLogRow",
    "StateError",
    "StateOfAnotherOrg",
    "StateSetupError",
    "StateStatus",
    "StateStore",
    "StateTooNew",
    "backup_state",
    "known_version",
]
