"""Reconciliation of what happened after routing: conversions, won deals and their rewards, missed by the stream.

Each test builds the org as a missed stretch of events would leave it, runs `sfconnector reconcile --drain`,
and checks the referral, the reward and the advocate's totals; a second run must queue nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner
from daemon_harness import write_config
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfconnector.clock import system_clock
from sfemulator.server import Emulator

SINCE = (system_clock() - timedelta(days=1)).strftime("%Y-%m-%d")


def _reconcile(config: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["reconcile", "--config", str(config), "--since", SINCE, "--json", *args]
    )
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def _converted_lead(
    sf: Salesforce, emulator: Emulator, http: requests.Session, name: str, *, amount: float = 5000
) -> tuple[str, dict[str, Any]]:
    lead_id: str = sf.Lead.create(
        {
            "LastName": name,
            "Company": f"{name} Co",
            "Email": f"{name.lower()}@lifecycle-reconcile.example",
            "Referral_Code__c": "GRACE-1001",
            "Referral_Channel__c": "Email",
        }
    )["id"]
    converted: dict[str, Any] = http.post(
        f"{emulator.base_url}/_emulator/leads/{lead_id}/convert", json={"createOpportunity": True}, timeout=10
    ).json()
    sf.Opportunity.update(converted["opportunityId"], {"Amount": amount})
    return lead_id, converted


def _win(sf: Salesforce, opportunity_id: str) -> None:
    sf.Opportunity.update(opportunity_id, {"StageName": "Closed Won"})


def _rewards(sf: Salesforce) -> list[dict[str, Any]]:
    return list(
        sf.query_all("SELECT Opportunity__c, Amount__c, Status__c, External_Key__c FROM Reward__c")["records"]
    )


def test_a_won_deal_missed_entirely_gets_its_referral_won_and_one_reward(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Created, converted and won while nobody listened: the referral is Won, rewarded once, totals counted."""
    config = write_config(tmp_path, emulator_reset)
    _, converted = _converted_lead(sf, emulator_reset, emulator_http, "Wonder")
    _win(sf, converted["opportunityId"])

    first = _reconcile(config, "--drain")
    assert first["counts"]["missing_referral"]["queued"] == 1
    assert first["drained"]["dead"] == 0 and first["drained"]["waiting"] == 0
    (referral,) = sf.query("SELECT Status__c, Opportunity__c, Contact__c FROM Referral__c")["records"]
    assert (referral["Status__c"], referral["Opportunity__c"]) == ("Won", converted["opportunityId"])
    rewards = _rewards(sf)
    assert [(r["Opportunity__c"], r["Amount__c"]) for r in rewards] == [(converted["opportunityId"], 100)]
    advocate = sf.query(
        "SELECT Total_Referrals__c, Successful_Referrals__c FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'"
    )["records"][0]
    assert (advocate["Total_Referrals__c"], advocate["Successful_Referrals__c"]) == (1, 1)

    second = _reconcile(config, "--drain")
    assert second["queued"] == 0 and second["findings"] == []
    assert len(_rewards(sf)) == 1


def test_a_referral_lagging_its_won_opportunity_moves_to_won_with_its_reward(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Routed in time, but the conversion and the win were missed: Lead -> Won and one reward."""
    config = write_config(tmp_path, emulator_reset)
    lead_id, converted = _converted_lead(sf, emulator_reset, emulator_http, "Lagger")
    grace = sf.query("SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")["records"][0]["Id"]
    sf.Referral__c.create(
        {"External_Key__c": f"lead:{lead_id}", "Lead__c": lead_id, "Advocate__c": grace, "Status__c": "Lead"}
    )
    _win(sf, converted["opportunityId"])

    first = _reconcile(config, "--drain")
    assert first["counts"]["status_lag"]["queued"] == 1, first["findings"]
    (referral,) = sf.query("SELECT Status__c, Opportunity__c, Contact__c FROM Referral__c")["records"]
    assert referral == {
        "attributes": referral["attributes"],
        "Status__c": "Won",
        "Opportunity__c": converted["opportunityId"],
        "Contact__c": converted["contactId"],
    }
    assert Counter(r["Opportunity__c"] for r in _rewards(sf)) == Counter({converted["opportunityId"]: 1})
    assert _reconcile(config)["queued"] == 0


def test_a_won_referral_without_a_reward_gets_exactly_one(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """The status landed but the reward did not: the sweep decides the reward the win would have."""
    config = write_config(tmp_path, emulator_reset)
    lead_id, converted = _converted_lead(sf, emulator_reset, emulator_http, "Unrewarded", amount=900)
    grace = sf.query("SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")["records"][0]["Id"]
    _win(sf, converted["opportunityId"])
    sf.Referral__c.create(
        {
            "External_Key__c": f"lead:{lead_id}",
            "Lead__c": lead_id,
            "Advocate__c": grace,
            "Status__c": "Won",
            "Contact__c": converted["contactId"],
            "Opportunity__c": converted["opportunityId"],
        }
    )
    dry = _reconcile(config, "--dry-run")
    assert [f["kind"] for f in dry["findings"]] == ["reward_missing"]
    assert dry["findings"][0]["record_id"] == converted["opportunityId"]

    first = _reconcile(config, "--drain")
    assert first["counts"]["reward_missing"]["queued"] == 1
    assert [r["Opportunity__c"] for r in _rewards(sf)] == [converted["opportunityId"]]
    second = _reconcile(config, "--drain")
    assert second["findings"] == [] and len(_rewards(sf)) == 1


def test_a_lag_and_its_missing_reward_are_decided_together_even_in_tiny_batches(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Both findings of one won opportunity ride in one batch, so neither is left undecided."""
    from sfconnector.config import load_config
    from sfconnector.reconcile import Reconciler
    from sfconnector.state import StateStore
    from sfconnector.wiring import connect, decision_rules, org_lookups

    config = load_config(write_config(tmp_path, emulator_reset))
    lead_ids = []
    grace = sf.query("SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")["records"][0]["Id"]
    for name in ("TinyA", "TinyB"):
        lead_id, converted = _converted_lead(sf, emulator_reset, emulator_http, name)
        sf.Referral__c.create(
            {
                "External_Key__c": f"lead:{lead_id}",
                "Lead__c": lead_id,
                "Advocate__c": grace,
                "Status__c": "Lead",
            }
        )
        _win(sf, converted["opportunityId"])
        lead_ids.append(lead_id)
    _, client = connect(config)
    with StateStore.open(config.state.path) as state:
        reconciler = Reconciler(
            client,
            decision_rules(config),
            org_lookups(config, client),
            state,
            rewards_enabled=True,
            batch_size=1,
        )
        summary = reconciler.run(system_clock() - timedelta(days=1))
    repairs = Counter((f.kind, f.repair) for f in summary.findings)
    assert repairs == Counter({("status_lag", "queued"): 2, ("reward_missing", "queued"): 2}), (
        summary.findings
    )
