"""The running daemon sweeps on its own: when Salesforce sends a gap event, and every `reconcile.period`.

A lead written under the connector's own client name never triggers the stream (it looks like the
connector's own write), so it stands for a change the stream did not deliver; only a sweep routes it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import requests
from conftest import control, new_token
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfemulator.server import Emulator


def _unseen_lead(emulator: Emulator, http: requests.Session, name: str) -> str:
    """A referral lead whose change event the daemon skips (it carries the daemon's own client name)."""
    response = http.post(
        f"{emulator.base_url}/services/data/v59.0/sobjects/Lead/",
        json={
            "LastName": name,
            "Company": "Unseen Co",
            "Email": f"{name.lower()}@unseen.example",
            "Referral_Code__c": "ADA-1003",
            "Referral_Channel__c": "SMS",
        },
        headers={
            "Authorization": f"Bearer {new_token(emulator, http)}",
            "Sforce-Call-Options": "client=sfconnector",
        },
        timeout=10,
    )
    response.raise_for_status()
    lead_id: str = response.json()["id"]
    return lead_id


def _referral_keys(sf: Salesforce) -> Counter[str]:
    return Counter(
        r["External_Key__c"] for r in sf.query_all("SELECT External_Key__c FROM Referral__c")["records"]
    )


def test_a_gap_event_makes_the_daemon_sweep_and_route_what_it_missed(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """GAP_CREATE on a lead the stream never showed: the daemon asks for a sweep and routes that lead once."""
    daemon = DaemonProcess(write_config(tmp_path, emulator_reset, reconcile__period="0s")).start()
    try:
        lead_id = _unseen_lead(emulator_reset, emulator_http, "Gapped")
        control(
            emulator_reset,
            emulator_http,
            "POST",
            "streaming/gap",
            {"entity": "Lead", "changeType": "GAP_CREATE", "recordIds": [lead_id]},
        )
        wait_for(lambda: _referral_keys(sf)[f"lead:{lead_id}"] == 1, what="the gapped lead reconciled")
        wait_for(lambda: "reconcile.swept" in daemon.log_path.read_text(), what="the sweep logged")
    finally:
        daemon.stop()
    assert "GAP_CREATE" in daemon.log_path.read_text()
    ada = sf.query("SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = 'ADA-1003'")["records"][0]
    lead = sf.Lead.get(lead_id)
    assert (lead["OwnerId"], lead["Advocate__c"]) == (ada["OwnerId"], ada["Id"])
    assert _referral_keys(sf) == Counter({f"lead:{lead_id}": 1})


def test_the_periodic_sweep_routes_a_lead_the_stream_never_delivered(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """With reconcile.period set, no trigger is needed: the next scheduled sweep finds the lead."""
    daemon = DaemonProcess(write_config(tmp_path, emulator_reset, reconcile__period="1s")).start()
    try:
        lead_id = _unseen_lead(emulator_reset, emulator_http, "Scheduled")
        wait_for(lambda: _referral_keys(sf)[f"lead:{lead_id}"] == 1, what="the scheduled sweep's repair")
    finally:
        daemon.stop()
    log_text = daemon.log_path.read_text()
    assert '"period"' in log_text and "reconcile.requested" not in log_text
    assert _referral_keys(sf) == Counter({f"lead:{lead_id}": 1})
