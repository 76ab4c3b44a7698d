"""SIGTERM while a batch cannot be decided (the org refuses every query) exits promptly, and the batch it
could not decide is routed, exactly once, after a restart: also on a fresh install that never committed a
checkpoint (started at "latest", it resumes from when it first went live, not from the restart)."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from conftest import control, salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfemulator.server import Emulator


def test_sigterm_while_lookups_keep_failing_exits_at_once_and_the_lead_is_routed_after_restart(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    daemon = DaemonProcess(write_config(tmp_path, emulator_reset)).start()
    sf = salesforce_as(emulator_reset, emulator_http)
    try:
        # A first referral gives the channel a checkpoint.
        first = _referral(sf, "First")
        wait_for(lambda: sf.Lead.get(first)["Advocate__c"], timeout=20, what="the first lead routed")
        _stuck_lead_then_sigterm_then_restart(emulator_reset, emulator_http, daemon, sf, "Stuck")
    finally:
        daemon.stop()


def test_a_fresh_install_stopped_before_its_first_commit_routes_the_lead_after_restart(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    daemon = DaemonProcess(write_config(tmp_path, emulator_reset)).start()
    sf = salesforce_as(emulator_reset, emulator_http)
    try:
        _stuck_lead_then_sigterm_then_restart(emulator_reset, emulator_http, daemon, sf, "Fresh")
    finally:
        daemon.stop()


def _stuck_lead_then_sigterm_then_restart(
    emulator: Emulator, http: requests.Session, daemon: DaemonProcess, sf: Salesforce, name: str
) -> None:
    """A referral whose batch keeps failing; SIGTERM exits at once; after a restart it is routed once."""
    control(
        emulator,
        http,
        "POST",
        "faults",
        {
            "method": "GET",
            "path": "/query",
            "status": 400,
            "errorCode": "INVALID_FIELD",
            "message": "No such column 'Referral_Code__c' on entity 'Advocate__c'",
            "count": 100000,
        },
    )
    lead_id = _referral(sf, name)
    wait_for(lambda: "pipeline.batch_retry" in daemon.log(), timeout=10, what="a failing batch")
    started = time.monotonic()
    assert daemon.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert "pipeline.batch_left_for_restart" in daemon.log()

    control(emulator, http, "DELETE", "faults")
    daemon.start()
    wait_for(lambda: sf.Lead.get(lead_id)["Advocate__c"], timeout=20, what="the lead routed after restart")
    referrals = sf.query(f"SELECT Id FROM Referral__c WHERE Lead__c = '{lead_id}'")["records"]
    assert len(referrals) == 1


def _referral(sf: Salesforce, name: str) -> str:
    lead_id: str = sf.Lead.create(
        {
            "LastName": name,
            "Company": f"{name} Co",
            "Email": f"{name.lower()}@shutdown.example",
            "Referral_Code__c": "GRACE-1001",
        }
    )["id"]
    return lead_id
