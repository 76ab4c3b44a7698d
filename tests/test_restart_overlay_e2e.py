"""A restart changes no decision: the daemon that comes back decides from Salesforce plus the writes its
predecessor decided and could not land yet (the durable outbox), not from Salesforce alone.

Each test holds the daemon's writes back with 503s, kills it with SIGKILL while its decisions wait in the
outbox, lets people act while it is down, starts it again with the writes still refused until the new
events are decided, and only then lets the writes through. The advocate and its owner are the test's own
(a code in another format, an owner who is not the demo's).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfemulator.server import Emulator, trusting_session

CHANNELS = [
    "/data/LeadChangeEvent",
    "/event/Referral_Submitted__e",
    "/data/Advocate__ChangeEvent",
    "/data/OpportunityChangeEvent",
    "/data/Reward__ChangeEvent",
]
WEBFORM = {"Sforce-Call-Options": "client=webform"}
REP = {"Sforce-Call-Options": "client=lightning"}
WRITES = [("POST", "/composite|/actions/"), ("PATCH", "/composite")]


class Org:
    def __init__(self, emulator: Emulator, directory: Path) -> None:
        self.emulator = emulator
        self.http = trusting_session(emulator.ca_path)
        self.http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
        self.sf = salesforce_as(emulator, self.http)
        self.config = write_config(directory, emulator, stream__channels=CHANNELS)
        self.state = directory / "state.db"
        self.daemon = DaemonProcess(self.config)
        users = self.sf.query("SELECT Id, Username FROM User WHERE IsActive = true ORDER BY Username")[
            "records"
        ]
        reps = [u for u in users if not str(u["Username"]).startswith("integration@")]
        self.owner, self.closer = str(reps[-1]["Id"]), str(reps[0]["Id"])
        self.code = f"rs/{uuid.uuid4().hex[:5]}"
        self.advocate_id = str(
            self.sf.Advocate__c.create(
                {
                    "Name": "Oyelaran Bankole",
                    "OwnerId": self.owner,
                    "Email__c": f"bankole.{self.code[3:]}@advocates.example",
                    "Referral_Code__c": self.code,
                    "Program__c": "Customer",
                    "Status__c": "Active",
                }
            )["id"]
        )
        self.daemon.start()

    def refuse_writes(self) -> None:
        for method, path in WRITES:
            self.control("POST", "faults", {
                "method": method, "path": path, "status": 503, "errorCode": "SERVER_UNAVAILABLE",
                "message": "Server Unavailable", "count": 1_000_000,
            })  # fmt: skip

    def control(self, method: str, path: str, body: Any = None) -> None:
        url = f"{self.emulator.base_url}/_emulator/{path}"
        self.http.request(method, url, json=body, timeout=10).raise_for_status()

    def refer(self, last: str) -> str:
        return str(
            self.sf.Lead.create(
                {
                    "LastName": last,
                    "Company": f"{last} Holdings",
                    "Email": f"{last.lower()}.{self.code[3:]}@prospects.example",
                    "Referral_Code__c": self.code.upper(),
                },
                headers=WEBFORM,
            )["id"]
        )

    def referral(self, lead_id: str) -> dict[str, Any] | None:
        rows = self.sf.query(
            f"SELECT Id, Status__c, Opportunity__c FROM Referral__c WHERE External_Key__c = 'lead:{lead_id}'"
        )["records"]
        return dict(rows[0]) if rows else None

    def outbox(self, like: str) -> list[tuple[str, str]]:
        """(key, status) of the daemon's outbox entries whose key is LIKE `like`, read beside the daemon."""
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            return [
                (str(k), str(s))
                for k, s in db.execute("SELECT key, status FROM outbox WHERE key LIKE ?", [like])
            ]

    def checkpoint(self, channel: str) -> int:
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            row = db.execute("SELECT replay_id FROM checkpoints WHERE channel = ?", [channel]).fetchone()
        return int(row[0]) if row else -1

    def decided(self, event: str, **fields: str) -> bool:
        for line in self.daemon.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event and all(str(record.get(k)) == v for k, v in fields.items()):
                    return True
        return False

    def restart_deciding(self, channel: str, act: Any) -> None:
        """Kill the daemon, let `act` happen while it is down, start it again and wait until it has decided
        what `act` did on `channel`, while its writes are still refused."""
        before = self.checkpoint(channel)
        self.daemon.kill()
        act()
        self.daemon.start()
        wait_for(
            lambda: self.checkpoint(channel) > before, timeout=30, what=f"{channel} decided after the restart"
        )

    def advocate_totals(self) -> tuple[Any, Any]:
        advocate = self.sf.Advocate__c.get(self.advocate_id)
        return advocate["Total_Referrals__c"], advocate["Successful_Referrals__c"]

    def close(self) -> None:
        self.control("DELETE", "faults")
        self.daemon.stop()
        self.http.close()


@pytest.fixture
def org(emulator: Emulator, tmp_path: Path) -> Iterator[Org]:
    started = Org(emulator, tmp_path)
    yield started
    started.close()


def _as(org: Org, user_id: str) -> Salesforce:
    return salesforce_as(org.emulator, org.http, str(org.sf.User.get(user_id)["Username"]))


def test_a_deal_won_while_its_conversion_waits_in_the_outbox_across_a_restart_earns_its_reward(
    org: Org,
) -> None:
    lead_id = org.refer("Adebayo")
    wait_for(lambda: org.referral(lead_id), timeout=30, what="the referral")
    org.refuse_writes()
    response = org.http.post(
        f"{org.emulator.base_url}/_emulator/leads/{lead_id}/convert",
        json={"opportunityName": "Adebayo expansion"},
        timeout=10,
    )
    response.raise_for_status()
    opportunity_id = str(response.json()["opportunityId"])
    referral_key = f"lead:{lead_id}"
    wait_for(
        lambda: org.decided("lifecycle.status_decided", referral=referral_key, status="Converted"),
        timeout=30,
        what="the conversion decided (its write refused)",
    )
    assert org.referral(lead_id)["Status__c"] == "Lead"  # type: ignore[index]

    def won() -> None:
        closer = _as(org, org.closer)
        closer.Opportunity.update(
            opportunity_id, {"OwnerId": org.closer, "Amount": 8_400, "StageName": "Closed Won"}, headers=REP
        )

    org.restart_deciding("/data/OpportunityChangeEvent", won)
    org.control("DELETE", "faults")
    wait_for(
        lambda: (r := org.referral(lead_id)) is not None and r["Status__c"] == "Won",
        timeout=30,
        what="the referral won",
    )
    rewards = wait_for(
        lambda: org.sf.query(
            f"SELECT Id, Amount__c FROM Reward__c WHERE Opportunity__c = '{opportunity_id}'"
        )["records"],
        timeout=30,
        what="the reward of the win",
    )
    assert len(rewards) == 1
    wait_for(lambda: org.advocate_totals() == (1, 1), timeout=30, what="totals 1 referral, 1 successful")


def test_totals_decided_after_a_restart_count_the_referrals_the_predecessor_could_not_write(org: Org) -> None:
    org.refuse_writes()
    leads = [org.refer(name) for name in ("Okafor", "Lindqvist", "Haddad")]
    wait_for(
        lambda: len(org.outbox("referral:lead:%")) == len(leads),
        timeout=30,
        what="three referrals decided (their writes refused)",
    )
    later: list[str] = []
    org.restart_deciding("/data/LeadChangeEvent", lambda: later.append(org.refer("Moreno")))
    org.control("DELETE", "faults")
    for lead_id in [*leads, *later]:
        wait_for(lambda lead_id=lead_id: org.referral(lead_id), timeout=30, what=f"referral of {lead_id}")
    wait_for(lambda: not org.outbox("advocate-totals:%") or all(
        s in ("done", "skipped", "dead") for _, s in org.outbox("advocate-totals:%")
    ), timeout=30, what="the totals written")  # fmt: skip
    assert org.advocate_totals() == (4, 0)
