"""Exactly-once effects across a crash: SIGKILL the daemon in the middle of a burst, restart it, count.

The oracle (after Kafka's exactly-once tests): every lead of the burst ends with exactly one Referral__c,
one call-first Task and one advocate email, and the right owner; nothing missing, nothing extra.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import new_token, salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfconnector.state import StateStore
from sfemulator.server import Emulator, trusting_session

BURST = 300


def _uncertain(workdir: Path) -> set[str]:
    """Bodies of the emails quarantined because the kill interrupted their sending (they may have gone out)."""
    with StateStore.open(workdir / "state.db") as state:
        return {
            str(d.payload["fields"]["emailBody"])
            for d in state.dead_letters()
            if "may have reached" in d.reason
        }


def _count(sf: Salesforce, soql: str) -> int:
    return int(sf.query(soql)["totalSize"])


def test_sigkill_mid_burst_loses_nothing_and_doubles_nothing(emulator: Emulator, tmp_path: Path) -> None:
    http = trusting_session(emulator.ca_path)
    base = emulator.base_url
    http.post(f"{base}/_emulator/reset", timeout=10).raise_for_status()
    sf = salesforce_as(emulator, http)
    advocate = sf.query("SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")[
        "records"
    ][0]
    # Slow Salesforce down a little so the kill lands while writes are in flight.
    http.post(f"{base}/_emulator/latency", json={"ms": 20, "jitter_ms": 10}, timeout=10).raise_for_status()
    daemon = DaemonProcess(write_config(tmp_path, emulator, stream__batch__max_events=50)).start()
    try:
        for start in range(0, BURST, 200):
            records = [
                {
                    "attributes": {"type": "Lead"},
                    "LastName": f"Burst-{i:04d}",
                    "Company": "Burst Co",
                    "Email": f"burst{i}@crash-test.example",
                    "Referral_Code__c": "grace 1001",
                }
                for i in range(start, min(BURST, start + 200))
            ]
            response = http.post(
                f"{base}/services/data/v59.0/composite/sobjects",
                json={"allOrNone": True, "records": records},
                headers={
                    "Authorization": f"Bearer {new_token(emulator, http)}",
                    "Sforce-Call-Options": "client=webform",
                },
                timeout=30,
            )
            response.raise_for_status()
        wait_for(
            lambda: _count(sf, "SELECT COUNT() FROM Referral__c WHERE Lead__r.Company = 'Burst Co'") >= 30,
            what="part of the burst written",
        )
        daemon.kill()
        written_before_restart = _count(sf, "SELECT COUNT() FROM Referral__c")
        assert written_before_restart < BURST, "the kill came too late to test anything"
        print(f"killed with {written_before_restart} of {BURST} referrals written")
        daemon.start()
        wait_for(
            lambda: (
                _count(sf, "SELECT COUNT() FROM Referral__c") >= BURST
                and _count(sf, "SELECT COUNT() FROM Task") >= BURST
            ),
            timeout=60,
            what="the whole burst routed after the restart",
        )
        wait_for(
            lambda: (
                len(
                    {e["emailBody"] for e in http.get(f"{base}/_emulator/emails", timeout=10).json()}
                    | _uncertain(tmp_path)
                )
                >= BURST
            ),
            timeout=30,
            what="every advocate email (sent, or quarantined as interrupted by the kill)",
        )
        assert daemon.terminate() == 0  # drained: nothing left in flight to count
    finally:
        daemon.stop()
        http.post(f"{base}/_emulator/latency", json={"ms": 0, "jitter_ms": 0}, timeout=10)

    leads = sf.query_all("SELECT Id, OwnerId, Advocate__c FROM Lead WHERE Company = 'Burst Co'")["records"]
    assert len(leads) == BURST
    assert all(
        lead["OwnerId"] == advocate["OwnerId"] and lead["Advocate__c"] == advocate["Id"] for lead in leads
    )
    referrals = sf.query_all("SELECT External_Key__c FROM Referral__c")["records"]
    keys = Counter(r["External_Key__c"] for r in referrals)
    assert set(keys) == {f"lead:{lead['Id']}" for lead in leads}, "missing or extra referrals"
    assert max(keys.values()) == 1, "a referral was written twice"
    tasks = Counter(t["WhoId"] for t in sf.query_all("SELECT WhoId FROM Task")["records"])
    assert set(tasks) == {lead["Id"] for lead in leads} and max(tasks.values()) == 1
    bodies = Counter(e["emailBody"] for e in http.get(f"{base}/_emulator/emails", timeout=10).json())
    assert max(bodies.values()) == 1, "an advocate was told twice"
    # At most once: an email the kill interrupted mid-send is quarantined for an admin, never re-sent.
    assert len(set(bodies) | _uncertain(tmp_path)) == BURST, "an email was lost without a trace"
