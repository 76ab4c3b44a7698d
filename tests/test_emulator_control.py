"""The control API (faults, latency, stats, conversion, seeds) and the commits the store publishes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import control
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError

from sfemulator.server import Emulator, _is_loopback, trusting_session
from sfemulator.store import Commit


@pytest.fixture
def commits(emulator_reset: Emulator) -> Iterator[list[Commit]]:
    seen: list[Commit] = []
    assert emulator_reset.org is not None
    emulator_reset.org.add_commit_listener(seen.append)
    try:
        yield seen
    finally:
        emulator_reset.org.remove_commit_listener(seen.append)


def test_fault_fails_the_next_matching_requests_then_clears(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    control(
        emulator_reset,
        emulator_http,
        "POST",
        "faults",
        {
            "method": "POST",
            "path": "/sobjects/Lead",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "count": 2,
        },
    )
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as err:
            sf.Lead.create({"LastName": "F", "Company": "C"})
        assert err.value.status == 503
        assert err.value.content == [{"message": "Server Unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
    assert sf.Lead.create({"LastName": "F", "Company": "C"})["success"] is True


def test_delete_faults_drops_pending_ones(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    control(emulator_reset, emulator_http, "POST", "faults", {"path": "/limits", "status": 500, "count": 5})
    assert len(control(emulator_reset, emulator_http, "GET", "faults")["faults"]) == 1
    control(emulator_reset, emulator_http, "DELETE", "faults")
    assert sf.limits()["DailyApiRequests"]["Max"] == 100000


def test_delay_only_fault_and_latency_slow_calls_down(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    control(
        emulator_reset, emulator_http, "POST", "faults", {"path": "/limits", "status": None, "delay_ms": 300}
    )
    started = time.monotonic()
    sf.limits()
    assert time.monotonic() - started >= 0.3
    control(emulator_reset, emulator_http, "POST", "latency", {"ms": 200, "jitter_ms": 0})
    started = time.monotonic()
    sf.limits()
    assert time.monotonic() - started >= 0.2
    assert control(emulator_reset, emulator_http, "POST", "latency", {"ms": 0}) == {"ms": 0, "jitter_ms": 0}


def test_stats_count_calls_by_kind_as_salesforce_does(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    lead_id = sf.Lead.create({"LastName": "S", "Company": "C"})["id"]
    sf.Lead.get(lead_id)
    sf.Lead.update(lead_id, {"Title": "T"})
    sf.Referral__c.upsert("External_Key__c/k1", {"Status__c": "Lead"})
    sf.query("SELECT Id FROM Lead")
    sf.Lead.describe()
    sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": False, "records": [{"attributes": {"type": "Account"}, "Name": "x"}]},
    )
    sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "a"},
                {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "b"},
            ]
        },
    )
    sf.restful(
        "actions/standard/emailSimple",
        method="POST",
        json={"inputs": [{"emailAddresses": "a@b.example", "emailSubject": "s", "emailBody": "b"}]},
    )
    sf.Lead.delete(lead_id)
    stats = control(emulator_reset, emulator_http, "GET", "stats")
    assert stats["by_kind"] == {
        "action": 1,
        "collections": 1,
        "composite": 1,
        "create": 1,
        "delete": 1,
        "describe": 1,
        "query": 1,
        "retrieve": 1,
        "update": 1,
        "upsert": 1,
    }
    assert (
        stats["total"] == 10 == stats["api_usage"]["used"]
    )  # the composite with two subrequests is one call
    assert isinstance(stats["events_by_channel"], dict)


def test_queries_are_logged(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    sf.query(
        "SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'",
        headers={"Sforce-Call-Options": "client=sfconnector"},
    )
    log = control(emulator_reset, emulator_http, "GET", "queries")
    assert log[-1]["soql"] == "SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'"
    assert log[-1]["client"] == "sfconnector" and log[-1]["all"] is False


def test_rest_write_is_one_commit_with_api_version_and_client(sf: Salesforce, commits: list[Commit]) -> None:
    sf.Lead.create(
        {"LastName": "C", "Company": "C", "Country": "Germany"},
        headers={"Sforce-Call-Options": "client=sfconnector, defaultNamespace=x"},
    )
    assert len(commits) == 1
    commit = commits[0]
    assert (commit.api, commit.api_version, commit.client) == ("rest", "59.0", "sfconnector")
    change = commit.changes[0]
    assert change.entity == "Lead" and change.change_type == "CREATE" and change.record_id.startswith("00Q")
    assert change.fields["LastName"] == "C" and "OwnerId" in change.fields and "Id" not in change.fields


def test_assignment_owner_change_is_folded_into_the_update(sf: Salesforce, commits: list[Commit]) -> None:
    lead_id = sf.Lead.create(
        {"LastName": "R", "Company": "C", "Country": "Germany"}, headers={"Sforce-Auto-Assign": "FALSE"}
    )["id"]
    before = sf.Lead.get(lead_id)["OwnerId"]
    sf.Lead.update(lead_id, {"Title": "Boss"})  # the rule runs and gives the lead to the Germany rep
    update = commits[-1].changes
    assert len(update) == 1 and update[0].change_type == "UPDATE"
    assert set(update[0].fields) == {"Title", "OwnerId", "LastModifiedDate"}
    assert update[0].fields["OwnerId"] != before


def test_collection_is_one_commit_and_all_or_none_failure_none(sf: Salesforce, commits: list[Commit]) -> None:
    good = {"attributes": {"type": "Account"}, "Name": "One"}
    bad = {"attributes": {"type": "Account"}}
    sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [good, bad, good]})
    assert len(commits) == 1 and [c.change_type for c in commits[0].changes] == ["CREATE", "CREATE"]
    sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [good, bad]})
    assert len(commits) == 1


def test_platform_event_publish_emits_a_publish_change(sf: Salesforce, commits: list[Commit]) -> None:
    result = sf.Referral_Submitted__e.create({"Referral_Code__c": "ADA-1003", "Channel__c": "SMS"})
    change = commits[-1].changes[0]
    assert change.change_type == "PUBLISH" and change.entity == "Referral_Submitted__e"
    assert change.record_id == result["id"] and change.event_uuid == result["errors"][0]["message"]
    assert {"CreatedDate", "CreatedById", "Referral_Code__c", "Channel__c"} <= set(change.fields)


def test_lead_conversion_is_one_commit_of_four_changes(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, commits: list[Commit]
) -> None:
    lead_id = sf.Lead.create({"FirstName": "Con", "LastName": "Vert", "Company": "Convert Co"})["id"]
    result = control(
        emulator_reset,
        emulator_http,
        "POST",
        f"leads/{lead_id}/convert",
        {
            "createOpportunity": True,
            "opportunityName": "Convert Co - Deal",
            "convertedStatus": "Closed - Converted",
        },
    )
    assert result["success"] is True and result["opportunityId"].startswith("006")
    commit = commits[-1]
    assert commit.api is None
    assert [(c.entity, c.change_type) for c in commit.changes] == [
        ("Account", "CREATE"),
        ("Contact", "CREATE"),
        ("Opportunity", "CREATE"),
        ("Lead", "UPDATE"),
    ]
    lead_change = commit.changes[3].fields
    assert "LastModifiedDate" not in lead_change
    assert (
        lead_change["IsConverted"] is True
        and lead_change["ConvertedOpportunityId"] == result["opportunityId"]
    )
    lead = sf.Lead.get(lead_id)
    assert lead["Status"] == "Closed - Converted" and lead["ConvertedAccountId"] == result["accountId"]
    opp = sf.Opportunity.get(result["opportunityId"])
    assert opp["Name"] == "Convert Co - Deal" and opp["IsWon"] is False and opp["IsClosed"] is False


def test_opportunity_won_is_derived_from_the_stage(sf: Salesforce) -> None:
    opp_id = sf.Opportunity.create({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"})[
        "id"
    ]
    assert sf.Opportunity.get(opp_id)["IsWon"] is False
    sf.Opportunity.update(opp_id, {"StageName": "Closed Won"})
    won = sf.Opportunity.get(opp_id)
    assert won["IsWon"] is True and won["IsClosed"] is True and won["Probability"] == 100


def test_seed_from_a_json_file_then_back_to_demo(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    seed = {
        "users": [
            {
                "ref": "u",
                "Username": "solo@x.test",
                "LastName": "Solo",
                "Email": "solo@x.test",
                "Alias": "solo",
                "password": "pw",
            }
        ],
        "connected_apps": [{"client_id": "app", "client_secret": "s", "run_as": "solo@x.test"}],
        "records": {"Advocate__c": [{"Name": "Only", "Referral_Code__c": "ONLY-1", "OwnerId": "@u"}]},
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    try:
        loaded = control(emulator_reset, emulator_http, "POST", "seed", {"path": str(path)})
        assert loaded["records"]["Advocate__c"] == 1
        token = control(emulator_reset, emulator_http, "POST", "sessions", {"username": "solo@x.test"})
        sf = Salesforce(
            instance_url=emulator_reset.base_url, session_id=token["access_token"], session=emulator_http
        )
        assert [
            r["Referral_Code__c"] for r in sf.query("SELECT Referral_Code__c FROM Advocate__c")["records"]
        ] == ["ONLY-1"]
        bad = emulator_http.post(
            f"{emulator_reset.base_url}/_emulator/seed",
            json={"users": seed["users"], "records": {"Nope": [{}]}},
        )
        assert bad.status_code == 400 and "Nope" in bad.json()["error"]
    finally:
        control(emulator_reset, emulator_http, "POST", "seed", {"seed": "demo"})


def test_control_api_answers_loopback_peers_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("10.0.0.5") and not _is_loopback(None) and not _is_loopback("example.com")


def test_undelete_restores_a_deleted_record(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, commits: list[Commit]
) -> None:
    advocate = sf.Advocate__c.create({"Name": "Back", "Referral_Code__c": "BACK-1"})["id"]
    sf.Advocate__c.delete(advocate)
    restored = control(emulator_reset, emulator_http, "POST", f"records/{advocate}/undelete")
    assert restored == {"id": advocate, "success": True, "errors": []}
    assert sf.Advocate__c.get(advocate)["Referral_Code__c"] == "BACK-1"
    assert commits[-1].changes[0].change_type == "UNDELETE" and commits[-1].api is None


def test_reset_puts_the_clock_back(emulator_reset: Emulator, emulator_http: requests.Session) -> None:
    moved = control(emulator_reset, emulator_http, "POST", "clock", {"advance_seconds": 86400 * 3})["now"]
    control(emulator_reset, emulator_http, "POST", "reset")
    now = control(emulator_reset, emulator_http, "POST", "clock", {"advance_seconds": 0})["now"]
    assert now < moved


def test_task_can_relate_to_an_advocate(sf: Salesforce) -> None:
    advocate = sf.query("SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")[
        "records"
    ][0]
    task = sf.Task.create(
        {"Subject": "Call the advocate first", "WhatId": advocate["Id"], "OwnerId": advocate["OwnerId"]}
    )
    row = sf.Task.get(task["id"])
    assert row["WhatId"] == advocate["Id"] and row["Status"] == "Not Started" and row["IsClosed"] is False


def test_restart_serves_the_same_org_on_the_same_port(tmp_path: Path) -> None:
    with Emulator(port=0, tls_dir=tmp_path, seed="empty") as emu:
        http = trusting_session(emu.ca_path)
        token = control(emu, http, "POST", "sessions", {})["access_token"]
        sf = Salesforce(instance_url=emu.base_url, session_id=token, session=http)
        sf.Account.create({"Name": "Survivor"})
        url = emu.base_url
        http.close()
        emu.restart()
        assert emu.base_url == url
        http = trusting_session(emu.ca_path)
        sf = Salesforce(instance_url=emu.base_url, session_id=token, session=http)
        assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "Survivor"
        http.close()
