"""The referral lifecycle end to end: conversion, win, loss, disqualification, rewards, clawback, emails, totals.

The daemon runs as a separate process against the emulator with an inline rules file written here (one reward
rule per kind, selected by the advocate's program or the referral's channel). People act as they would in
Salesforce: the control API converts leads, a rep's PATCH wins or loses opportunities, an approver pays a
reward. Every assertion reads what Salesforce (the emulator) shows. The last test replays the whole event
history with the daemon's local state deleted.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import salesforce_as
from daemon_harness import ROOT, DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfconnector.clock import system_clock
from sfemulator.server import Emulator, trusting_session

WEBFORM = {"Sforce-Call-Options": "client=webform"}
CHANNELS = [
    "/data/LeadChangeEvent",
    "/event/Referral_Submitted__e",
    "/data/Advocate__ChangeEvent",
    "/data/OpportunityChangeEvent",
    "/data/Reward__ChangeEvent",
]
TODAY = system_clock().date()


def _rules() -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "config" / "rules.yaml").read_text())
    rules["rewards"] = {
        "default_type": "Gift Card",
        "approval_above": 1000,
        "hold_days": 0,
        "rules": [
            {"name": "web-hold", "when": {"channel": "Web"}, "amount": 40, "hold_days": 14},
            {"name": "verbal-big", "when": {"channel": "Verbal"}, "amount": 2000},
            {"name": "email-promo", "when": {"channel": "Email"}, "amount": 50},
            {"name": "partner-percent", "when": {"program": "Partner"}, "percent": 10, "min": 50, "max": 300},
            {
                "name": "employee-tiers",
                "when": {"program": "Employee"},
                "tiers": [{"from": 0, "to": 0, "amount": 25}, {"from": 1, "amount": 75}],
            },
            {"name": "customer-fixed", "amount": 100},
        ],
        "promotions": [
            {
                "name": "launch-week-bonus",  # listed first: additions still come after multipliers
                "from": (TODAY - timedelta(days=3)).isoformat(),
                "to": (TODAY + timedelta(days=3)).isoformat(),
                "add": 10,
                "rules": ["email-promo"],
            },
            {
                "name": "launch-week-double",
                "from": (TODAY - timedelta(days=3)).isoformat(),
                "to": (TODAY + timedelta(days=3)).isoformat(),
                "multiply": 2,
                "rules": ["email-promo"],
            },
            {
                "name": "last-year",
                "from": (TODAY - timedelta(days=400)).isoformat(),
                "to": (TODAY - timedelta(days=300)).isoformat(),
                "multiply": 5,
            },
        ],
        "clawback": {"within_days": 30},
    }
    rules["notifications"] = {
        "advocate": {
            "received": True,
            "converted": True,
            "won": True,
            "lost": True,
            "reward_approved": True,
            "reward_paid": True,
        },
        "rep_tasks": {"received": True, "won": True},
    }
    return rules


@pytest.fixture(scope="module")
def org(emulator: Emulator) -> Iterator[tuple[Emulator, requests.Session]]:
    http = trusting_session(emulator.ca_path)
    http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
    yield emulator, http
    http.close()


@pytest.fixture(scope="module")
def config_path(org: tuple[Emulator, requests.Session], tmp_path_factory: pytest.TempPathFactory) -> Path:
    emulator, _ = org
    directory = tmp_path_factory.mktemp("lifecycle")
    rules_file = directory / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(_rules(), sort_keys=False))
    return write_config(directory, emulator, rules__file=str(rules_file), stream__channels=CHANNELS)


@pytest.fixture(scope="module")
def daemon(config_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(config_path).start()
    yield process
    process.stop()


def _client(org: tuple[Emulator, requests.Session], username: str) -> Salesforce:
    emulator, http = org
    return salesforce_as(emulator, http, username)


@pytest.fixture(scope="module")
def sf(org: tuple[Emulator, requests.Session]) -> Salesforce:
    return _client(org, "integration@sfconnector.test")


@pytest.fixture(scope="module")
def rep(org: tuple[Emulator, requests.Session]) -> Salesforce:
    """Alice, the rep who owns the test advocates (her writes are a person's, not the connector's)."""
    return _client(org, "alice.nguyen@sfconnector.test")


_serial = itertools.count(1)


class Story:
    """One advocate's referrals moving through the org, driven as people would."""

    def __init__(
        self, sf: Salesforce, rep: Salesforce, org: tuple[Emulator, requests.Session], **advocate: Any
    ):
        self.sf, self.rep = sf, rep
        self.emulator, self.http = org
        n = next(_serial)
        self.code = f"LC-{n:04d}"
        owner = sf.query("SELECT Id FROM User WHERE Username = 'alice.nguyen@sfconnector.test'")["records"][
            0
        ]["Id"]
        self.email = f"advocate{n}@advocates-lc.example"
        fields = {
            "Name": f"Advo Cate{n}",
            "OwnerId": owner,
            "Referral_Code__c": self.code,
            "Status__c": "Active",
            "Email__c": self.email,
            "Program__c": "Customer",
            "Preferred_Reward__c": "Gift Card",
        }
        fields.update(advocate)
        self.advocate_id = str(sf.Advocate__c.create(fields)["id"])
        self.owner_id = owner

    def refer(self, channel: str = "Card") -> str:
        n = next(_serial)
        lead_id = str(
            self.sf.Lead.create(
                {
                    "LastName": f"Prospect{n}",
                    "FirstName": "Pat",
                    "Company": f"Prospect {n} Ltd",
                    "Email": f"p{n}@prospect-lc{n}.example",
                    "Referral_Code__c": self.code,
                    "Referral_Channel__c": channel,
                },
                headers=WEBFORM,
            )["id"]
        )
        wait_for(lambda: self.referral(lead_id), what=f"referral of {lead_id}")
        return lead_id

    def referral(self, lead_id: str) -> dict[str, Any] | None:
        rows = self.sf.query(
            "SELECT Id, Status__c, Contact__c, Opportunity__c FROM Referral__c"
            f" WHERE External_Key__c = 'lead:{lead_id}'"
        )["records"]
        return dict(rows[0]) if rows else None

    def status_is(self, lead_id: str, status: str) -> dict[str, Any]:
        return wait_for(
            lambda: (r := self.referral(lead_id)) and r["Status__c"] == status and r,
            what=f"referral of {lead_id} to become {status}",
        )

    def convert(self, lead_id: str) -> str:
        response = self.http.post(
            f"{self.emulator.base_url}/_emulator/leads/{lead_id}/convert",
            json={"opportunityName": f"Deal {lead_id}"},
            timeout=10,
        )
        response.raise_for_status()
        opportunity_id = str(response.json()["opportunityId"])
        self.status_is(lead_id, "Converted")
        return opportunity_id

    def win(self, lead_id: str, amount: float = 1000.0) -> str:
        opportunity_id = self.convert(lead_id)
        self.rep.Opportunity.update(opportunity_id, {"Amount": amount, "StageName": "Closed Won"})
        self.status_is(lead_id, "Won")
        return opportunity_id

    def rewards(self, opportunity_id: str, count: int = 1) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            rows = self.sf.query(
                "SELECT Id, External_Key__c, Amount__c, Type__c, Status__c, Rule__c, Payable_On__c, Advocate__c,"
                f" Referral__c FROM Reward__c WHERE Opportunity__c = '{opportunity_id}' ORDER BY External_Key__c"
            )["records"]
            return [dict(r) for r in rows] if len(rows) >= count else None

        return wait_for(found, what=f"{count} reward(s) of {opportunity_id}")

    def advocate(self) -> dict[str, Any]:
        return dict(self.sf.Advocate__c.get(self.advocate_id))

    def totals_are(self, total: int, successful: int, balance: float) -> dict[str, Any]:
        return wait_for(
            lambda: (
                (a := self.advocate())
                and (a["Total_Referrals__c"], a["Successful_Referrals__c"], a["Reward_Balance__c"])
                == (total, successful, balance)
                and a
            ),
            what=f"totals {total}/{successful}/{balance} of {self.code} (now {self.advocate_totals()})",
        )

    def advocate_totals(self) -> tuple[Any, Any, Any]:
        a = self.advocate()
        return (a["Total_Referrals__c"], a["Successful_Referrals__c"], a["Reward_Balance__c"])

    def emails(self) -> list[dict[str, Any]]:
        all_emails = self.http.get(f"{self.emulator.base_url}/_emulator/emails", timeout=10).json()
        return [e for e in all_emails if e["emailAddresses"] == self.email]

    def email_about(self, words: str) -> dict[str, Any]:
        return wait_for(
            lambda: next((e for e in self.emails() if words in e["emailSubject"]), None),
            what=f"an email to {self.email} about {words!r}",
        )


def story(sf: Salesforce, rep: Salesforce, org: Any, **advocate: Any) -> Story:
    return Story(sf, rep, org, **advocate)


def test_conversion_moves_the_referral_to_converted_and_links_contact_and_opportunity(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    lead_id = s.refer()
    opportunity_id = s.convert(lead_id)
    referral = s.referral(lead_id)
    assert referral is not None
    lead = sf.Lead.get(lead_id)
    assert referral["Contact__c"] == lead["ConvertedContactId"]
    assert referral["Opportunity__c"] == opportunity_id
    assert "is now an opportunity" in s.email_about("now an opportunity")["emailSubject"]
    s.totals_are(1, 0, 0.0)


def test_won_opportunity_earns_a_fixed_reward_a_thank_you_task_and_updates_totals(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Preferred_Reward__c="Charity")
    lead_id = s.refer()
    opportunity_id = s.win(lead_id, 5000)
    [reward] = s.rewards(opportunity_id)
    referral = s.referral(lead_id)
    assert referral is not None
    assert reward["External_Key__c"] == f"reward:{opportunity_id}:customer-fixed"
    assert (reward["Amount__c"], reward["Type__c"], reward["Status__c"]) == (100.0, "Charity", "Approved")
    assert reward["Advocate__c"] == s.advocate_id and reward["Referral__c"] == referral["Id"]
    assert reward["Payable_On__c"] == TODAY.isoformat()
    assert "bought" in s.email_about("bought")["emailSubject"]
    assert "100.00" in s.email_about("is approved")["emailSubject"]
    tasks = wait_for(
        lambda: sf.query(f"SELECT Id, OwnerId, Subject, WhatId FROM Task WHERE WhatId = '{opportunity_id}'")[
            "records"
        ],
        what="the thank-you task",
    )
    assert len(tasks) == 1 and tasks[0]["OwnerId"] == s.owner_id and "thank" in tasks[0]["Subject"]
    s.totals_are(1, 1, 100.0)


def test_percent_reward_is_raised_to_its_minimum_and_capped_at_its_maximum(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Program__c="Partner", Preferred_Reward__c="Commission")
    small = s.win(s.refer(), 200)  # 10% = 20, raised to 50
    large = s.win(s.refer(), 10000)  # 10% = 1000, capped at 300
    assert [(r["Amount__c"], r["Rule__c"], r["Type__c"]) for r in s.rewards(small)] == [
        (50.0, "partner-percent", "Commission")
    ]
    assert [r["Amount__c"] for r in s.rewards(large)] == [300.0]
    s.totals_are(2, 2, 350.0)


def test_tiers_follow_the_advocates_count_of_successful_referrals(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Program__c="Employee", Preferred_Reward__c="Bill Credit")
    first = s.win(s.refer())
    assert [r["Amount__c"] for r in s.rewards(first)] == [25.0]
    second = s.win(s.refer())
    assert [r["Amount__c"] for r in s.rewards(second)] == [75.0]


def test_promotion_multiplies_then_adds_inside_its_window(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    opportunity_id = s.win(s.refer(channel="Email"))
    [reward] = s.rewards(opportunity_id)
    assert (reward["Rule__c"], reward["Amount__c"]) == ("email-promo", 110.0)


def test_reward_above_the_approval_threshold_waits_for_approval_and_is_not_owed_yet(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    opportunity_id = s.win(s.refer(channel="Verbal"))
    [reward] = s.rewards(opportunity_id)
    assert (reward["Amount__c"], reward["Status__c"]) == (2000.0, "Pending Approval")
    s.totals_are(1, 1, 0.0)
    assert not [e for e in s.emails() if "approved" in e["emailSubject"]]
    rep.Reward__c.update(reward["Id"], {"Status__c": "Approved"})  # the approver
    assert "2,000.00" in s.email_about("is approved")["emailSubject"]
    s.totals_are(1, 1, 2000.0)


def test_hold_period_sets_the_payable_date(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    opportunity_id = s.win(s.refer(channel="Web"))
    [reward] = s.rewards(opportunity_id)
    assert reward["Rule__c"] == "web-hold"
    assert date.fromisoformat(reward["Payable_On__c"]) == TODAY + timedelta(days=14)


def test_lost_opportunity_moves_the_referral_to_lost_and_tells_the_advocate(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    lead_id = s.refer()
    opportunity_id = s.convert(lead_id)
    rep.Opportunity.update(opportunity_id, {"StageName": "Closed Lost"})
    s.status_is(lead_id, "Lost")
    assert "An update on your referral" in s.email_about("An update")["emailSubject"]
    assert sf.query(f"SELECT Id FROM Reward__c WHERE Opportunity__c = '{opportunity_id}'")["totalSize"] == 0


def test_disqualified_lead_is_rejected_and_no_longer_counted(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    lead_id = s.refer()
    s.totals_are(1, 0, 0.0)
    rep.Lead.update(lead_id, {"Status": "Closed - Not Converted"})
    s.status_is(lead_id, "Rejected")
    s.totals_are(0, 0, 0.0)


def test_reopened_won_opportunity_rejects_its_unpaid_reward(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    lead_id = s.refer()
    opportunity_id = s.win(lead_id)
    s.rewards(opportunity_id)
    s.totals_are(1, 1, 100.0)
    rep.Opportunity.update(opportunity_id, {"StageName": "Negotiation/Review"})
    s.status_is(lead_id, "Converted")
    wait_for(lambda: s.rewards(opportunity_id)[0]["Status__c"] == "Rejected", what="reward rejected")
    s.totals_are(1, 0, 0.0)


def test_paid_reward_is_announced_and_a_later_loss_claws_it_back_by_adjustment(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    lead_id = s.refer()
    opportunity_id = s.win(lead_id)
    [reward] = s.rewards(opportunity_id)
    rep.Reward__c.update(reward["Id"], {"Status__c": "Paid"})  # finance paid it
    assert "has been paid" in s.email_about("has been paid")["emailSubject"]
    s.totals_are(1, 1, 0.0)
    rep.Opportunity.update(opportunity_id, {"StageName": "Closed Lost"})
    s.status_is(lead_id, "Lost")
    original, adjustment = s.rewards(opportunity_id, count=2)
    assert original["Status__c"] == "Paid"
    assert adjustment["External_Key__c"] == original["External_Key__c"] + ":clawback"
    assert (adjustment["Amount__c"], adjustment["Status__c"]) == (-100.0, "Approved")
    s.totals_are(1, 0, -100.0)


def test_opted_out_advocate_gets_rewards_but_no_emails(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Email_Opt_Out__c=True)
    opportunity_id = s.win(s.refer())
    assert [r["Amount__c"] for r in s.rewards(opportunity_id)] == [100.0]
    s.totals_are(1, 1, 100.0)
    assert s.emails() == []


def test_existing_opportunity_referral_is_won_with_that_opportunity(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    account = sf.Account.create({"Name": "Existing Customer Co"})["id"]
    email = f"buyer{next(_serial)}@existing-co.example"
    contact = sf.Contact.create({"LastName": "Buyer", "Email": email, "AccountId": account})["id"]
    opportunity_id = sf.Opportunity.create(
        {"Name": "Renewal", "AccountId": account, "StageName": "Prospecting", "CloseDate": TODAY.isoformat()}
    )["id"]
    lead_id = str(
        sf.Lead.create(
            {
                "LastName": "Buyer",
                "Company": "Existing Customer Co",
                "Email": email,
                "Referral_Code__c": s.code,
            },
            headers=WEBFORM,
        )["id"]
    )
    referral = wait_for(lambda: s.referral(lead_id), what="the existing-opportunity referral")
    assert (referral["Opportunity__c"], referral["Contact__c"]) == (opportunity_id, contact)
    rep.Opportunity.update(opportunity_id, {"Amount": 900, "StageName": "Closed Won"})
    s.status_is(lead_id, "Won")
    assert [r["Amount__c"] for r in s.rewards(opportunity_id)] == [100.0]


def test_a_burst_of_wins_for_one_advocate_converges_to_exact_totals(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    leads = [s.refer() for _ in range(6)]
    opportunities = [s.convert(lead_id) for lead_id in leads]
    for opportunity_id in opportunities:  # back to back: batches decide before earlier writes have landed
        rep.Opportunity.update(opportunity_id, {"Amount": 1000, "StageName": "Closed Won"})
    rep.Lead.update(s.refer(), {"Status": "Closed - Not Converted"})
    s.totals_are(6, 6, 600.0)


def test_a_lead_converted_before_its_routing_landed_still_ends_converted(
    daemon: DaemonProcess, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org)
    n = next(_serial)
    lead_id = str(
        sf.Lead.create(
            {
                "LastName": f"Quick{n}",
                "Company": "Quick Co",
                "Email": f"q{n}@quick{n}.example",
                "Referral_Code__c": s.code,
            },
            headers=WEBFORM,
        )["id"]
    )
    response = s.http.post(f"{s.emulator.base_url}/_emulator/leads/{lead_id}/convert", json={}, timeout=10)
    response.raise_for_status()
    referral = s.status_is(lead_id, "Converted")
    assert referral["Opportunity__c"] == response.json()["opportunityId"]
    s.totals_are(1, 0, 0.0)


def test_explain_opportunity_shows_each_rules_verdict_and_the_rewards_in_salesforce(
    daemon: DaemonProcess, config_path: Path, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Program__c="Partner")
    opportunity_id = s.win(s.refer(), 10000)
    s.rewards(opportunity_id)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sfconnector",
            "explain",
            "--config",
            str(config_path),
            "--opportunity",
            opportunity_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("no") and "web-hold: channel is 'Card'" in line for line in lines)
    partner = next(line for line in lines if "partner-percent:" in line)
    assert partner.strip().startswith("match") and "already exists" in partner
    assert any(f"reward:{opportunity_id}:partner-percent: 300.00" in line for line in lines)
    s.totals_are(1, 1, 300.0)  # the explanation shows the advocate's numbers by the record's definition
    assert any(
        line.startswith("Advocate totals: 1 referral(s) (0 rejected or duplicate apart), 1 successful;")
        and "owed 300.00 (Approved, not yet paid: Reward_Balance__c), awaiting approval 0.00" in line
        for line in lines
    )
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "sfconnector",
            "explain",
            "--config",
            str(config_path),
            "--opportunity",
            opportunity_id,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"matched": true' in as_json.stdout
    assert json.loads(as_json.stdout)["advocate_totals"]["owed"] == "300.00"


def test_explain_opportunity_judges_an_open_deal_as_if_won_and_refuses_unknown_ids(
    daemon: DaemonProcess, config_path: Path, sf: Salesforce, rep: Salesforce, org: Any
) -> None:
    s = story(sf, rep, org, Program__c="Employee")
    opportunity_id = s.convert(s.refer())

    def explain(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sfconnector", "explain", "--config", str(config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    open_deal = explain("--opportunity", opportunity_id)
    assert open_deal.returncode == 0, open_deal.stderr
    assert "judged as if it were won today" in open_deal.stdout
    assert any(
        line.strip().startswith("match") and "employee-tiers" in line
        for line in open_deal.stdout.splitlines()
    )
    unknown = explain("--opportunity", "006000000000000AAA")
    assert unknown.returncode == 1 and "no opportunity 006000000000000AAA" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    both = explain("--opportunity", opportunity_id, "--lead", "00Q000000000000AAA")
    assert both.returncode == 2


def _state_counts(path: Path) -> tuple[dict[str, int], int]:
    with sqlite3.connect(path) as db:
        checkpoints = {str(c): int(r) for c, r in db.execute("SELECT channel, replay_id FROM checkpoints")}
        (open_writes,) = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'retrying')"
        ).fetchone()
    return checkpoints, int(open_writes)


def _snapshot(sf: Salesforce, http: requests.Session, emulator: Emulator) -> dict[str, Any]:
    return {
        "rewards": sorted(
            (r["External_Key__c"], r["Amount__c"], r["Status__c"])
            for r in sf.query_all("SELECT External_Key__c, Amount__c, Status__c FROM Reward__c")["records"]
        ),
        "referrals": sorted(
            (r["External_Key__c"], r["Status__c"])
            for r in sf.query_all("SELECT External_Key__c, Status__c FROM Referral__c")["records"]
        ),
        "totals": sorted(
            (r["Id"], r["Total_Referrals__c"], r["Successful_Referrals__c"], r["Reward_Balance__c"])
            for r in sf.query_all(
                "SELECT Id, Total_Referrals__c, Successful_Referrals__c, Reward_Balance__c FROM Advocate__c"
            )["records"]
        ),
        "emails": len(http.get(f"{emulator.base_url}/_emulator/emails", timeout=10).json()),
        "tasks": sf.query("SELECT COUNT() FROM Task")["totalSize"],
    }


def test_replaying_the_whole_history_without_local_state_changes_nothing(
    daemon: DaemonProcess, config_path: Path, sf: Salesforce, org: Any
) -> None:
    emulator, http = org
    state_path = Path(yaml.safe_load(config_path.read_text())["state"]["path"])
    wait_for(lambda: _state_counts(state_path)[1] == 0, what="the outbox to drain before the replay")
    before_checkpoints, _ = _state_counts(state_path)
    before = _snapshot(sf, http, emulator)
    assert before["emails"] > 0 and before["rewards"]
    assert daemon.terminate() == 0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state_path}{suffix}").unlink(missing_ok=True)
    config = yaml.safe_load(config_path.read_text())
    config["stream"]["start"] = "earliest"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon.start()

    def replayed() -> bool:
        checkpoints, open_writes = _state_counts(state_path)
        caught_up = all(checkpoints.get(c, -1) >= r for c, r in before_checkpoints.items())
        return caught_up and open_writes == 0

    wait_for(replayed, timeout=60, what="the replay to catch up and drain")
    assert _snapshot(sf, http, emulator) == before
