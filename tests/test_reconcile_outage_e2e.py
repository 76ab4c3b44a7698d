"""An outage longer than event retention: the daemon says so, reconciles, and no referral is missed or doubled.

Stop the daemon (SIGTERM), create referral leads while it is down, let the org's retention drop every event
past its checkpoint (control API), restart: the stored replay id is expired, the daemon logs
`stream.replay_expired`, sweeps by SOQL and routes every lead of the outage exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests
from conftest import control
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfconnector.state import StateStore
from sfemulator.server import Emulator

OUTAGE_LEADS = 12
CHANNEL = "/data/LeadChangeEvent"


def _count(sf: Salesforce, soql: str) -> int:
    return int(sf.query(soql)["totalSize"])


def _lead(sf: Salesforce, name: str, code: str) -> str:
    lead_id: str = sf.Lead.create(
        {
            "LastName": name,
            "Company": "Outage Co",
            "Email": f"{name.lower()}@outage.example",
            "Referral_Code__c": code,
            "Referral_Channel__c": "Verbal",
        }
    )["id"]
    return lead_id


@pytest.mark.slow
def test_expired_replay_id_after_an_outage_is_reported_and_reconciled_exactly_once(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Every referral created while the daemon was down and its events expired is routed exactly once."""
    config = write_config(tmp_path, emulator_reset)
    grace = sf.query("SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")["records"][
        0
    ]
    daemon = DaemonProcess(config).start()
    try:
        before = _lead(sf, "Before", "GRACE-1001")
        wait_for(
            lambda: _count(sf, f"SELECT COUNT() FROM Referral__c WHERE Lead__c = '{before}'") == 1,
            what="the lead before the outage routed",
        )
        assert daemon.terminate() == 0
        with StateStore.open(tmp_path / "state.db") as state:
            checkpoint = state.checkpoint(CHANNEL)
        assert checkpoint is not None

        outage = [_lead(sf, f"Outage{i:02d}", "grace 1001") for i in range(OUTAGE_LEADS)]
        dropped = control(
            emulator_reset,
            emulator_http,
            "POST",
            "streaming/expire",
            {"before_replay_id": checkpoint + 10**6},
        )["dropped"]
        assert dropped >= OUTAGE_LEADS, "the outage's events must be gone for this test to mean anything"

        daemon.start()
        wait_for(
            lambda: "stream.replay_expired" in daemon.log_path.read_text(),
            what="the expired replay id reported",
        )
        wait_for(
            lambda: (
                _count(sf, "SELECT COUNT() FROM Referral__c") >= OUTAGE_LEADS + 1
                and len(control(emulator_reset, emulator_http, "GET", "emails")) >= OUTAGE_LEADS + 1
            ),
            timeout=30,
            what="every outage referral reconciled and its advocate told",
        )
        wait_for(lambda: "reconcile.swept" in daemon.log_path.read_text(), what="the sweep finished")
    finally:
        daemon.stop()

    log_text = daemon.log_path.read_text()
    assert "reconcile.requested" in log_text
    referrals = sf.query_all("SELECT External_Key__c, Advocate__c, Lead__c FROM Referral__c")["records"]
    keys = Counter(r["External_Key__c"] for r in referrals)
    assert set(keys) == {f"lead:{lead_id}" for lead_id in [before, *outage]}, "missing or extra referrals"
    assert max(keys.values()) == 1, "a referral was written twice"
    leads = sf.query_all("SELECT Id, OwnerId, Advocate__c FROM Lead WHERE Company = 'Outage Co'")["records"]
    assert {(lead["OwnerId"], lead["Advocate__c"]) for lead in leads} == {(grace["OwnerId"], grace["Id"])}
    tasks = Counter(t["WhoId"] for t in sf.query_all("SELECT WhoId FROM Task")["records"])
    assert set(tasks) == {before, *outage} and max(tasks.values()) == 1
    bodies = Counter(e["emailBody"] for e in control(emulator_reset, emulator_http, "GET", "emails"))
    assert sum(bodies.values()) == OUTAGE_LEADS + 1 and max(bodies.values()) == 1, (
        "an advocate was told twice"
    )
