"""What IT and admins use around the running daemon: systemd notify, status, explain, dead letters."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfemulator.server import Emulator, trusting_session


@pytest.fixture(scope="module")
def setup(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    http = trusting_session(emulator.ca_path)
    http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
    workdir = tmp_path_factory.mktemp("ops")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(workdir / "notify.sock"))
    notify.settimeout(30)
    config = write_config(workdir, emulator)
    daemon = DaemonProcess(config).start(
        env={"NOTIFY_SOCKET": str(workdir / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    )
    sf = salesforce_as(emulator, http)
    yield {"config": config, "daemon": daemon, "sf": sf, "notify": notify, "http": http, "emulator": emulator}
    daemon.stop()
    notify.close()
    http.close()


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _lead(sf: Salesforce, **fields: Any) -> str:
    fields.setdefault("Company", "Ops Co")
    return str(sf.Lead.create(fields, headers={"Sforce-Call-Options": "client=webform"})["id"])


def test_daemon_tells_systemd_it_is_ready_then_pings_the_watchdog_even_when_idle(
    setup: dict[str, Any],
) -> None:
    messages = [setup["notify"].recv(256)]
    assert messages[0].startswith(b"READY=1")
    while b"WATCHDOG=1" not in messages:  # no event at all: the connected long-poll is the progress
        messages.append(setup["notify"].recv(256))


def test_status_shows_the_checkpoint_outbox_and_recent_decisions(setup: dict[str, Any]) -> None:
    lead_id = _lead(setup["sf"], LastName="Status", Email="s@ops.example", Referral_Code__c="ADA-1003")
    wait_for(lambda: setup["sf"].Lead.get(lead_id)["Advocate__c"], what="routing")
    result = _cli("status", "--config", str(setup["config"]))
    assert result.exit_code == 0, result.output
    assert "/data/LeadChangeEvent" in result.output and "checkpoint" in result.output
    assert "outbox:" in result.output and lead_id in result.output
    data = json.loads(_cli("status", "--config", str(setup["config"]), "--json").output)
    channels = {c["channel"]: c["checkpoint"] for c in data["channels"]}
    assert channels["/data/LeadChangeEvent"] > 0
    assert "/data/LeadChangeEvent" in data["last_event_at"]
    wait_for(
        lambda: json.loads(_cli("status", "--config", str(setup["config"]), "--json").output)["api_usage"],
        what="the daemon's API usage reading",
    )
    text = _cli("status", "--config", str(setup["config"])).output
    assert "last event from" in text and "API usage:" in text and "daily requests" in text


def test_explain_shows_the_rule_trace_for_a_lead_and_writes_nothing(setup: dict[str, Any]) -> None:
    sf: Salesforce = setup["sf"]
    lead_id = _lead(
        sf,
        LastName="Explained",
        Email="e@ops.example",
        Referral_Code__c="alan 1002",
        Referral_Channel__c="Social",
    )
    wait_for(lambda: sf.Lead.get(lead_id)["Advocate__c"], what="routing")
    emulator, http = setup["emulator"], setup["http"]
    # The advocate's email may leave in a later drain than the owner change: let the daemon finish first.
    wait_for(
        lambda: any(
            "Explained" in e.get("emailSubject", "")
            for e in http.get(f"{emulator.base_url}/_emulator/emails", timeout=10).json()
        ),
        what="the advocate's email",
    )
    writes_before = http.get(f"{emulator.base_url}/_emulator/stats", timeout=10).json()["by_kind"]
    result = _cli("explain", "--config", str(setup["config"]), "--lead", lead_id)
    assert result.exit_code == 0, result.output
    assert "match  partner-social-to-desk" in result.output
    assert "queue 'Referral Desk'" in result.output
    writes_after = http.get(f"{emulator.base_url}/_emulator/stats", timeout=10).json()["by_kind"]
    for kind in ("create", "update", "upsert", "collections", "composite", "action"):
        assert writes_after.get(kind, 0) == writes_before.get(kind, 0), kind
    as_json = json.loads(
        _cli("explain", "--config", str(setup["config"]), "--lead", lead_id, "--json").output
    )
    assert as_json["decisions"][0]["rule"] == "partner-social-to-desk"


def test_explain_needs_exactly_one_subject(setup: dict[str, Any]) -> None:
    result = CliRunner().invoke(main, ["explain", "--config", str(setup["config"])])
    assert result.exit_code == 2 and "exactly one of" in result.output


def test_a_bad_event_becomes_a_dead_letter_that_can_be_listed_and_dropped(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    sf: Salesforce = setup["sf"]
    sf.Referral_Submitted__e.create({"Referral_Code__c": "GRACE-1001", "Email__c": "nolastname@ops.example"})
    config = str(setup["config"])

    def listed() -> list[dict[str, Any]]:
        return [
            d
            for d in json.loads(_cli("deadletters", "list", "--config", config, "--json").output)
            if "Last_Name__c" in d["reason"]
        ]

    letter = wait_for(listed, what="the dead letter")[0]
    assert letter["channel"] == "/event/Referral_Submitted__e"
    assert "Last_Name__c" in _cli("deadletters", "list", "--config", config).output
    retry = CliRunner().invoke(main, ["deadletters", "retry", "--config", config, str(letter["id"])])
    assert retry.exit_code == 1 and "still cannot be processed" in retry.output
    assert _cli("deadletters", "drop", "--config", config, str(letter["id"])).exit_code == 0
    assert listed() == []
    assert setup["daemon"].process.poll() is None, "a bad event must not stop the daemon"
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"channel": "/data/LeadChangeEvent", "data": {"payload": {}}}))
    result = _cli("explain", "--config", config, "--event", str(event_file))
    assert "not processable" in result.output


def test_unknown_dead_letter_id_is_a_clear_error(setup: dict[str, Any]) -> None:
    result = CliRunner().invoke(main, ["deadletters", "drop", "--config", str(setup["config"]), "999999"])
    assert result.exit_code == 1 and "Traceback" not in result.output
