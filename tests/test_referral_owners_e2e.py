"""Who owns a referral, end to end, in an org unlike the demo's: the daemon as a process, the CLI beside it.

Every reader of a lead decides it the same way, and a submitted referral the rules leave alone lands where
the org's own assignment rules put it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner
from conftest import new_token, salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from referral_owners_org import northwind_seed, username, write_rules
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfconnector.clock import system_clock
from sfemulator.server import Emulator, trusting_session

REP = {"Sforce-Call-Options": "client=lightning"}


@pytest.fixture(scope="module")
def org(emulator: Emulator) -> Iterator[tuple[Emulator, requests.Session]]:
    http = trusting_session(emulator.ca_path)
    http.post(
        f"{emulator.base_url}/_emulator/seed", json={"seed": northwind_seed()}, timeout=10
    ).raise_for_status()
    yield emulator, http
    http.post(f"{emulator.base_url}/_emulator/seed", json={"seed": "demo"}, timeout=10).raise_for_status()
    http.close()


@pytest.fixture(scope="module")
def config(org: tuple[Emulator, requests.Session], tmp_path_factory: pytest.TempPathFactory) -> Path:
    emulator, _ = org
    directory = tmp_path_factory.mktemp("northwind")
    path = write_config(directory, emulator)
    settings = yaml.safe_load(path.read_text())
    settings["rules"] = {"file": str(write_rules(directory))}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def daemon(config: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(config).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sf(org: tuple[Emulator, requests.Session]) -> Salesforce:
    emulator, http = org
    return salesforce_as(emulator, http, "integration@sfconnector.test")


def _as(org: tuple[Emulator, requests.Session], first: str, last: str) -> Salesforce:
    emulator, http = org
    return salesforce_as(emulator, http, username(first, last))


def _user_id(sf: Salesforce, first: str, last: str) -> str:
    rows = sf.query(f"SELECT Id FROM User WHERE Username = '{username(first, last)}'")["records"]
    return str(rows[0]["Id"])


def _queue_id(sf: Salesforce, name: str) -> str:
    return str(sf.query(f"SELECT Id FROM Group WHERE Type = 'Queue' AND Name = '{name}'")["records"][0]["Id"])


def _referral(sf: Salesforce, lead_id: str) -> dict[str, Any] | None:
    rows = sf.query(
        "SELECT Id, Status__c, Advocate__c, Routing_Rule__c, Routing_Reason__c, Routed_Owner__c"
        f" FROM Referral__c WHERE Lead__c = '{lead_id}'"
    )["records"]
    return dict(rows[0]) if rows else None


def _owner(sf: Salesforce, lead_id: str) -> str:
    return str(sf.Lead.get(lead_id)["OwnerId"])


def _explain(config: Path, lead_id: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["explain", "--config", str(config), "--lead", lead_id, "--json"])
    assert result.exit_code == 0, result.output
    [decision] = json.loads(result.stdout)["decisions"]
    return dict(decision)


def test_a_code_added_later_is_decided_on_the_lead_fields_the_rules_read_by_daemon_explain_and_reconcile(
    org: tuple[Emulator, requests.Session], config: Path, daemon: DaemonProcess, sf: Salesforce
) -> None:
    emulator, http = org
    hana = _user_id(sf, "Hana", "Sato")
    rep = _as(org, "Priya", "Menon")
    # A rep creates a big account's lead, then types in the verbal referral number: the update event
    # carries only the code, so the daemon must read AnnualRevenue itself.
    lead_id = str(
        rep.Lead.create(
            {
                "LastName": "Halvorsen",
                "Company": "Fjord Freight",
                "AnnualRevenue": 8_000_000,
                "Email": "k.halvorsen@fjordfreight.example",
            },
            headers=REP,
        )["id"]
    )
    rep.Lead.update(lead_id, {"Referral_Code__c": " NW/0042 ", "Referral_Channel__c": "Verbal"}, headers=REP)
    referral = wait_for(lambda: _referral(sf, lead_id), what="the late-code referral")
    assert referral["Routing_Rule__c"] == "big-accounts-to-hana"
    assert _owner(sf, lead_id)[:15] == hana[:15]

    explained = _explain(config, lead_id)
    assert explained["rule"] == "big-accounts-to-hana"

    # The same kind of lead the stream never delivered (written under the connector's own client name):
    # the sweep reads it with the same columns and decides it by the same rule.
    response = http.post(
        f"{emulator.base_url}/services/data/v59.0/sobjects/Lead/",
        json={
            "LastName": "Lindqvist",
            "Company": "Baltic Bearings",
            "AnnualRevenue": 12_000_000,
            "Email": "a.lindqvist@balticbearings.example",
            "Referral_Code__c": "ref-7781",
        },
        headers={
            "Authorization": f"Bearer {new_token(emulator, http)}",
            "Sforce-Call-Options": "client=sfconnector",
        },
        timeout=10,
    )
    response.raise_for_status()
    unseen = str(response.json()["id"])
    since = (system_clock() - timedelta(days=1)).strftime("%Y-%m-%d")
    result = CliRunner().invoke(main, ["reconcile", "--config", str(config), "--since", since, "--json"])
    assert result.exit_code == 0, result.output
    repaired = wait_for(lambda: _referral(sf, unseen), what="the sweep's referral")
    assert repaired["Routing_Rule__c"] == "big-accounts-to-hana"
    wait_for(lambda: _owner(sf, unseen)[:15] == hana[:15], what="the sweep's owner update")
    assert _explain(config, unseen)["rule"] == "big-accounts-to-hana"


def test_a_submitted_referral_the_rules_leave_alone_lands_where_the_orgs_assignment_rules_put_it(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    priya, triage = _user_id(sf, "Priya", "Menon"), _queue_id(sf, "Inbound Triage")
    unknown_code = sf.Referral_Submitted__e.create(
        {
            "Last_Name__c": "Solberg",
            "Company__c": "Oslo Optics",
            "Email__c": "e.solberg@oslooptics.example",
            "Referral_Code__c": "NOBODY-1",
            "Channel__c": "SMS",
        }
    )
    assert unknown_code["success"] is True
    default_owner = sf.Referral_Submitted__e.create(
        {
            "Last_Name__c": "Virtanen",
            "Company__c": "Helsinki Hydro",
            "Email__c": "m.virtanen@hydro.example",
            "Referral_Code__c": "NOBODY-2",
            "Channel__c": "SMS",
        }
    )
    assert default_owner["success"] is True

    def lead_named(last: str) -> dict[str, Any] | None:
        rows = sf.query(f"SELECT Id, OwnerId FROM Lead WHERE LastName = '{last}'")["records"]
        return dict(rows[0]) if rows else None

    norway = wait_for(lambda: lead_named("Solberg"), what="the submitted referral's lead")
    other = wait_for(lambda: lead_named("Virtanen"), what="the second submitted lead")
    assert norway["OwnerId"][:15] == priya[:15]  # the org's rule entry for this company
    assert other["OwnerId"][:15] == triage[:15]  # the org's default owner, not the integration user
    referral = wait_for(lambda: _referral(sf, str(norway["Id"])), what="its Referral__c")
    assert referral["Status__c"] == "Rejected" and referral["Routed_Owner__c"] is None


def test_a_submitted_referral_the_rules_route_keeps_the_routed_owner(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    mateo = _user_id(sf, "Mateo", "Rossi")
    result = sf.Referral_Submitted__e.create(
        {
            "Last_Name__c": "Nakamura",
            "Company__c": "Bergen Boats",
            "Email__c": "y.nakamura@kilns.example",
            "Referral_Code__c": "REF7781",
            "Channel__c": "SMS",
        }
    )
    assert result["success"] is True

    def lead() -> dict[str, Any] | None:
        rows = sf.query("SELECT Id, OwnerId FROM Lead WHERE LastName = 'Nakamura'")["records"]
        return dict(rows[0]) if rows else None

    created = wait_for(lead, what="the routed submitted lead")
    assert created["OwnerId"][:15] == mateo[:15]  # the advocate's owner, not the Norway assignment entry


def _tasks(sf: Salesforce, what: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in sf.query(f"SELECT Id, OwnerId, Subject, WhoId, WhatId FROM Task WHERE {what}")["records"]
    ]


def _emails_to(org: tuple[Emulator, requests.Session], address: str) -> list[dict[str, Any]]:
    emulator, http = org
    sent = http.get(f"{emulator.base_url}/_emulator/emails", timeout=10).json()
    return [e for e in sent if address in json.dumps(e)]


def _refer_and_win(
    org: tuple[Emulator, requests.Session], sf: Salesforce, last: str, code: str, deal_owner: str
) -> tuple[str, str]:
    """A referral lead, converted, its opportunity handed to `deal_owner` and won by them."""
    emulator, http = org
    rep = _as(org, "Priya", "Menon")
    lead_id = str(
        rep.Lead.create(
            {
                "LastName": last,
                "Company": f"{last} AS",
                "Email": f"{last.lower()}@buyers.example",
                "Referral_Code__c": code,
                "Referral_Channel__c": "Card",
            },
            headers=REP,
        )["id"]
    )
    wait_for(lambda: _referral(sf, lead_id), what=f"the referral of {last}")
    response = http.post(
        f"{emulator.base_url}/_emulator/leads/{lead_id}/convert",
        json={"opportunityName": f"{last} deal"},
        timeout=10,
    )
    response.raise_for_status()
    opportunity_id = str(response.json()["opportunityId"])
    sf.Opportunity.update(opportunity_id, {"OwnerId": deal_owner})
    winner = salesforce_as(emulator, http, str(sf.User.get(deal_owner)["Username"]))
    winner.Opportunity.update(opportunity_id, {"Amount": 42_000, "StageName": "Closed Won"}, headers=REP)
    wait_for(
        lambda: (r := _referral(sf, lead_id)) is not None and r["Status__c"] == "Won", what=f"{last} won"
    )
    return lead_id, opportunity_id


def test_the_thank_you_task_on_a_win_goes_to_the_rep_who_owns_and_won_the_deal(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    hana, seun = _user_id(sf, "Hana", "Sato"), _user_id(sf, "Oluwaseun", "Adeyemi")
    lead_id, opportunity_id = _refer_and_win(org, sf, "Eriksen", "NW/0042", hana)
    tasks = wait_for(lambda: _tasks(sf, f"WhatId = '{opportunity_id}'"), what="the thank-you task")
    assert [t["OwnerId"][:15] for t in tasks] == [hana[:15]]
    call_first = _tasks(sf, f"WhoId = '{lead_id}' AND WhatId = null")
    assert [t["OwnerId"][:15] for t in call_first] == [seun[:15]]  # the lead went to the advocate's owner


def test_a_win_for_an_advocate_whose_owner_left_thanks_the_deal_owner_and_dead_letters_nothing(
    org: tuple[Emulator, requests.Session], config: Path, daemon: DaemonProcess, sf: Salesforce
) -> None:
    mateo, triage = _user_id(sf, "Mateo", "Rossi"), _queue_id(sf, "Inbound Triage")
    lead_id, opportunity_id = _refer_and_win(org, sf, "Haugen", "wk:5", mateo)
    assert _referral(sf, lead_id)["Routed_Owner__c"] is None  # inactive owner: the queue took the lead
    assert _owner(sf, lead_id)[:15] == triage[:15]
    tasks = wait_for(lambda: _tasks(sf, f"WhatId = '{opportunity_id}'"), what="the thank-you task")
    assert [t["OwnerId"][:15] for t in tasks] == [mateo[:15]]
    assert _tasks(sf, f"WhoId = '{lead_id}' AND WhatId = null") == []  # a queue gets no call-first task
    result = CliRunner().invoke(main, ["deadletters", "list", "--config", str(config)])
    assert "INACTIVE_OWNER_OR_USER" not in result.output


def test_a_referral_routed_to_a_queue_names_no_person_in_the_advocates_email(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    rep = _as(org, "Priya", "Menon")
    lead_id = str(
        rep.Lead.create(
            {
                "LastName": "Andersson",
                "Company": "Malmo Mills",
                "Country": "Sweden",
                "Email": "l.andersson@malmomills.example",
                "Referral_Code__c": "nw/0042",
            },
            headers=REP,
        )["id"]
    )
    referral = wait_for(lambda: _referral(sf, lead_id), what="the queue-routed referral")
    assert referral["Routing_Rule__c"] == "nordics-to-desk"
    emails = wait_for(
        lambda: [e for e in _emails_to(org, "ines.moreau@customers.example") if "Andersson" in json.dumps(e)],
        what="the received email",
    )
    body = json.dumps(emails)
    assert "Our team will call you first" in body
    assert "Oluwaseun" not in body
    assert _tasks(sf, f"WhoId = '{lead_id}'") == []


def test_a_referral_whose_routing_target_is_missing_stays_with_and_names_its_standard_owner(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    priya = _user_id(sf, "Priya", "Menon")
    rep = _as(org, "Priya", "Menon")
    # The rules send shipping leads to a queue this org does not have: the lead keeps the owner it had.
    lead_id = str(
        rep.Lead.create(
            {
                "LastName": "Dahl",
                "Company": "Dahl Shipping",
                "Industry": "Shipping",
                "OwnerId": priya,
                "Email": "s.dahl@dahlshipping.example",
                "Referral_Code__c": "Ref 7781",
            },
            headers={**REP, "Sforce-Auto-Assign": "FALSE"},
        )["id"]
    )
    referral = wait_for(lambda: _referral(sf, lead_id), what="the referral")
    assert referral["Routing_Rule__c"] == "fallback:missing_target"
    assert "shipping-to-maritime" in referral["Routing_Reason__c"]
    assert _owner(sf, lead_id)[:15] == priya[:15]
    tasks = wait_for(lambda: _tasks(sf, f"WhoId = '{lead_id}'"), what="the call-first task")
    assert [t["OwnerId"][:15] for t in tasks] == [priya[:15]]
    emails = wait_for(
        lambda: [e for e in _emails_to(org, "tariq@partners.example") if "Dahl" in json.dumps(e)],
        what="the received email",
    )
    body = json.dumps(emails)
    assert "Priya Menon will call you first" in body and "Mateo" not in body
    warnings = [
        json.loads(line)
        for line in daemon.log_path.read_text().splitlines()
        if '"routing.target_missing"' in line and lead_id in line
    ]
    assert [(w["level"], w["queue"]) for w in warnings] == [("warning", "Maritime Desk")]


def test_a_repeat_referral_goes_to_the_owner_of_the_advocate_who_keeps_the_credit(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    seun, mateo = _user_id(sf, "Oluwaseun", "Adeyemi"), _user_id(sf, "Mateo", "Rossi")
    rep = _as(org, "Priya", "Menon")
    person = {"Company": "Tromso Timber", "Email": "o.nilsen@tromsotimber.example"}
    first = str(
        rep.Lead.create({"LastName": "Nilsen", **person, "Referral_Code__c": "nw/0042"}, headers=REP)["id"]
    )
    wait_for(lambda: _referral(sf, first), what="the first referral")
    assert _owner(sf, first)[:15] == seun[:15]
    again = str(
        rep.Lead.create({"LastName": "Nilsen", **person, "Referral_Code__c": "REF 7781"}, headers=REP)["id"]
    )
    referral = wait_for(lambda: _referral(sf, again), what="the repeat referral")
    assert referral["Status__c"] == "Duplicate"
    assert "who keeps the credit" in referral["Routing_Reason__c"]
    wait_for(lambda: _owner(sf, again)[:15] == seun[:15], what="the repeat lead to go to Ines's owner")
    assert _owner(sf, again)[:15] != mateo[:15]


def test_the_report_counts_overrides_from_what_was_written(
    org: tuple[Emulator, requests.Session], config: Path, daemon: DaemonProcess, sf: Salesforce
) -> None:
    rep = _as(org, "Priya", "Menon")
    lead_id = str(
        rep.Lead.create(
            {
                "LastName": "Strand",
                "Company": "Strand Shipping",
                "Industry": "Shipping",
                "Email": "b.strand@strandshipping.example",
                "Referral_Code__c": "nw/0042",
            },
            headers=REP,
        )["id"]
    )
    wait_for(lambda: _referral(sf, lead_id), what="the referral of a missing target")
    result = CliRunner().invoke(main, ["report", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    overrides = {o["rule"]: o for o in json.loads(result.stdout)["routing_overrides"]}
    missing = overrides["fallback:missing_target"]
    assert missing["referrals"] >= 1 and missing["overridden"] == 0
    assert "shipping-to-maritime" not in overrides  # never recorded: its queue does not exist


def test_a_lead_a_person_took_over_before_the_connector_acted_stays_theirs_and_names_them(
    org: tuple[Emulator, requests.Session], daemon: DaemonProcess, sf: Salesforce
) -> None:
    """Hana creates a referral lead of Tariq's (owned by Mateo) and Priya takes it over, both while the
    daemon is down: on its return it sees both changes in one batch, leaves the lead with Priya, gives
    her the call-first task and tells Tariq that Priya, not Mateo, will call."""
    priya, mateo = _user_id(sf, "Priya", "Menon"), _user_id(sf, "Mateo", "Rossi")
    assert daemon.terminate() == 0
    hana = _as(org, "Hana", "Sato")
    lead_id = str(
        hana.Lead.create(
            {
                "LastName": "Virtanen",
                "Company": "Turku Textiles",
                "Email": "a.virtanen@turkutextiles.example",
                "Referral_Code__c": "ref-7781",
            },
            headers=REP,
        )["id"]
    )
    _as(org, "Priya", "Menon").Lead.update(
        lead_id, {"OwnerId": priya}, headers={**REP, "Sforce-Auto-Assign": "FALSE"}
    )
    daemon.start()
    referral = wait_for(lambda: _referral(sf, lead_id), what="the referral of the lead Priya took")
    assert referral["Routing_Rule__c"] == "manual_reassignment"
    assert _owner(sf, lead_id)[:15] == priya[:15]
    tasks = wait_for(lambda: _tasks(sf, f"WhoId = '{lead_id}'"), what="the call-first task")
    assert [t["OwnerId"][:15] for t in tasks] == [priya[:15]]
    emails = wait_for(
        lambda: [e for e in _emails_to(org, "tariq@partners.example") if "Virtanen" in json.dumps(e)],
        what="the received email",
    )
    body = json.dumps(emails)
    assert "Priya Menon will call you first" in body and "Mateo" not in body
    assert mateo[:15] not in json.dumps(tasks)
