"""An event the pipeline cannot decide because of a bug or data no rule expected (not the org being down)
must not hold up the referrals behind it forever: the batch is decided one message at a time, the bad one
becomes a dead letter with its original message, and the others are routed.

The emulator only emits well-formed events, so the malformed one (a lead change whose Email is a number, as
a stream could carry for a mapped field of another type) is handed to the running daemon's intake queue,
where the stream puts what it receives; everything after that is the real daemon against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from conftest import salesforce_as
from daemon_harness import write_config

from sfconnector.clock import system_clock
from sfconnector.config import load_config
from sfconnector.daemon import Daemon
from sfconnector.state import StateStore
from sfemulator.server import Emulator


def _malformed_lead_change() -> dict[str, Any]:
    return {
        "channel": "/data/LeadChangeEvent",
        "data": {
            "schema": "malformed",
            "event": {"replayId": 1},
            "payload": {
                "LastName": "Numeric",
                "Email": 12345,
                "Referral_Code__c": "GRACE-1001",
                "OwnerId": "0055g0000000001AAA",
                "ChangeEventHeader": {
                    "entityName": "Lead",
                    "recordIds": ["00Q5g0000000999EAA"],
                    "changeType": "CREATE",
                    "changeOrigin": "",
                    "transactionKey": "malformed-1",
                    "sequenceNumber": 1,
                    "commitTimestamp": int(system_clock().timestamp() * 1000),
                    "commitUser": "0055g0000000001AAA",
                    "commitNumber": 1,
                    "changedFields": [],
                },
            },
        },
    }


async def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)  # polling interval, not a wait for the thing itself


def test_an_undecidable_event_is_dead_lettered_and_the_referral_behind_it_is_routed(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, emulator_reset, health__enabled=False))
    sf = salesforce_as(emulator_reset, emulator_http)

    async def scenario() -> None:
        daemon = Daemon(config)
        run = asyncio.create_task(daemon.run())
        try:
            await _until(lambda: daemon.health.subscribed, "the daemon to subscribe")
            await daemon._queue.put(_malformed_lead_change())
            created = await asyncio.to_thread(
                sf.Lead.create,
                {
                    "LastName": "Behind",
                    "Company": "Behind Co",
                    "Email": "behind@poison.example",
                    "Referral_Code__c": "GRACE-1001",
                },
            )
            await _until(lambda: sf.Lead.get(created["id"])["Advocate__c"], "the lead behind it routed")
        finally:
            daemon.request_stop()
            await run

    asyncio.run(scenario())
    with StateStore.open(config.state.path) as state:
        letters = state.dead_letters()
    assert [(d.channel, d.reason.split(":")[0]) for d in letters] == [
        ("/data/LeadChangeEvent", "processing failed")
    ]
    assert letters[0].payload["data"]["payload"]["Email"] == 12345
