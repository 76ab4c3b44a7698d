"""Advocate-ownership routing end to end: the daemon as a separate process against the emulator.

Every assertion reads Salesforce (the emulator) through its REST API, as a rep or an admin would see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfemulator.server import Emulator, trusting_session

WEBFORM = {"Sforce-Call-Options": "client=webform"}


@pytest.fixture(scope="module")
def org(emulator: Emulator) -> Iterator[tuple[Emulator, requests.Session]]:
    http = trusting_session(emulator.ca_path)
    http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
    yield emulator, http
    http.close()


@pytest.fixture(scope="module")
def daemon(
    org: tuple[Emulator, requests.Session], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    emulator, _ = org
    process = DaemonProcess(write_config(tmp_path_factory.mktemp("daemon"), emulator)).start()
    yield process
    process.stop()


def _client(
    org: tuple[Emulator, requests.Session], username: str = "integration@sfconnector.test"
) -> Salesforce:
    emulator, http = org
    return salesforce_as(emulator, http, username)


@pytest.fixture(scope="module")
def sf(org: tuple[Emulator, requests.Session]) -> Salesforce:
    return _client(org)


def _user_id(sf: Salesforce, username: str) -> str:
    return str(sf.query(f"SELECT Id FROM User WHERE Username = '{username}'")["records"][0]["Id"])


def _queue_id(sf: Salesforce, name: str) -> str:
    return str(sf.query(f"SELECT Id FROM Group WHERE Type = 'Queue' AND Name = '{name}'")["records"][0]["Id"])


def _advocate(sf: Salesforce, code: str) -> dict[str, Any]:
    rows = sf.query(f"SELECT Id, OwnerId, Email__c FROM Advocate__c WHERE Referral_Code__c = '{code}'")[
        "records"
    ]
    return dict(rows[0])


def _referral(sf: Salesforce, lead_id: str) -> dict[str, Any] | None:
    rows = sf.query(
        "SELECT Id, Status__c, Advocate__c, Routing_Rule__c, Routing_Reason__c, Routed_Owner__c, Attribution__c,"
        f" Channel__c FROM Referral__c WHERE External_Key__c = 'lead:{lead_id}'"
    )["records"]
    return dict(rows[0]) if rows else None


def _create_lead(sf: Salesforce, **fields: Any) -> str:
    fields.setdefault("Company", "Example Co")
    return str(sf.Lead.create(fields, headers=WEBFORM)["id"])


def _routed(sf: Salesforce, lead_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    referral = wait_for(lambda: _referral(sf, lead_id), what=f"the Referral__c of {lead_id}")
    return dict(sf.Lead.get(lead_id)), referral


def test_referral_goes_to_the_advocates_owner_with_task_and_email(
    daemon: DaemonProcess, sf: Salesforce, org: Any
) -> None:
    advocate = _advocate(sf, "GRACE-1001")
    lead_id = _create_lead(
        sf,
        LastName="Hopper-Ref",
        FirstName="Amy",
        Email="amy@prospect-one.example",
        Referral_Code__c="GRACE-1001",
        Referral_Channel__c="Card",
    )
    _, referral = _routed(sf, lead_id)
    wait_for(lambda: sf.Lead.get(lead_id)["OwnerId"] == advocate["OwnerId"], what="owner change")
    assert sf.Lead.get(lead_id)["Advocate__c"] == advocate["Id"]
    assert referral["Status__c"] == "Lead"
    assert referral["Routing_Rule__c"] == "advocate-owner"
    assert referral["Routed_Owner__c"] == advocate["OwnerId"]
    assert referral["Channel__c"] == "Card"
    assert "Grace Hopper" in referral["Routing_Reason__c"]
    tasks = wait_for(
        lambda: sf.query(f"SELECT Id, OwnerId, Subject FROM Task WHERE WhoId = '{lead_id}'")["records"],
        what="task",
    )
    assert len(tasks) == 1 and tasks[0]["OwnerId"] == advocate["OwnerId"]
    emulator, http = org
    emails = wait_for(
        lambda: [
            e for e in http.get(f"{emulator.base_url}/_emulator/emails").json() if "Amy" in e["emailBody"]
        ],
        what="advocate email",
    )
    assert emails[0]["emailAddresses"] == advocate["Email__c"]


def test_inactive_owner_falls_back_to_the_referral_desk(daemon: DaemonProcess, sf: Salesforce) -> None:
    lead_id = _create_lead(
        sf, LastName="Edsger-Ref", Email="x@prospect-two.example", Referral_Code__c="EWD-1005"
    )
    _, referral = _routed(sf, lead_id)
    assert referral["Routing_Rule__c"] == "fallback:inactive_owner"
    wait_for(lambda: sf.Lead.get(lead_id)["OwnerId"] == _queue_id(sf, "Referral Desk"), what="queue owner")


def test_unknown_code_keeps_the_standard_owner_and_records_a_rejected_referral(
    daemon: DaemonProcess, sf: Salesforce
) -> None:
    lead_id = _create_lead(
        sf, LastName="Nobody", Email="n@prospect-three.example", Referral_Code__c="NOPE-0000"
    )
    standard = sf.Lead.get(lead_id)["OwnerId"]
    lead, referral = _routed(sf, lead_id)
    assert referral["Status__c"] == "Rejected"
    assert referral["Routing_Rule__c"] == "fallback:unknown_advocate"
    assert lead["OwnerId"] == standard and lead["Advocate__c"] is None


def test_inactive_advocate_follows_standard_assignment(daemon: DaemonProcess, sf: Salesforce) -> None:
    lead_id = _create_lead(
        sf, LastName="Liskov-Ref", Email="b@prospect-four.example", Referral_Code__c="BL-1006"
    )
    standard = sf.Lead.get(lead_id)["OwnerId"]
    lead, referral = _routed(sf, lead_id)
    assert referral["Routing_Rule__c"] == "fallback:inactive_advocate"
    assert lead["OwnerId"] == standard


def test_partner_social_referral_goes_to_the_queue_rule(daemon: DaemonProcess, sf: Salesforce) -> None:
    lead_id = _create_lead(
        sf,
        LastName="Turing-Ref",
        Email="t@prospect-five.example",
        Referral_Code__c="ALAN-1002",
        Referral_Channel__c="Social",
    )
    _, referral = _routed(sf, lead_id)
    assert referral["Routing_Rule__c"] == "partner-social-to-desk"
    wait_for(lambda: sf.Lead.get(lead_id)["OwnerId"] == _queue_id(sf, "Referral Desk"), what="queue owner")


def test_lead_a_person_reassigned_is_not_taken_away(daemon: DaemonProcess, sf: Salesforce, org: Any) -> None:
    emulator, http = org
    # Slow the daemon's writes down so the rep's reassignment lands first, as it would on a busy day.
    http.post(
        f"{emulator.base_url}/_emulator/faults",
        json={"method": "POST", "path": "/composite$", "delay_ms": 800, "count": 2},
        timeout=10,
    ).raise_for_status()
    rep = _client(org, "diego.alvarez@sfconnector.test")
    diego = _user_id(sf, "diego.alvarez@sfconnector.test")
    lead_id = _create_lead(sf, LastName="Manual", Email="m@prospect-six.example", Referral_Code__c="KJ-1004")
    rep.Lead.update(lead_id, {"OwnerId": diego}, headers={"Sforce-Auto-Assign": "FALSE"})
    _routed(sf, lead_id)
    wait_for(
        lambda: sf.query(f"SELECT Id FROM Task WHERE WhoId = '{lead_id}'")["records"] or True,
        what="writes settled",
    )
    http.delete(f"{emulator.base_url}/_emulator/faults", timeout=10)
    assert sf.Lead.get(lead_id)["OwnerId"] == diego


def test_existing_open_lead_is_reactivated_and_credited(daemon: DaemonProcess, sf: Salesforce) -> None:
    _create_lead(sf, LastName="Earlier", Email="again@prospect-seven.example")
    lead_id = _create_lead(
        sf, LastName="Again", Email="again@prospect-seven.example", Referral_Code__c="ADA-1003"
    )
    _, referral = _routed(sf, lead_id)
    assert referral["Attribution__c"] == "Reactivated Lead"
    assert referral["Status__c"] == "Lead"


def test_self_referral_is_rejected_and_not_rerouted(daemon: DaemonProcess, sf: Salesforce) -> None:
    advocate = _advocate(sf, "KJ-1004")
    lead_id = _create_lead(sf, LastName="Johnson", Email=advocate["Email__c"], Referral_Code__c="KJ-1004")
    standard = sf.Lead.get(lead_id)["OwnerId"]
    lead, referral = _routed(sf, lead_id)
    assert referral["Status__c"] == "Rejected"
    assert lead["OwnerId"] == standard


@pytest.mark.parametrize("typed", ["  grace 1001 ", "grace-1001", "Grace–1001", "GRACE1001"])
def test_codes_typed_with_odd_case_spaces_and_dashes_match(
    daemon: DaemonProcess, sf: Salesforce, typed: str
) -> None:
    advocate = _advocate(sf, "GRACE-1001")
    email = f"odd{abs(hash(typed))}@prospect-eight.example"
    lead_id = _create_lead(sf, LastName="Odd", Email=email, Referral_Code__c=typed)
    _, referral = _routed(sf, lead_id)
    assert referral["Advocate__c"] == advocate["Id"]


@pytest.mark.parametrize("code", ["O'BRIEN-7", "BACK\\SLASH-8", 'QU"OTE-9', "PCT%_10"])
def test_soql_hostile_codes_match_exactly_their_advocate(
    daemon: DaemonProcess, sf: Salesforce, code: str
) -> None:
    owner = _user_id(sf, "chitra.rao@sfconnector.test")
    advocate_id = sf.Advocate__c.create(
        {
            "Name": f"Hostile {code}",
            "OwnerId": owner,
            "Referral_Code__c": code,
            "Status__c": "Active",
            "Email__c": "hostile@advocates.example",
            "Program__c": "Customer",
        }
    )["id"]
    lead_id = _create_lead(
        sf,
        LastName="Hostile",
        Email=f"h{abs(hash(code))}@prospect-nine.example",
        Referral_Code__c=code.lower(),
    )
    _, referral = _routed(sf, lead_id)
    assert referral["Advocate__c"] == advocate_id
    wait_for(lambda: sf.Lead.get(lead_id)["OwnerId"] == owner, what="owner change")


def test_platform_event_referral_creates_its_lead_already_routed(
    daemon: DaemonProcess, sf: Salesforce
) -> None:
    advocate = _advocate(sf, "ADA-1003")
    result = sf.Referral_Submitted__e.create(
        {
            "Referral_Code__c": "ada 1003",
            "First_Name__c": "Sam",
            "Last_Name__c": "Texter",
            "Email__c": "sam@prospect-ten.example",
            "Company__c": "SMS Co",
            "Channel__c": "SMS",
        },
        headers={"Sforce-Call-Options": "client=smsgateway"},
    )
    assert result["success"]
    leads = wait_for(
        lambda: sf.query(
            "SELECT Id, OwnerId, Advocate__c, Referral_Channel__c FROM Lead WHERE Email = 'sam@prospect-ten.example'"
        )["records"],
        what="lead created from the platform event",
    )
    assert len(leads) == 1
    assert leads[0]["OwnerId"] == advocate["OwnerId"] and leads[0]["Advocate__c"] == advocate["Id"]
    assert leads[0]["Referral_Channel__c"] == "SMS"
    referral = wait_for(lambda: _referral(sf, leads[0]["Id"]), what="referral of the submitted lead")
    assert referral["Status__c"] == "Lead"


def test_sigterm_drains_and_exits_zero(org: tuple[Emulator, requests.Session], tmp_path: Path) -> None:
    emulator, _ = org
    process = DaemonProcess(write_config(tmp_path, emulator)).start()
    assert process.terminate() == 0
    assert "daemon.stopped" in process.log()
