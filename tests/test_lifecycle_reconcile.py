"""Reconciliation repairs lifecycle lags through the daemon's own decisions (`LifecycleRepairer`).

No daemon listens: referrals are left behind their converted lead and won opportunity, as after an outage;
a sweep with the repairer queues the same writes the events would have caused, and the writer lands them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from daemon_harness import write_config
from simple_salesforce import Salesforce

from sfconnector.config import load_config
from sfconnector.pipeline.lifecycle_repairs import lifecycle_repairer
from sfconnector.reconcile._sweep import Reconciler
from sfconnector.state import StateStore
from sfconnector.wiring import connect, decision_rules, org_lookups
from sfconnector.writer import OutboxWriter
from sfemulator.server import Emulator


def test_sweep_repairs_a_missed_conversion_and_win_with_reward_totals_and_email(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """A referral still at Lead whose lead was converted and whose deal was won becomes Won with its reward."""
    config = load_config(str(write_config(tmp_path, emulator_reset)))
    grace = sf.query("SELECT Id, Email__c FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")["records"][
        0
    ]
    lead_id = sf.Lead.create(
        {
            "LastName": "Missed",
            "Company": "Missed Co",
            "Email": "m@missed-co.example",
            "Referral_Code__c": "GRACE-1001",
        }
    )["id"]
    sf.Lead.update(lead_id, {"Advocate__c": grace["Id"]})
    sf.Referral__c.upsert(
        f"External_Key__c/lead:{lead_id}",
        {"Lead__c": lead_id, "Advocate__c": grace["Id"], "Status__c": "Lead"},
    )
    converted = emulator_http.post(
        f"{emulator_reset.base_url}/_emulator/leads/{lead_id}/convert", json={}, timeout=10
    )
    opportunity_id = converted.json()["opportunityId"]
    sf.Opportunity.update(opportunity_id, {"Amount": 2000, "StageName": "Closed Won"})

    _, client = connect(config)
    rules = decision_rules(config)
    with StateStore.open(tmp_path / "state.db") as state:
        reconciler = Reconciler(
            client,
            rules,
            org_lookups(config, client),
            state,
            rewards_enabled=True,
            lifecycle=lifecycle_repairer(rules, client, config.salesforce.client_name),
        )
        summary = reconciler.run(datetime.now(UTC) - timedelta(days=1))
        assert summary.queued > 0
        writer = OutboxWriter(state, client)
        for _ in range(10):
            if writer.drain_once().idle:
                break
        again = reconciler.run(datetime.now(UTC) - timedelta(days=1))
        assert again.queued == 0

    referral = sf.query(
        f"SELECT Status__c, Opportunity__c FROM Referral__c WHERE External_Key__c = 'lead:{lead_id}'"
    )
    assert referral["records"][0]["Status__c"] == "Won"
    rewards = sf.query(f"SELECT Amount__c, Rule__c FROM Reward__c WHERE Opportunity__c = '{opportunity_id}'")[
        "records"
    ]
    assert [(r["Amount__c"], r["Rule__c"]) for r in rewards] == [(100.0, "base")]
    advocate = sf.Advocate__c.get(grace["Id"])
    assert (advocate["Successful_Referrals__c"], advocate["Reward_Balance__c"]) == (1, 100.0)
    subjects = [
        e["emailSubject"] for e in emulator_http.get(f"{emulator_reset.base_url}/_emulator/emails").json()
    ]
    assert any("bought" in s for s in subjects)
