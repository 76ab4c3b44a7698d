"""The one clock: every part that asks for the time takes it from a clock its caller passes.

Two kinds of time meet in sfconnector, and they are never mixed up:

- the org's time says when something happened in Salesforce (an event's commit timestamp, a record's
  CreatedDate, an opportunity's CloseDate); it decides business dates: promotion windows, hold periods,
  clawback windows;
- the local clock (this module) decides only local scheduling: retry and backoff times, when an outbox entry
  is due, pruning, sweep schedules, the stamps on the state file's rows.

A clock is a function returning an aware UTC datetime, so a test passes ``lambda: T0`` or a `ManualClock`
and never depends on today's date. `clock_starting_at` runs a clock from a fixed instant at real speed: the
demo runs both the emulator and the daemon on one, so its printed dates and amounts are the same every day.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns now as an aware UTC datetime."""


def system_clock() -> datetime:
    """The machine's clock, in UTC."""
    return datetime.now(UTC)


def clock_starting_at(instant: datetime, base: Clock = system_clock) -> Clock:
    """A clock that reads `instant` now and then runs at the speed of `base`."""
    if instant.tzinfo is None:
        raise ValueError("a clock's starting instant needs a time zone")
    offset = instant - base()

    def now() -> datetime:
        return base() + offset

    return now


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (``2026-12-07T15:00:00Z``); a date alone is midnight UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to (tests): ``clock = ManualClock(T0); clock.advance(seconds=5)``."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a clock's instant needs a time zone")
        self._now = at.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by a `timedelta(**delta)`; returns the new now."""
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = at.astimezone(UTC)
