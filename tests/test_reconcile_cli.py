"""`sfconnector reconcile` against the emulator: what the stream missed is found, repaired once, and only once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result
from daemon_harness import write_config
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfconnector.clock import system_clock
from sfemulator.server import Emulator

SINCE = (system_clock() - timedelta(days=1)).strftime("%Y-%m-%d")


def _reconcile(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["reconcile", "--config", str(config), "--since", SINCE, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def _referral_leads(sf: Salesforce, n: int, code: str = "grace 1001", prefix: str = "Missed") -> list[str]:
    return [
        sf.Lead.create(
            {
                "LastName": f"{prefix}-{i}",
                "Company": f"{prefix} Co",
                "Email": f"{prefix.lower()}{i}@reconcile.example",
                "Referral_Code__c": code,
                "Referral_Channel__c": "Card",
            }
        )["id"]
        for i in range(n)
    ]


def _advocate(sf: Salesforce, code: str) -> dict[str, Any]:
    rows = sf.query(f"SELECT Id, OwnerId FROM Advocate__c WHERE Referral_Code__c = '{code}'")["records"]
    return dict(rows[0])


def test_missed_referral_leads_are_routed_and_attributed_once(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """Leads created while nobody listened get their Referral__c, owner, task and email; a second run adds nothing."""
    config = write_config(tmp_path, emulator_reset)
    lead_ids = _referral_leads(sf, 5)
    grace = _advocate(sf, "GRACE-1001")

    first = _json(_reconcile(config, "--drain", "--json"))
    assert first["counts"]["missing_referral"]["queued"] == 5
    assert first["drained"]["waiting"] == 0 and first["drained"]["dead"] == 0

    referrals = sf.query_all(
        "SELECT External_Key__c, Advocate__c, Routed_Owner__c, Status__c FROM Referral__c"
    )
    keys = Counter(r["External_Key__c"] for r in referrals["records"])
    assert keys == Counter({f"lead:{lead_id}": 1 for lead_id in lead_ids})
    assert {r["Advocate__c"] for r in referrals["records"]} == {grace["Id"]}
    leads = sf.query_all("SELECT OwnerId, Advocate__c FROM Lead WHERE Company = 'Missed Co'")["records"]
    assert {(lead["OwnerId"], lead["Advocate__c"]) for lead in leads} == {(grace["OwnerId"], grace["Id"])}
    tasks = sf.query("SELECT WhoId FROM Task")["records"]
    assert sorted(t["WhoId"] for t in tasks) == sorted(lead_ids)
    emails = emulator_http.get(f"{emulator_reset.base_url}/_emulator/emails", timeout=10).json()
    assert len(emails) == 5

    second = _json(_reconcile(config, "--drain", "--json"))
    assert second["queued"] == 0
    assert second["counts"]["missing_referral"] == {
        "queued": 0,
        "already_queued": 0,
        "would_queue": 0,
        "reported": 0,
    }
    assert len(emulator_http.get(f"{emulator_reset.base_url}/_emulator/emails", timeout=10).json()) == 5


def test_queued_but_unwritten_repairs_are_not_queued_again(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """Without --drain the repairs wait in the outbox; running again finds them there and queues nothing new."""
    config = write_config(tmp_path, emulator_reset)
    _referral_leads(sf, 3)
    first = _json(_reconcile(config, "--json"))
    assert first["counts"]["missing_referral"]["queued"] == 3 and first["queued"] > 3
    second = _json(_reconcile(config, "--json"))
    assert second["queued"] == 0
    assert second["counts"]["missing_referral"]["already_queued"] == 3
    assert sf.query("SELECT COUNT() FROM Referral__c")["totalSize"] == 0


def test_dry_run_decides_but_queues_and_writes_nothing(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """--dry-run names every repair it would make and leaves the state file uncreated."""
    config = write_config(tmp_path, emulator_reset)
    lead_ids = _referral_leads(sf, 2)
    result = _reconcile(config, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout
    for lead_id in lead_ids:
        assert lead_id in result.stdout
    assert "would be queued" in result.stdout
    assert "reconcile: leads 2/2" in result.stderr  # progress, a line per page when not on a terminal
    assert not (tmp_path / "state.db").exists()
    assert sf.query("SELECT COUNT() FROM Referral__c")["totalSize"] == 0


def test_wrong_owner_repaired_only_when_no_person_chose_it(
    sf: Salesforce, emulator_reset: Emulator, tmp_path: Path
) -> None:
    """A routed lead back in a queue goes to its routed owner; one a rep holds is reported and left alone."""
    config = write_config(tmp_path, emulator_reset)
    grace = _advocate(sf, "GRACE-1001")
    queue = sf.query("SELECT Id FROM Group WHERE Type = 'Queue' AND Name = 'Unassigned Leads'")["records"][0][
        "Id"
    ]
    rep = sf.query("SELECT Id FROM User WHERE Username LIKE 'diego%'")["records"][0]["Id"]
    in_queue, with_rep = _referral_leads(sf, 2, prefix="Owner")
    for lead_id, owner in ((in_queue, queue), (with_rep, rep)):
        sf.Lead.update(lead_id, {"OwnerId": owner}, headers={"Sforce-Auto-Assign": "FALSE"})
        sf.Referral__c.create(
            {
                "External_Key__c": f"lead:{lead_id}",
                "Lead__c": lead_id,
                "Advocate__c": grace["Id"],
                "Status__c": "Lead",
                "Routed_Owner__c": grace["OwnerId"],
                "Routing_Rule__c": "advocate-owner",
            }
        )
    result = _json(_reconcile(config, "--drain", "--json"))
    by_lead = {f["record_id"]: f for f in result["findings"] if f["kind"] == "wrong_owner"}
    assert by_lead[in_queue]["repair"] == "queued"
    assert by_lead[with_rep]["repair"] == "reported"
    assert "person" in by_lead[with_rep]["detail"]
    assert sf.Lead.get(in_queue)["OwnerId"] == grace["OwnerId"]
    assert sf.Lead.get(with_rep)["OwnerId"] == rep
    again = _json(_reconcile(config, "--json"))
    assert [f["record_id"] for f in again["findings"] if f["kind"] == "wrong_owner"] == [with_rep]
    assert again["queued"] == 0


def test_referral_lagging_a_converted_lead_is_found(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """A referral still at Lead after its lead converted is a status lag the sweep names."""
    config = write_config(tmp_path, emulator_reset)
    (lead_id,) = _referral_leads(sf, 1, prefix="Lag")
    sf.Referral__c.create({"External_Key__c": f"lead:{lead_id}", "Lead__c": lead_id, "Status__c": "Lead"})
    emulator_http.post(
        f"{emulator_reset.base_url}/_emulator/leads/{lead_id}/convert",
        json={"createOpportunity": True},
        timeout=10,
    ).raise_for_status()
    result = _json(_reconcile(config, "--dry-run", "--json"))
    lags = [f for f in result["findings"] if f["kind"] == "status_lag"]
    assert len(lags) == 1 and "Lead" in lags[0]["detail"] and "Converted" in lags[0]["detail"]


def test_missed_lead_converted_meanwhile_gets_a_converted_referral_and_no_lead_update(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    """A converted lead cannot be updated: the repair writes only its referral, already Converted and linked."""
    config = write_config(tmp_path, emulator_reset)
    (lead_id,) = _referral_leads(sf, 1, prefix="Conv")
    converted = emulator_http.post(
        f"{emulator_reset.base_url}/_emulator/leads/{lead_id}/convert",
        json={"createOpportunity": True},
        timeout=10,
    ).json()
    result = _json(_reconcile(config, "--drain", "--json"))
    assert result["drained"]["dead"] == 0
    (referral,) = sf.query("SELECT Status__c, Contact__c, Opportunity__c, Routed_Owner__c FROM Referral__c")[
        "records"
    ]
    assert referral["Status__c"] == "Converted"
    assert referral["Routed_Owner__c"] is None  # nobody was routed: the lead was converted first
    assert referral["Contact__c"] == converted["contactId"]
    assert referral["Opportunity__c"] == converted["opportunityId"]
    assert sf.query("SELECT COUNT() FROM Task")["totalSize"] == 0


def test_bad_since_is_a_clear_error(tmp_path: Path) -> None:
    """A date nobody can read is exit status 2 with the accepted forms, never a traceback."""
    result = CliRunner().invoke(
        main, ["reconcile", "--config", str(tmp_path / "x.yaml"), "--since", "last week"]
    )
    assert result.exit_code == 2
    assert "2026-11-20" in result.output and "Traceback" not in result.output


def test_unusable_state_file_is_a_clear_error(emulator: Emulator, tmp_path: Path) -> None:
    """A state file that is not one is named in one line, never a traceback."""
    config = write_config(tmp_path, emulator)
    (tmp_path / "state.db").write_text("not a database " * 100)
    result = _reconcile(config)
    assert result.exit_code == 1
    assert "not a usable sfconnector state file" in result.output and "Traceback" not in result.output


def test_since_takes_dates_date_times_and_ages() -> None:
    """A day is midnight UTC, a date-time without zone is UTC, an age counts back from now."""
    from sfconnector.commands.reconcile import parse_since

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since("2026-11-20T08:30:00") == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-20T08:30:00+02:00") == datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
    assert parse_since("72h", now) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
