"""The sfconnector_Integration permission set grants exactly what the daemon reads and writes, nothing more.

What the daemon needs is measured, not listed by hand: the daemon runs the demo's story against the emulator
(every channel, the SMS platform event, a self-referral, an unknown code, an inactive owner, conversions, a
win, a loss, a payment) plus the paths the demo does not take (an existing opportunity, a reactivated lead, a
disqualified lead, an approval, a reopened deal, an advocate changing hands), then `reconcile`, `report`,
`check` and `explain` run with the same config. The SOQL it sent (the emulator's log, by its client name) and
the writes it decided (its outbox) are what it read and wrote; the example config adds the fields it maps
and the fields its rules read, and the channels it subscribes to. Salesforce's rules (tests/salesforce_access)
turn that into the permission set an org needs, and the shipped one must be exactly that.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import salesforce_as
from daemon_harness import ROOT, DaemonProcess, wait_for, write_config
from salesforce_access import (
    MD,
    Access,
    differences,
    from_outbox,
    from_permission_set,
    from_queries,
    merge,
    permissionable,
    required,
)
from simple_salesforce import Salesforce

from sfconnector.clock import system_clock
from sfconnector.commands.check import mapped_fields
from sfconnector.config import Config, load_config
from sfconnector.demo import SUBMISSIONS, _lifecycle, _Org, _submit
from sfconnector.pipeline.lifecycle_reads import opportunity_fields_read
from sfconnector.rules.routing import fields_read
from sfemulator.schema import Schema, build_schema
from sfemulator.server import Emulator, trusting_session

PERMISSION_SETS = ROOT / "salesforce" / "force-app" / "main" / "default" / "permissionsets"
INTEGRATION = "integration@sfconnector.test"
REP = "alice.nguyen@sfconnector.test"


def from_config(config: Config) -> Access:
    """What the config makes the daemon read: mapped fields, fields its rules read, its channels."""
    access = Access()
    m = config.mapping
    for sobject, names in mapped_fields(config).items():
        for name in names:
            access.need(sobject, "read", f"mapping names {sobject}.{name}", name)
    lead_fields, advocate_fields = fields_read(config.routing)
    for name in lead_fields:
        access.need(m.lead.object, "read", "a routing rule reads lead." + name, name)
    for name in advocate_fields:
        access.need(m.advocate.object, "read", "a routing rule reads advocate." + name, name)
    for name in opportunity_fields_read(config.rewards):
        access.need("Opportunity", "read", "a reward rule reads opportunity." + name, name)
    for channel in config.stream.channels:
        kind, _, entity = channel.strip("/").partition("/")
        if kind == "data":  # Change Data Capture: View All on the object (SFDC cdc_security_perms)
            base = entity.removesuffix("ChangeEvent")
            sobject = base + "c" if base.endswith("__") else base  # Advocate__ChangeEvent -> Advocate__c
            access.need(sobject, "view_all", f"subscribes to {channel}")
        elif kind == "event":  # a platform event: Read on the event
            access.need(entity, "read", f"subscribes to {channel}")
    return access


# -- the daemon at work -------------------------------------------------------------------------------


def _run(config_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sfconnector", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config_path.parent,
        check=False,
    )
    assert result.returncode == 0, f"sfconnector {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


class Org(_Org):
    """The demo's people on the test emulator, plus what this test needs of them."""

    def __init__(self, emulator: Emulator, http: requests.Session) -> None:
        super().__init__(emulator.base_url, Path(emulator.ca_path))
        self.emulator, self.control = emulator, http

    def as_(self, username: str) -> Salesforce:
        return salesforce_as(self.emulator, self.control, username)

    def one(self, soql: str) -> dict[str, Any] | None:
        rows = self.query(soql)
        return dict(rows[0]) if rows else None

    def referral_of(self, lead_id: str, where: str = "") -> dict[str, Any]:
        return wait_for(
            lambda: self.one(
                f"SELECT Id, Status__c, Attribution__c FROM Referral__c WHERE Lead__c = '{lead_id}'{where}"
            ),
            what=f"the referral of {lead_id}{where}",
        )


def _paths_the_demo_does_not_take(org: Org) -> None:
    rep, sf = org.as_(REP), org.as_(INTEGRATION)
    user = {r["Username"]: r["Id"] for r in org.query("SELECT Id, Username FROM User")}
    # An existing contact with an open opportunity is referred: attribution finds both.
    acme = org.one("SELECT Id FROM Account WHERE Name = 'Acme Corp'")
    assert acme is not None
    close = (system_clock().date() + timedelta(days=30)).isoformat()
    rep.Opportunity.create(
        {"Name": "Acme renewal", "AccountId": acme["Id"], "StageName": "Prospecting", "CloseDate": close}
    )
    existing = sf.Lead.create(
        {
            "LastName": "Lee",
            "FirstName": "Pat",
            "Company": "Acme Corp",
            "Email": "pat.lee@acme.example",
            "Referral_Code__c": "GRACE-1001",
            "Referral_Channel__c": "Email",
        },
        headers={"Sforce-Call-Options": "client=emailgateway"},
    )["id"]
    org.referral_of(existing, " AND Attribution__c = 'Existing Opportunity'")
    # The same person already has an open lead: the new referral reactivates it.
    first = rep.Lead.create(
        {"LastName": "Chen", "Company": "Northwind", "Email": "li.chen@northwind.example"}
    )["id"]
    again = sf.Lead.create(
        {
            "LastName": "Chen",
            "FirstName": "Li",
            "Company": "Northwind",
            "Email": "li.chen@northwind.example",
            "Referral_Code__c": "ADA-1003",
            "Referral_Channel__c": "Web",
        },
        headers={"Sforce-Call-Options": "client=webform"},
    )["id"]
    wait_for(
        lambda: org.query(f"SELECT Id FROM Referral__c WHERE Lead__c IN ('{first}', '{again}')"),
        what="reactivation",
    )
    # A referral lead is disqualified.
    dropped = sf.Lead.create(
        {
            "LastName": "Novak",
            "Company": "Fabrikam",
            "Email": "eva@fabrikam-two.example",
            "Referral_Code__c": "GRACE-1001",
            "Referral_Channel__c": "Card",
        },
        headers={"Sforce-Call-Options": "client=webform"},
    )["id"]
    org.referral_of(dropped)
    rep.Lead.update(dropped, {"Status": "Closed - Not Converted"})
    org.referral_of(dropped, " AND Status__c = 'Rejected'")
    # Finance approves the reward waiting for approval, and a won deal is reopened (clawback).
    pending = wait_for(
        lambda: org.one("SELECT Id, Opportunity__c FROM Reward__c WHERE Status__c = 'Pending Approval'"),
        what="a pending reward",
    )
    approvals = _emails(org, "is approved")
    rep.Reward__c.update(pending["Id"], {"Status__c": "Approved"})
    wait_for(lambda: _emails(org, "is approved") > approvals, what="the approval email")
    rep.Opportunity.update(pending["Opportunity__c"], {"StageName": "Prospecting"})
    wait_for(
        lambda: org.one(f"SELECT Id FROM Reward__c WHERE Id = '{pending['Id']}' AND Status__c = 'Rejected'"),
        what="the clawback of a reopened deal",
    )
    # An advocate changes hands; her next referral goes to the new owner.
    grace = org.one("SELECT Id FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'")
    assert grace is not None
    rep.Advocate__c.update(grace["Id"], {"OwnerId": user["bruno.keller@sfconnector.test"]})
    later = sf.Lead.create(
        {
            "LastName": "Moreau",
            "Company": "Litware",
            "Email": "claire@litware-two.example",
            "Referral_Code__c": "GRACE-1001",
            "Referral_Channel__c": "Web",
        },
        headers={"Sforce-Call-Options": "client=webform"},
    )["id"]
    org.referral_of(later)


@pytest.fixture(scope="module")
def observed(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> tuple[Access, Config]:
    """What the daemon and its commands were seen to read and write, with the config that made them."""
    http = trusting_session(emulator.ca_path)
    http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
    http.delete(f"{emulator.base_url}/_emulator/queries", timeout=10).raise_for_status()
    directory = tmp_path_factory.mktemp("permissions")
    config_path = write_config(directory, emulator)
    config = load_config(str(config_path))
    daemon = DaemonProcess(config_path).start()
    try:
        org = Org(emulator, http)
        submitted = [(s, _submit(org, s)) for s in SUBMISSIONS]
        leads = wait_for(lambda: _lead_ids(org, submitted), what="the SMS referral's lead")
        quoted = ",".join(f"'{i}'" for i in leads)
        wait_for(
            lambda: len(org.query(f"SELECT Id FROM Referral__c WHERE Lead__c IN ({quoted})")) == len(leads),
            what="every referral",
        )
        _lifecycle(org, submitted, leads, lambda _: None)
        _paths_the_demo_does_not_take(org)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    since = (system_clock().date() - timedelta(days=2)).isoformat()
    _run(config_path, "reconcile", "--since", since, "--drain")
    _run(config_path, "report")
    _run(config_path, "check")
    _run(config_path, "explain", "--lead", leads[0])
    rewarded = org.one("SELECT Opportunity__c FROM Reward__c LIMIT 1")
    assert rewarded is not None
    _run(config_path, "explain", "--opportunity", str(rewarded["Opportunity__c"]))
    log = http.get(f"{emulator.base_url}/_emulator/queries", timeout=10).json()
    http.close()
    soqls = [q["soql"] for q in log if q["client"] == config.salesforce.client_name]
    with sqlite3.connect(config.state.path) as db:
        db.row_factory = sqlite3.Row
        outbox = [
            dict(r) for r in db.execute("SELECT key, op, sobject, fields, external_id_field FROM outbox")
        ]
    assert soqls and outbox
    schema = build_schema()
    return merge(from_queries(soqls, schema), from_outbox(outbox), from_config(config)), config


def _emails(org: Org, words: str) -> int:
    emails = org.http.get(f"{org.base_url}/_emulator/emails", timeout=10).json()
    return sum(words in e["emailSubject"] for e in emails)


def _lead_ids(org: Org, submitted: list[tuple[Any, str | None]]) -> list[str] | None:
    ids = []
    for s, lead_id in submitted:
        if lead_id is None:
            row = org.one(f"SELECT Id FROM Lead WHERE Email = '{s.lead['Email__c']}'")
            if row is None:
                return None
            lead_id = row["Id"]
        ids.append(str(lead_id))
    return ids


@pytest.fixture(scope="module")
def schema() -> Schema:
    return build_schema()


def test_the_integration_permission_set_is_exactly_what_the_daemon_needs(
    observed: tuple[Access, Config], schema: Schema
) -> None:
    needed, _ = observed
    wanted = required(needed, schema)
    granted = from_permission_set(PERMISSION_SETS / "sfconnector_Integration.permissionset-meta.xml")
    problems = differences(granted, wanted)
    assert not problems, "sfconnector_Integration differs from what the daemon needs:\n" + "\n".join(problems)


def test_the_story_reached_every_object_the_daemon_writes(observed: tuple[Access, Config]) -> None:
    """A check that the measurement is not thin: every kind of write and lookup happened."""
    needed, config = observed
    m = config.mapping
    assert needed.objects[m.lead.object].create and needed.objects[m.lead.object].edit  # SMS lead, routing
    assert needed.objects[m.referral.object].create and needed.objects[m.reward.object].edit
    assert {m.advocate.total_referrals, m.advocate.reward_balance} <= needed.objects[
        m.advocate.object
    ].edit_fields
    assert needed.objects["Task"].create and "EmailSingle" in needed.user_permissions
    assert needed.objects["Contact"].view_all  # found by email (existing opportunity)


# -- the people's permission sets ---------------------------------------------------------------------

# Written by sfconnector alone: a person editing them would break its idempotence or its totals.
DAEMON_ONLY = {
    "Activity.External_Key__c",
    "Task.External_Key__c",
    "Lead.External_Key__c",
    "Referral__c.External_Key__c",
    "Reward__c.External_Key__c",
    "Advocate__c.Reward_Balance__c",
    "Advocate__c.Successful_Referrals__c",
    "Advocate__c.Total_Referrals__c",
}
PEOPLE = ("sfconnector_Rep", "sfconnector_Finance", "sfconnector_Admin")


def granted_by(name: str) -> Access:
    return from_permission_set(PERMISSION_SETS / f"{name}.permissionset-meta.xml")


def test_the_permission_sets_are_the_four_documented_ones() -> None:
    assert sorted(p.name.split(".")[0] for p in PERMISSION_SETS.iterdir()) == sorted(
        ["sfconnector_Integration", *PEOPLE]
    )


@pytest.mark.parametrize("name", ["sfconnector_Integration", *PEOPLE])
def test_every_field_granted_exists_and_carries_field_level_security(name: str, schema: Schema) -> None:
    """A permission set naming a missing field, a required one or one without FLS fails the whole deploy."""
    for sobject, obj in granted_by(name).objects.items():
        for field_name in obj.read_fields | obj.edit_fields:
            assert permissionable(schema, sobject, field_name), f"{name}: {sobject}.{field_name}"
        assert obj.edit_fields <= obj.read_fields, f"{name}: {sobject} editable but not readable"


@pytest.mark.parametrize("name", PEOPLE)
def test_people_never_edit_what_only_sfconnector_writes(name: str) -> None:
    access = granted_by(name)
    edits = {f"{o}.{f}" for o, obj in access.objects.items() for f in obj.edit_fields}
    assert not edits & DAEMON_ONLY


def test_reps_read_the_program_and_type_codes_on_their_leads() -> None:
    rep = granted_by("sfconnector_Rep")
    for sobject in ("Advocate__c", "Referral__c", "Reward__c"):
        obj = rep.objects[sobject]
        assert obj.read and not (obj.create or obj.edit or obj.view_all) and not obj.edit_fields
    assert rep.objects["Lead"].edit_fields == {"Referral_Code__c", "Referral_Channel__c"}
    assert "Advocate__c" in rep.objects["Lead"].read_fields  # the advocate shows on the lead
    assert not any(obj.delete or obj.modify_all for obj in rep.objects.values())


def test_finance_sets_reward_status_and_nothing_else() -> None:
    finance = granted_by("sfconnector_Finance")
    assert {o: obj.edit_fields for o, obj in finance.objects.items() if obj.edit_fields} == {
        "Reward__c": {"Status__c"}
    }
    assert finance.objects["Reward__c"].edit and not finance.objects["Reward__c"].view_all


def test_admins_manage_every_program_record() -> None:
    admin = granted_by("sfconnector_Admin")
    for sobject in ("Advocate__c", "Referral__c", "Reward__c"):
        obj = admin.objects[sobject]
        assert obj.read and obj.create and obj.edit and obj.view_all and obj.delete and obj.modify_all


@pytest.mark.parametrize("name", ["sfconnector_Integration", *PEOPLE])
def test_descriptions_fit(name: str) -> None:
    root = ET.parse(PERMISSION_SETS / f"{name}.permissionset-meta.xml").getroot()
    assert 0 < len(root.findtext(MD + "description") or "") <= 255  # Salesforce's limit
