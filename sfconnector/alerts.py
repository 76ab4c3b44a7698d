"""Alerts the daemon raises in its log, with stable names, and the metric that says which stand.

| log event                    | raised when                                                                      |
|------------------------------|----------------------------------------------------------------------------------|
| `alert.checkpoint_age`       | a channel's checkpoint is older than half its event retention while the channel  |
|                              | is not caught up (stream down, batches waiting or failing): a resubscription     |
|                              | after the retention loses events and forces a reconciliation sweep               |
| `alert.api_allocation_low`   | less than `health.api_left_alert` of the org's daily API allocation is left       |
| `alert.dead_letters_growing` | the unresolved dead letters in the state grew since the last look                |
| `alert.routing_target_missing` | `routing.target_missing` was logged (a rule names a user or queue the org     |
|                              | does not have); cleared by a config reload                                       |

Each is logged once when it is raised (warning) and once as `alert.cleared` when it clears; while it
stands, `sfconnector_alert_active{alert="<name>"}` is 1. The checks are pure functions of readings, so they
are tested without a daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from sfconnector.metrics import Metrics

CHECKPOINT_AGE = "alert.checkpoint_age"
API_ALLOCATION_LOW = "alert.api_allocation_low"
DEAD_LETTERS_GROWING = "alert.dead_letters_growing"
ROUTING_TARGET_MISSING = "alert.routing_target_missing"
ALERT_NAMES = (CHECKPOINT_AGE, API_ALLOCATION_LOW, DEAD_LETTERS_GROWING, ROUTING_TARGET_MISSING)

HOUR_S = 3600.0
# Salesforce keeps change events and high-volume platform events 72 h, PushTopic and generic events 24 h.
RETENTION_S = {"/data/": 72 * HOUR_S, "/event/": 72 * HOUR_S, "/topic/": 24 * HOUR_S, "/u/": 24 * HOUR_S}

_log = structlog.get_logger("sfconnector.alerts")


def retention_seconds(channel: str) -> float:
    """How long Salesforce keeps `channel`'s events for replay."""
    for prefix, seconds in RETENTION_S.items():
        if channel.startswith(prefix):
            return seconds
    return 24 * HOUR_S  # the shorter one when in doubt


def checkpoints_too_old(
    ages: Mapping[str, float], retention: Mapping[str, float], *, caught_up: bool
) -> dict[str, float]:
    """channel -> share of its retention its checkpoint has used, for those past half of it.

    A caught-up channel (stream connected, nothing waiting) is merely quiet: its next event moves it."""
    if caught_up:
        return {}
    return {
        channel: age / retention[channel]
        for channel, age in ages.items()
        if channel in retention and age > retention[channel] / 2
    }


def api_left_share(used: int, maximum: int) -> float:
    return max(0.0, (maximum - used) / maximum) if maximum > 0 else 1.0


class Alerts:
    """Which alerts stand, per subject (a channel, a target...); logs each change once."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._standing: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ALERT_NAMES}
        metrics.declare_alerts(ALERT_NAMES)
        for name in ALERT_NAMES:
            metrics.alerts.labels(alert=name).set(0)

    def active(self, name: str) -> dict[str, dict[str, Any]]:
        """subject -> the fields it was raised with."""
        return dict(self._standing[name])

    def raise_(self, name: str, subject: str = "", *, repeat: bool = False, **fields: Any) -> bool:
        """Raise (or keep) `name` for `subject`; True when it was not standing before. `repeat`: log it
        again even if it stands (each growth of the dead letters is news)."""
        standing = self._standing[name]
        new = subject not in standing
        standing[subject] = fields
        if new or repeat:
            _log.warning(name, **({"subject": subject} if subject else {}), **fields)
        self._metrics.alerts.labels(alert=name).set(1)
        return new

    def clear(self, name: str, subject: str = "", **fields: Any) -> bool:
        standing = self._standing[name]
        if subject not in standing:
            return False
        del standing[subject]
        _log.info("alert.cleared", alert=name, **({"subject": subject} if subject else {}), **fields)
        self._metrics.alerts.labels(alert=name).set(1 if standing else 0)
        return True

    def set(self, name: str, subject: str, raised: bool, **fields: Any) -> None:
        if raised:
            self.raise_(name, subject, **fields)
        else:
            self.clear(name, subject)

    def clear_all(self, name: str) -> None:
        for subject in list(self._standing[name]):
            self.clear(name, subject)
