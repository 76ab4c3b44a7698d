"""What a config reload (SIGHUP, `systemctl reload`) may change in a running daemon, and what needs a restart.

Taken between batches: mapping, routing, attribution, rewards, notifications, reconcile, logging,
`stream.batch`, `health.unhealthy_after` and `health.api_left_alert`. Needing a restart (the daemon keeps
the old config and says so): `salesforce` (the org, the login, its secrets), `state`, the channels, where a
channel starts, `stream.max_in_flight`, `writer`, and where /healthz listens.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sfconnector.config import Config

# (what to show, how to read it from a Config)
_NEEDS_RESTART: tuple[tuple[str, Any], ...] = (
    ("salesforce", lambda c: c.salesforce),
    ("state.path", lambda c: c.state.path),
    ("stream.channels", lambda c: c.stream.channels),
    ("stream.start", lambda c: c.stream.start),
    ("stream.max_in_flight", lambda c: c.stream.max_in_flight),
    ("writer", lambda c: c.writer),
    ("health.enabled", lambda c: c.health.enabled),
    ("health.listen", lambda c: (c.health.host, c.health.port)),
)
_RELOADABLE: tuple[tuple[str, Any], ...] = (
    ("mapping", lambda c: c.mapping),
    ("rules.routing", lambda c: c.routing),
    ("rules.attribution", lambda c: c.attribution),
    ("rules.rewards", lambda c: c.rewards),
    ("rules.notifications", lambda c: c.notifications),
    ("reconcile", lambda c: c.reconcile),
    ("logging", lambda c: c.logging),
    ("stream.batch", lambda c: c.stream.batch),
    ("health", lambda c: replace(c.health, host="", port=0, enabled=True)),
)


def _differs(old: Any, new: Any) -> bool:
    try:
        return bool(old != new)
    except Exception:  # compiled rules that cannot be compared: say they changed
        return True


def needs_restart(old: Config, new: Config) -> list[str]:
    """The settings that differ and that a running daemon cannot take (empty: the reload can proceed)."""
    return [name for name, read in _NEEDS_RESTART if _differs(read(old), read(new))]


def changed_sections(old: Config, new: Config) -> list[str]:
    """The reloadable settings that differ (for the log line of a reload)."""
    return [name for name, read in _RELOADABLE if _differs(read(old), read(new))]
