"""systemd readiness, reload and watchdog notifications (sd_notify), stdlib only.

The protocol is one AF_UNIX datagram to $NOTIFY_SOCKET (a leading '@' means the
abstract namespace). Pings come from the event loop after real progress, never from
a timer thread, so a wedged loop is what the watchdog sees.

A reload is announced as ``RELOADING=1`` with ``MONOTONIC_USEC`` (the CLOCK_MONOTONIC time of the
reload, as ``Type=notify-reload`` requires) and finished with ``READY=1``, whether the new config was
taken or refused.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping

STATE_CHANGE_WAIT_S = 1.0
# The units set this next to TimeoutStopSec= (systemd does not pass that setting to the service).
STOP_TIMEOUT_ENV = "SFCONNECTOR_TIMEOUT_STOP_SEC"
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(min|ms|us|sec|s|m|hr|h)?")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


class Notifier:
    """Sends sd_notify messages when run under systemd; does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval: float | None = int(usec) / 2_000_000 if watchdog_for_us else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str, *, wait: float = 0.0) -> bool:
        """Send one message; a vanished socket must never take the daemon down.

        A listener that does not read (its queue full) must not stall the event loop: a watchdog ping or a
        status line is dropped at once; a state change (READY, RELOADING, STOPPING) waits up to `wait` s."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(wait if wait > 0 else 0.0)
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""), wait=STATE_CHANGE_WAIT_S)

    def reloading(self, status: str = "") -> bool:
        """The reload has begun (systemd ≥253 `Type=notify-reload` needs the monotonic timestamp)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(
            f"RELOADING=1\nMONOTONIC_USEC={usec}" + (f"\nSTATUS={status}" if status else ""),
            wait=STATE_CHANGE_WAIT_S,
        )

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", wait=STATE_CHANGE_WAIT_S)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")


def parse_timespan(text: str) -> float | None:
    """Seconds of a systemd time span ("90", "90s", "1min 30s", "500ms"); None for "infinity" or junk."""
    text = text.strip().lower()
    if not text or text == "infinity":
        return None
    total, pos = 0.0, 0
    for match in _SPAN.finditer(text):
        if text[pos : match.start()].strip():
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        return None
    return total


def drain_limit(
    configured: float | None,
    environ: Mapping[str, str] | None = None,
    *,
    request_timeout: float = 30.0,
    default: float = 30.0,
) -> tuple[float, str]:
    """How long SIGTERM may spend draining the outbox, and where that figure comes from.

    The drain must end before systemd's stop timeout sends SIGKILL, and the write in hand when it ends
    still finishes (up to one request timeout): with the unit's stop timeout known
    (`SFCONNECTOR_TIMEOUT_STOP_SEC`, set next to TimeoutStopSec=), the limit is that timeout less one
    request timeout and 5 s, or `writer.drain_timeout` if that is shorter. Without it, the setting or 30 s.
    """
    env = os.environ if environ is None else environ
    stop = parse_timespan(env.get(STOP_TIMEOUT_ENV, ""))
    if stop is None:
        if configured is not None:
            return configured, "writer.drain_timeout"
        return default, "default"
    budget = max(1.0, stop - request_timeout - 5.0)
    if configured is not None and configured <= budget:
        return configured, "writer.drain_timeout"
    return budget, f"{STOP_TIMEOUT_ENV}={env.get(STOP_TIMEOUT_ENV)} less one request timeout and 5s"
