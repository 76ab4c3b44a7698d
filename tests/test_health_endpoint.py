"""The health and metrics endpoint, over a real socket."""

import asyncio
import json
import urllib.request

from sfconnector.health import HealthServer, HealthState, problems
from sfconnector.metrics import Metrics


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_healthz_is_503_until_subscribed_then_200_and_metrics_are_exported() -> None:
    async def scenario() -> None:
        state, metrics = HealthState(), Metrics()
        metrics.events_received.labels(channel="/data/LeadChangeEvent").inc(3)
        async with HealthServer("127.0.0.1", 0, state, metrics) as server:
            assert server.port
            status, body = await asyncio.to_thread(_get, server.port, "/healthz")
            assert status == 503
            assert "not subscribed" in json.loads(body)["problems"][0]
            state.subscribed = True
            status, body = await asyncio.to_thread(_get, server.port, "/healthz")
            assert (status, json.loads(body)["status"]) == (200, "ok")
            status, body = await asyncio.to_thread(_get, server.port, "/metrics")
            assert status == 200
            assert b'sfconnector_events_received_total{channel="/data/LeadChangeEvent"} 3.0' in body

    asyncio.run(scenario())


def test_a_stalled_daemon_is_unhealthy() -> None:
    state = HealthState(subscribed=True, last_progress=100.0)
    assert problems(state, stall_after=60, now=lambda: 130.0) == []
    assert problems(state, stall_after=60, now=lambda: 200.0) == ["no progress for 100s"]


def test_batches_that_keep_failing_make_the_daemon_unhealthy_with_the_error() -> None:
    state = HealthState(subscribed=True, last_progress=100.0, unhealthy_after=10)
    state.batch_failing_since, state.batch_error = 100.0, "INVALID_SESSION_ID: Session expired"
    assert problems(state, now=lambda: 105.0) == []
    assert problems(state, now=lambda: 112.0) == [
        "batches failing for 12s: INVALID_SESSION_ID: Session expired"
    ]
    state.batch_done()
    assert problems(state, now=lambda: 112.0) == []


def test_an_outbox_that_does_not_drain_makes_the_daemon_unhealthy_with_the_last_write_error() -> None:
    state = HealthState(subscribed=True, last_progress=100.0, unhealthy_after=10)
    state.outbox_stuck_since, state.outbox_error = 100.0, "SERVER_UNAVAILABLE: Server Unavailable"
    assert problems(state, now=lambda: 130.0) == [
        "outbox not draining for 30s: SERVER_UNAVAILABLE: Server Unavailable"
    ]
    state.outbox_moving()
    assert problems(state, now=lambda: 130.0) == []
