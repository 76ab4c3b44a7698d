"""Records the state store takes and returns (plain frozen dataclasses, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sfconnector.errors import SfconnectorError

OUTBOX_OPS = frozenset({"update", "upsert", "create_once", "create_assigned", "email"})
CREATE_OPS = frozenset({"create_once", "create_assigned"})  # look for the key first, then create


class StateError(SfconnectorError):
    """The state file cannot be used (written by a newer version, unknown dead letter, bad entry)."""


class StateSetupError(StateError):
    """The state file is not this daemon's to use as it stands (another org's, a newer schema): restarting
    cannot fix it, a person must (the daemon exits with status 3 and systemd does not restart it)."""


class StateOfAnotherOrg(StateSetupError):
    """The state file remembers another org than the one the config logs in to."""


class StateTooNew(StateSetupError):
    """The state file was written by a newer sfconnector (a schema version this build does not know)."""


@dataclass(frozen=True)
class BackupSummary:
    """What `sfconnector state backup` copied."""

    source: str
    destination: str
    schema_version: int
    size_bytes: int
    pages: int
    org_id: str | None


@dataclass(frozen=True)
class OutboxEntry:
    """One Salesforce write decided by the pipeline, keyed by a deterministic idempotency key."""

    key: str  # e.g. "lead-owner:<LeadId>", "referral:<LeadId>", "task:<LeadId>:call-advocate"
    op: str  # "update" | "upsert" | "create_once" | "create_assigned" (create_once, with the org's assignment
    # rules choosing the owner) | "email"
    sobject: str  # "Lead", "Referral__c", "Task"; "" for email
    fields: Mapping[str, Any]  # JSON-serialisable; for upsert includes the external id field's value
    record_id: str | None = None  # for update
    external_id_field: str | None = None  # for upsert (and create_once; default External_Key__c)
    # For update: apply only while the record still has these values; for upsert: only while the record is
    # absent (the upsert creates it) or still has them.
    expect: Mapping[str, Any] | None = None
    depends_on: str | None = None  # key of the entry whose result id fills "@{key}" placeholders in fields
    seq: int = 0
    attempts: int = 0
    status: str = "pending"  # pending | retrying | done | skipped | dead
    last_error: str | None = None
    result_id: str | None = None  # the record id Salesforce returned, once done
    next_attempt_at: datetime | None = None  # when it is (next) due
    created_at: datetime | None = None  # when the decision was committed (set when read back)


@dataclass(frozen=True)
class RoutingLogRow:
    """One routing decision, for `sfconnector status`/`explain` and audits."""

    lead_id: str | None
    advocate_id: str | None
    standard_owner_id: str | None
    routed_owner_id: str | None
    rule: str | None
    reason: str
    decided_at: datetime


@dataclass(frozen=True)
class NewDeadLetter:
    """A bad event (or a write that cannot succeed), kept with the reason."""

    source: str  # "event", "outbox", "reconcile", ...
    channel: str | None
    replay_id: int | None
    payload: Mapping[str, Any]
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    id: int
    source: str
    channel: str | None
    replay_id: int | None
    payload: Mapping[str, Any]
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class DecidedBatch:
    """Everything one batch of events decided; committed in one SQLite transaction."""

    checkpoints: Mapping[str, int] = field(
        default_factory=dict
    )  # channel -> replay id of the batch's last event
    outbox: Sequence[OutboxEntry] = ()
    processed_keys: Sequence[str] = ()  # "<channel>:<replayId>" or transactionKey+seq
    routing_log: Sequence[RoutingLogRow] = ()
    dead_letters: Sequence[NewDeadLetter] = ()
    # Dead letters this batch settles (an event decided again by `deadletters retry`): removed in the same
    # transaction, so a crash cannot leave both the dead letter and its decisions behind.
    resolves_dead_letters: Sequence[int] = ()


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    checkpoint: int | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ErrorRecord:
    where: str
    message: str
    at: datetime


@dataclass(frozen=True)
class StateStatus:
    """What `sfconnector status` shows."""

    channels: tuple[ChannelStatus, ...]
    outbox_pending: int
    outbox_retrying: int
    outbox_dead: int
    dead_letters: int
    last_errors: tuple[ErrorRecord, ...]
    oldest_pending_at: datetime | None = None
    schema_version: int = 0
