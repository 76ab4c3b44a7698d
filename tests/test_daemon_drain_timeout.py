"""SIGTERM with a slow org: when the drain timeout passes mid-write, the write in hand is still recorded in
the outbox before the state closes, so the restart sends nothing (no email) a second time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import requests
from conftest import control, salesforce_as
from daemon_harness import write_config

from sfconnector.config import load_config
from sfconnector.daemon import Daemon
from sfconnector.state import StateStore
from sfemulator.server import Emulator


async def _until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling interval, not a wait for the thing itself


def test_a_drain_cut_short_by_the_timeout_still_records_the_writes_salesforce_accepted(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, emulator_reset, health__enabled=False))
    sf = salesforce_as(emulator_reset, emulator_http)

    async def scenario() -> None:
        daemon = Daemon(config, drain_timeout=0.01)
        run = asyncio.create_task(daemon.run())
        await _until(lambda: daemon.health.subscribed, "the daemon to subscribe")
        control(emulator_reset, emulator_http, "POST", "latency", {"ms": 150})
        await asyncio.to_thread(
            sf.Lead.create,
            {
                "LastName": "Slow",
                "Company": "Slow Co",
                "Email": "slow@slow.example",
                "Referral_Code__c": "GRACE-1001",
            },
        )
        await _until(lambda: daemon.state.status().outbox_pending > 0, "decisions in the outbox")
        daemon.request_stop()
        await run

    asyncio.run(scenario())
    control(emulator_reset, emulator_http, "POST", "latency", {"ms": 0})
    with StateStore.open(config.state.path) as state:
        status = state.status()
    assert (status.outbox_pending, status.outbox_retrying) == (0, 0)
    emails = control(emulator_reset, emulator_http, "GET", "emails")
    assert [e["emailSubject"] for e in emails] == ["We received your referral: Slow"]
