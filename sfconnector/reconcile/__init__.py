"""Reconciliation: the SOQL sweep that finds what the event stream missed and repairs it through the outbox.

    summary = Reconciler(client, rules, lookups, state).run(since, dry_run=False, progress=callback)

Used by `sfconnector reconcile` and by the daemon after an expired replay id, gap or overflow events, and
on `reconcile.period`.
"""

from sfconnector.reconcile._findings import KIND_LABELS, KINDS, Finding, FindingKind, Repair
from sfconnector.reconcile._sweep import (
    BATCH_SIZE,
    PAGE_SIZE,
    ProgressCallback,
    ReconcileClient,
    Reconciler,
    ReconcileSummary,
)
from sfconnector.reconcile._wiring import reconciler_for, sweep_since

__all__ = [
    "BATCH_SIZE",
    "KINDS",
    "KIND_LABELS",
    "PAGE_SIZE",
    "Finding",
    "FindingKind",
    "ProgressCallback",
    "ReconcileClient",
    "ReconcileSummary",
    "Reconciler",
    "Repair",
    "reconciler_for",
    "sweep_since",
]
