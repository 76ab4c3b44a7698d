"""Config -> a ready `Reconciler`, and how far back an automatic sweep looks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sfconnector.clock import Clock, system_clock
from sfconnector.config import Config
from sfconnector.reconcile._sweep import Reconciler
from sfconnector.salesforce import SalesforceClient
from sfconnector.state import StateStore
from sfconnector.wiring import decision_rules, org_lookups

# Checkpoints are written when a batch commits, not when its events were created: look a little further back.
OUTAGE_MARGIN = timedelta(hours=1)


def reconciler_for(
    config: Config, client: SalesforceClient, state: StateStore | None, clock: Clock = system_clock
) -> Reconciler:
    """A sweep with the daemon's rules and its own lookups (their cache is not shared across threads)."""
    return Reconciler(
        client,
        decision_rules(config),
        org_lookups(config, client),
        state,
        integration_username=config.salesforce.auth.username,
        rewards_enabled=config.rewards is not None,
        clock=clock,
    )


def sweep_since(state: StateStore, channels: Iterable[str], now: datetime, lookback_s: float) -> datetime:
    """Where an automatic sweep starts: `lookback_s` back from now, or further back, to the last time a
    checkpoint moved (less a margin), when the daemon was down longer than that: everything since may have
    been missed. Read it when the daemon starts, before the first batch moves a checkpoint again.
    """
    default = now - timedelta(seconds=lookback_s)
    wanted = set(channels)
    moments = [c.updated_at for c in state.status().channels if c.channel in wanted and c.updated_at]
    if not moments:
        return default
    return min(min(moments) - OUTAGE_MARGIN, default)
