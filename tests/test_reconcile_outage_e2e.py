"""An outage longer than event retention: the daemon says so, reconciles, and nothing is missed or doubled.

Stop the daemon (SIGTERM). While it is down: create referral leads, and convert and win two deals (one from a
lead routed before the outage, one from a lead of the outage). Let the org's retention drop every event past
the daemon's checkpoint (control API) and restart it. The stored replay id is expired: the daemon logs
`stream.replay_expired`, sweeps by SOQL, routes every lead of the outage exactly once, moves both won
referrals to Won and gives each won deal exactly one reward; no advocate is told the same thing twice.
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


def _convert_and_win(emulator: Emulator, http: requests.Session, sf: Salesforce, lead_id: str) -> str:
    converted = control(emulator, http, "POST", f"leads/{lead_id}/convert", {"createOpportunity": True})
    opportunity_id: str = converted["opportunityId"]
    sf.Opportunity.update(opportunity_id, {"Amount": 4000, "StageName": "Closed Won"})
    return opportunity_id


@pytest.mark.slow
def test_expired_replay_id_after_an_outage_is_reported_and_reconciled_exactly_once(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Every referral and reward of the outage lands exactly once after the expired replay id is reported."""
    config = write_config(tmp_path, emulator_reset)
    advocates = sf.query("SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")
    grace = advocates["records"][0]
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
        won = {
            lead: _convert_and_win(emulator_reset, emulator_http, sf, lead) for lead in (before, outage[0])
        }
        expire = {"before_replay_id": checkpoint + 10**6}
        dropped = control(emulator_reset, emulator_http, "POST", "streaming/expire", expire)["dropped"]
        assert dropped >= OUTAGE_LEADS, "the outage's events must be gone for this test to mean anything"

        daemon.start()
        wait_for(
            lambda: "stream.replay_expired" in daemon.log_path.read_text(),
            what="the expired replay id reported",
        )
        wait_for(
            lambda: (
                _count(sf, "SELECT COUNT() FROM Referral__c") >= OUTAGE_LEADS + 1
                and _count(sf, "SELECT COUNT() FROM Referral__c WHERE Status__c = 'Won'") == len(won)
                and _count(sf, "SELECT COUNT() FROM Reward__c") >= len(won)
                and len(control(emulator_reset, emulator_http, "GET", "emails")) >= OUTAGE_LEADS + 1
            ),
            timeout=30,
            what="every outage referral reconciled, both wins rewarded, the advocate told",
        )
        wait_for(lambda: "reconcile.swept" in daemon.log_path.read_text(), what="the sweep finished")
    finally:
        daemon.stop()

    assert "reconcile.requested" in daemon.log_path.read_text()
    referrals = sf.query_all("SELECT External_Key__c, Lead__c, Status__c, Opportunity__c FROM Referral__c")
    keys = Counter(r["External_Key__c"] for r in referrals["records"])
    assert set(keys) == {f"lead:{lead_id}" for lead_id in [before, *outage]}, "missing or extra referrals"
    assert max(keys.values()) == 1, "a referral was written twice"
    outcome = {r["Lead__c"]: (r["Status__c"], r["Opportunity__c"]) for r in referrals["records"]}
    assert {lead: outcome[lead] for lead in won} == {lead: ("Won", opp) for lead, opp in won.items()}

    leads = sf.query_all("SELECT Id, OwnerId, Advocate__c FROM Lead WHERE Company = 'Outage Co'")["records"]
    routed = {(lead["OwnerId"], lead["Advocate__c"]) for lead in leads if lead["Id"] not in won}
    assert routed == {(grace["OwnerId"], grace["Id"])}
    rewards = Counter(
        r["Opportunity__c"] for r in sf.query_all("SELECT Opportunity__c FROM Reward__c")["records"]
    )
    assert rewards == Counter({opp: 1 for opp in won.values()}), (
        "a won deal without a reward, or rewarded twice"
    )
    # A call-first task for every lead routed while unconverted; a lead converted meanwhile gets none (moot).
    tasks = Counter(t["WhoId"] for t in sf.query_all("SELECT WhoId FROM Task WHERE WhoId != null")["records"])
    assert {before, *outage[1:]} <= set(tasks) and outage[0] not in tasks
    assert all(tasks[lead] == 1 for lead in [before, *outage[1:]])
    bodies = Counter(e["emailBody"] for e in control(emulator_reset, emulator_http, "GET", "emails"))
    assert sum(bodies.values()) >= OUTAGE_LEADS + 1 + len(won)
    assert max(bodies.values()) == 1, "an advocate was told the same thing twice"
