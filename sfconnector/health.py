"""The health and metrics endpoint IT points its monitoring at.

`GET /healthz` answers 200 ``{"status": "ok"}`` while the daemon is subscribed and making progress, and
503 with the reasons otherwise:

- not subscribed to Salesforce streaming (yet, or any more);
- batches failing for N s: the batch in hand has kept failing to be decided or committed for longer than
  `health.unhealthy_after` (the org refuses the lookups, the disk is full...), with the last error;
- outbox not draining for N s: writes are waiting and none has succeeded for longer than that, with the
  error of the last write retried;
- no progress for N s: nothing committed, written, or answered by the stream for five minutes (or
  `health.unhealthy_after`, if longer).

`GET /metrics` is the Prometheus exposition (`sfconnector.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from sfconnector.metrics import Metrics

STALL_AFTER_S = 300.0


@dataclass
class HealthState:
    """What the daemon reports about itself; updated from the event loop."""

    subscribed: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    outbox_stuck_since: float | None = None  # writes waiting and none succeeded since (monotonic)
    outbox_error: str | None = None
    batch_failing_since: float | None = None  # the batch in hand first failed then (monotonic)
    batch_error: str | None = None
    last_error: str | None = None
    unhealthy_after: float = 60.0
    stall_after: float = STALL_AFTER_S

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def batch_failed(self, error: str) -> None:
        if self.batch_failing_since is None:
            self.batch_failing_since = time.monotonic()
        self.batch_error = error

    def batch_done(self) -> None:
        self.batch_failing_since, self.batch_error = None, None

    def outbox_stuck(self, error: str | None) -> None:
        if self.outbox_stuck_since is None:
            self.outbox_stuck_since = time.monotonic()
        self.outbox_error = error or self.outbox_error

    def outbox_moving(self) -> None:
        self.outbox_stuck_since, self.outbox_error = None, None


def problems(
    state: HealthState, *, stall_after: float | None = None, now: Callable[[], float] = time.monotonic
) -> list[str]:
    """Why the daemon is unhealthy; empty when healthy."""
    at = now()
    stall = max(state.stall_after if stall_after is None else stall_after, state.unhealthy_after)
    found = []
    if not state.subscribed:
        found.append("not subscribed to Salesforce streaming")
    if state.batch_failing_since is not None and at - state.batch_failing_since > state.unhealthy_after:
        found.append(
            f"batches failing for {at - state.batch_failing_since:.0f}s: {state.batch_error or 'unknown error'}"
        )
    if state.outbox_stuck_since is not None and at - state.outbox_stuck_since > state.unhealthy_after:
        why = f": {state.outbox_error}" if state.outbox_error else ""
        found.append(f"outbox not draining for {at - state.outbox_stuck_since:.0f}s{why}")
    if at - state.last_progress > stall:
        found.append(f"no progress for {at - state.last_progress:.0f}s")
    return found


class HealthServer:
    """aiohttp server for /healthz and /metrics; an async context manager."""

    def __init__(
        self,
        host: str,
        port: int,
        state: HealthState,
        metrics: Metrics,
        *,
        stall_after: float | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._state, self._metrics = state, metrics
        if stall_after is not None:
            state.stall_after = stall_after
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        found = problems(self._state)
        self._metrics.healthy.set(0 if found else 1)
        body = {
            "status": "ok" if not found else "unhealthy",
            "problems": found,
            "last_error": self._state.last_error,
        }
        return web.json_response(body, status=200 if not found else 503)

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), content_type="text/plain", charset="utf-8")

    async def __aenter__(self) -> HealthServer:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
