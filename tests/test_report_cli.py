"""`sfconnector report` against the emulator: the numbers are Salesforce's own aggregates, in three formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from daemon_harness import write_config
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfconnector.clock import system_clock
from sfconnector.mapping.model import SchemaMapping
from sfconnector.report import funnel_rollup, override_rollup
from sfconnector.rules.model import RoutingAction, RoutingFallbacks, RoutingRule, RoutingRules
from sfemulator.server import Emulator

# (advocate code, channel, status, rule, routed to the advocate's owner)
REFERRALS = [
    ("GRACE-1001", "Card", "Won", "advocate-owner", True),
    ("GRACE-1001", "Card", "Won", "advocate-owner", True),
    ("GRACE-1001", "Email", "Converted", "advocate-owner", True),
    ("GRACE-1001", "Email", "Lost", "advocate-owner", True),
    ("GRACE-1001", "Web", "Duplicate", "attribution:rejected", False),  # not in her Total_Referrals__c
    ("ALAN-1002", "Social", "Lead", "partner-social-to-desk", False),
    ("ALAN-1002", "Web", "Won", "advocate-owner", True),
    ("ADA-1003", "Verbal", "Rejected", "attribution:rejected", False),
    (None, "SMS", "Lead", "fallback:unknown_advocate", False),
]
# (advocate code, amount, status, type)
REWARDS = [
    ("GRACE-1001", 100, "Approved", "Gift Card"),
    ("GRACE-1001", 600, "Pending Approval", "Gift Card"),
    ("GRACE-1001", 50, "Paid", "Gift Card"),
    ("ALAN-1002", 250, "Approved", "Commission"),
    ("ALAN-1002", 75, "Rejected", "Commission"),
]


def _seed(sf: Salesforce) -> dict[str, dict[str, Any]]:
    advocates = {
        r["Referral_Code__c"]: r
        for r in sf.query("SELECT Id, OwnerId, Name, Referral_Code__c FROM Advocate__c")["records"]
    }
    for i, (code, channel, status, rule, routed) in enumerate(REFERRALS):
        advocate = advocates[code] if code else None
        sf.Referral__c.create(
            {
                "External_Key__c": f"report:{i}",
                "Advocate__c": advocate["Id"] if advocate else None,
                "Channel__c": channel,
                "Status__c": status,
                "Routing_Rule__c": rule,
                "Routed_Owner__c": advocate["OwnerId"] if advocate and routed else None,
            }
        )
    for i, (code, amount, status, kind) in enumerate(REWARDS):
        sf.Reward__c.create(
            {
                "External_Key__c": f"report-reward:{i}",
                "Advocate__c": advocates[code]["Id"],
                "Amount__c": amount,
                "Status__c": status,
                "Type__c": kind,
            }
        )
    return advocates


def _report(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["report", "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result


def test_json_report_counts_the_funnel_liability_leaders_and_overrides(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """Every number in the JSON report is what the seeded referrals and rewards add up to."""
    advocates = _seed(sf)
    body = json.loads(_report(write_config(tmp_path, emulator_reset), "--format", "json").stdout)

    total = body["funnel"]["total"]
    assert (
        total["received"],
        total["routed"],
        total["converted"],
        total["won"],
        total["lost"],
        total["rejected"],
    ) == (
        9,
        6,  # five routed to an advocate's owner, one to the Referral Desk queue
        5,
        3,
        1,
        2,  # Rejected and Duplicate
    )
    by_channel = {f["group"]: f for f in body["funnel"]["by_channel"]}
    assert by_channel["Card"]["won"] == 2 and by_channel["Email"]["converted"] == 2
    by_program = {f["group"]: f for f in body["funnel"]["by_program"]}
    assert by_program["Customer"]["received"] == 5 and by_program["Partner"]["won"] == 1
    assert by_program["(none)"]["received"] == 1

    liability = body["reward_liability"]
    # owed is what the advocates' Reward_Balance__c hold (Approved, not paid); Pending Approval is apart
    assert (liability["owed"], liability["awaiting_approval"]) == ("350.00", "600.00")
    rows = {(r["status"], r["type"]): r for r in liability["by_status_and_type"]}
    assert rows[("Paid", "Gift Card")]["amount"] == "50.00"

    leaders = body["top_advocates"]
    assert [a["name"] for a in leaders[:2]] == [
        advocates["GRACE-1001"]["Name"],
        advocates["ALAN-1002"]["Name"],
    ]
    grace = {k: leaders[0][k] for k in ("successful", "referrals", "rejected", "reward_amount")}
    # referrals as on her record (Lead, Converted, Won, Lost); her duplicate counted apart
    assert grace == {"successful": 2, "referrals": 4, "rejected": 1, "reward_amount": "750.00"}
    assert (leaders[0]["owed"], leaders[0]["awaiting_approval"]) == ("100.00", "600.00")
    assert leaders[1]["reward_amount"] == "250.00"  # the rejected reward does not count
    assert (leaders[1]["owed"], leaders[1]["awaiting_approval"]) == ("250.00", "0.00")
    # an advocate whose only referral was rejected is no top advocate
    assert advocates["ADA-1003"]["Name"] not in [a["name"] for a in leaders]

    overrides = {o["rule"]: o for o in body["routing_overrides"]}
    assert overrides["advocate-owner"] == {
        "rule": "advocate-owner",
        "action": "owner_of_advocate",
        "referrals": 5,
        "overridden": 5,
    }
    assert overrides["partner-social-to-desk"]["overridden"] == 1
    assert overrides["fallback:unknown_advocate"]["overridden"] == 0


def test_table_and_csv_show_the_same_numbers(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """The default table is readable and the CSV carries one number per row."""
    _seed(sf)
    config = write_config(tmp_path, emulator_reset)
    table = _report(config).stdout
    for heading in ("Funnel by channel", "Funnel by advocate program", "Top advocates", "Reward liability"):
        assert heading in table
    assert "owed (Approved, not yet paid): 350.00" in table
    assert "awaiting approval (Pending Approval): 600.00" in table
    rows = list(csv.DictReader(io.StringIO(_report(config, "--format", "csv").stdout)))
    won = [
        r
        for r in rows
        if r["section"] == "funnel_by_channel" and r["group"] == "total" and r["metric"] == "won"
    ]
    assert won == [{"section": "funnel_by_channel", "group": "total", "metric": "won", "value": "3"}]


def test_since_leaves_out_older_records(sf: Salesforce, emulator_reset: Emulator, tmp_path: Path) -> None:
    """--since in the future counts nothing; the report says so instead of failing."""
    _seed(sf)
    tomorrow = (system_clock() + timedelta(days=1)).strftime("%Y-%m-%d")
    body = json.loads(
        _report(write_config(tmp_path, emulator_reset), "--format", "json", "--since", tomorrow).stdout
    )
    assert body["funnel"]["total"]["received"] == 0 and body["top_advocates"] == []
    assert body["reward_liability"]["owed"] == "0.00"


@pytest.mark.parametrize(
    ("rule", "action", "to_rep", "expected"),
    [
        ("to-desk", RoutingAction("queue", "Referral Desk"), 0, 4),
        ("to-owner", RoutingAction("owner_of_advocate"), 3, 3),
        ("keep", RoutingAction("keep_standard"), 0, 0),
        ("renamed-since", None, 2, 2),
    ],
)
def test_routed_counts_queues_whole_and_users_by_routed_owner(
    rule: str, action: RoutingAction | None, to_rep: int, expected: int
) -> None:
    """A queue is not a user (no Routed_Owner__c), so a queue rule's referrals count whole as overrides."""
    rules = RoutingRules(rules=(RoutingRule(rule, action),) if action else (), fallbacks=RoutingFallbacks())
    from sfconnector.report import rule_actions

    rows = [{"Routing_Rule__c": rule, "Status__c": "Lead", "Channel__c": "Card", "n": 4, "to_rep": to_rep}]
    (funnel,) = funnel_rollup(rows, "Channel__c", SchemaMapping(), rule_actions(rules))
    (override,) = override_rollup(rows, SchemaMapping(), rule_actions(rules))
    assert funnel.routed == expected == override.overridden


def test_overrides_count_what_the_connector_actually_decided(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """Referrals decided by the pipeline (here through reconcile): a rep, a queue, and the standard owner kept."""
    config = write_config(tmp_path, emulator_reset)
    for name, code, channel in (
        ("ToRep", "GRACE-1001", "Card"),
        ("ToDesk", "ALAN-1002", "Social"),
        ("Nobody", "ZZ-0", "Web"),
    ):
        sf.Lead.create(
            {
                "LastName": name,
                "Company": "Decided Co",
                "Referral_Code__c": code,
                "Referral_Channel__c": channel,
            }
        )
    swept = CliRunner().invoke(main, ["reconcile", "--config", str(config), "--since", "1d", "--drain"])
    assert swept.exit_code == 0, swept.output
    body = json.loads(_report(config, "--format", "json").stdout)
    overrides = {o["rule"]: (o["action"], o["referrals"], o["overridden"]) for o in body["routing_overrides"]}
    assert overrides == {
        "advocate-owner": ("owner_of_advocate", 1, 1),
        "partner-social-to-desk": ("queue", 1, 1),
        "fallback:unknown_advocate": ("keep_standard", 1, 0),
    }
    assert (body["funnel"]["total"]["received"], body["funnel"]["total"]["routed"]) == (3, 2)
