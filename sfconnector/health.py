"""The health and metrics endpoint IT points its monitoring at.

`GET /healthz` answers 200 while the daemon is subscribed and its outbox drains, 503
with the reasons otherwise; `GET /metrics` is the Prometheus exposition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from sfconnector.metrics import Metrics


@dataclass
class HealthState:
    """What the daemon reports about itself; updated from the event loop."""

    subscribed: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    outbox_stuck_since: float | None = None
    last_error: str | None = None

    def progress(self) -> None:
        self.last_progress = time.monotonic()


def problems(
    state: HealthState, *, stall_after: float, now: Callable[[], float] = time.monotonic
) -> list[str]:
    """Why the daemon is unhealthy; empty when healthy."""
    found = []
    if not state.subscribed:
        found.append("not subscribed to Salesforce streaming")
    if now() - state.last_progress > stall_after:
        found.append(f"no progress for {now() - state.last_progress:.0f}s")
    if state.outbox_stuck_since is not None and now() - state.outbox_stuck_since > stall_after:
        found.append("outbox has not drained")
    return found


class HealthServer:
    """aiohttp server for /healthz and /metrics; an async context manager."""

    def __init__(
        self, host: str, port: int, state: HealthState, metrics: Metrics, *, stall_after: float = 300.0
    ) -> None:
        self._host, self._port = host, port
        self._state, self._metrics, self._stall_after = state, metrics, stall_after
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        found = problems(self._state, stall_after=self._stall_after)
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
