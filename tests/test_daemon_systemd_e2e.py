"""The daemon as systemd runs it: a separate process with the environment a unit gives it (NOTIFY_SOCKET on a
datagram socket this test reads, WATCHDOG_USEC, CREDENTIALS_DIRECTORY with the JWT key, STATE_DIRECTORY and
no state.path, the unit's stop timeout), against the emulator.

It says READY once subscribed, RELOADING then READY around a SIGHUP (taking a good config between batches,
keeping the running one when the new one is bad), feeds the watchdog only while it makes progress, answers
/healthz 503 with the reason when batches keep failing or the outbox stops draining, exits 0 on SIGTERM, and
refuses a state file of another org with exit status 3.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner
from conftest import control, salesforce_as
from daemon_harness import DaemonProcess, NotifySocket, notify_fields, wait_for, write_config
from simple_salesforce import Salesforce

from sfconnector.cli import main
from sfconnector.state import StateStore, known_version
from sfemulator.server import Emulator, trusting_session

ROOT = Path(__file__).resolve().parents[1]
# Every write the outbox makes (collections in a composite call, or alone; emails); not the test's own calls.
WRITE_FAULTS = [("POST", "/composite|/actions/"), ("PATCH", "/composite")]


class Unit:
    """One daemon started the way sfconnector.service starts it, and what surrounds it."""

    def __init__(self, emulator: Emulator, directory: Path, **overrides: Any) -> None:
        self.emulator = emulator
        self.directory = directory
        self.credentials = directory / "credentials"
        self.credentials.mkdir()
        key = self.credentials / "jwt-key.pem"
        shutil.copy(Path(emulator.tls_dir) / "jwt-key.pem", key)
        key.chmod(0o600)
        self.state_dir = directory / "var-lib"
        self.state_dir.mkdir()
        settings: dict[str, Any] = {
            "salesforce__auth__private_key_file": "credential:jwt-key.pem",
            "state__path": None,  # the unit's StateDirectory=, as $STATE_DIRECTORY
            "health__unhealthy_after": "1s",
            "writer__max_retries": 100,
            "writer__retry_max": "1s",
            **overrides,
        }
        self.config = write_config(directory, emulator, **settings)
        self.rules_file = directory / "example-rules.yaml"
        self.notify = NotifySocket(directory / "notify")
        self.env = {
            "NOTIFY_SOCKET": str(self.notify.path),
            "WATCHDOG_USEC": "1000000",
            "CREDENTIALS_DIRECTORY": str(self.credentials),
            "STATE_DIRECTORY": str(self.state_dir),
            "SFCONNECTOR_TIMEOUT_STOP_SEC": "40",
        }
        self.daemon = DaemonProcess(self.config)
        self.http = trusting_session(emulator.ca_path)
        self.base = "http://" + yaml.safe_load(self.config.read_text())["health"]["listen"]

    def start(self, *, wait_ready: bool = True) -> Unit:
        self.daemon.start(wait_ready=wait_ready, env=self.env)
        return self

    def sf(self) -> Salesforce:
        return salesforce_as(self.emulator, self.http)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        return control(self.emulator, self.http, method, path, body)

    def healthz(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(self.base + "/healthz", timeout=5)
        return response.status_code, response.json()

    def metrics(self) -> str:
        return requests.get(self.base + "/metrics", timeout=5).text

    def signal(self, sig: int) -> None:
        assert self.daemon.process is not None
        self.daemon.process.send_signal(sig)

    def log_events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.daemon.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    def close(self) -> None:
        self.daemon.stop()
        self.notify.close()
        self.http.close()


def _referral(sf: Salesforce, name: str, code: str = "GRACE-1001") -> str:
    lead_id: str = sf.Lead.create(
        {
            "LastName": name,
            "Company": f"{name} Co",
            "Email": f"{name.lower()}@unit.example",
            "Referral_Code__c": code,
        },
        headers={"Sforce-Call-Options": "client=webform"},
    )["id"]
    return lead_id


def _routing_rule(unit: Unit, lead_id: str) -> str:
    def rule() -> str | None:
        rows = unit.sf().query(f"SELECT Routing_Rule__c FROM Referral__c WHERE Lead__c = '{lead_id}'")[
            "records"
        ]
        return rows[0]["Routing_Rule__c"] if rows else None

    return wait_for(rule, timeout=30, what=f"the referral of {lead_id}")


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.fixture(scope="module")
def unit(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unit]:
    requests.post(
        f"{emulator.base_url}/_emulator/reset", verify=str(emulator.ca_path), timeout=10
    ).raise_for_status()
    started = Unit(emulator, tmp_path_factory.mktemp("unit")).start()
    yield started
    started.close()


@pytest.fixture
def fresh_unit(emulator_reset: Emulator, tmp_path: Path) -> Iterator[Unit]:
    """A daemon of its own, for a test that breaks the org on purpose."""
    started = Unit(emulator_reset, tmp_path)
    yield started
    started.control("DELETE", "faults")
    started.close()


# -- readiness, reload ----------------------------------------------------------------------------------


def test_ready_is_sent_once_subscribed_and_the_state_lives_in_the_state_directory(unit: Unit) -> None:
    ready = unit.notify.wait_for(lambda m: m.startswith("READY=1"), what="READY=1")
    assert "subscribed to /data/LeadChangeEvent" in notify_fields(ready)["STATUS"]
    assert (unit.state_dir / "sfconnector.db").is_file()
    starting = unit.log_events("daemon.starting")[0]
    assert starting["state"] == str(unit.state_dir / "sfconnector.db")
    # The unit's stop timeout (40 s here) less one request timeout (30 s) and 5 s.
    assert starting["drain_limit_s"] == 5.0
    assert starting["drain_limit_from"].startswith("SFCONNECTOR_TIMEOUT_STOP_SEC=40")


def test_sighup_with_a_good_config_reloads_between_batches_and_the_new_rules_route(unit: Unit) -> None:
    rules = yaml.safe_load(unit.rules_file.read_text())
    original = unit.rules_file.read_text()
    rules["routing"]["rules"].insert(
        0,
        {
            "name": "reloaded-to-desk",
            "description": "taken by SIGHUP",
            "when": {"lead.LastName": "Reloaded"},
            "then": {"queue": "Referral Desk"},
        },
    )
    unit.rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    try:
        unit.notify.drain()
        unit.signal(signal.SIGHUP)
        reloading = unit.notify.wait_for(lambda m: m.startswith("RELOADING=1"), what="RELOADING=1")
        assert re.fullmatch(r"\d+", notify_fields(reloading)["MONOTONIC_USEC"])
        ready = unit.notify.wait_for(lambda m: m.startswith("READY=1"), what="READY=1 after the reload")
        assert "config reloaded: rules.routing" in notify_fields(ready)["STATUS"]
        assert unit.log_events("config.reloaded")[-1]["changed"] == ["rules.routing"]
        assert _routing_rule(unit, _referral(unit.sf(), "Reloaded")) == "reloaded-to-desk"
    finally:
        unit.rules_file.write_text(original)
        unit.signal(signal.SIGHUP)
        unit.notify.wait_for(lambda m: "config reloaded" in m, what="the original rules back")
    assert _routing_rule(unit, _referral(unit.sf(), "Restored")) == "advocate-owner"


def test_sighup_with_a_bad_config_keeps_the_running_one_and_says_why(unit: Unit) -> None:
    original = unit.config.read_text()
    unit.config.write_text(original + "routng:\n  rules: []\n")
    try:
        unit.notify.drain()
        unit.signal(signal.SIGHUP)
        unit.notify.wait_for(lambda m: m.startswith("RELOADING=1"), what="RELOADING=1")
        ready = unit.notify.wait_for(lambda m: m.startswith("READY=1"), what="READY=1 after the refusal")
        assert "config reload refused" in notify_fields(ready)["STATUS"]
        assert "running on the previous config" in notify_fields(ready)["STATUS"]
        failed = unit.log_events("config.reload_failed")[-1]
        assert failed["kept"] == "the running config"
        assert any("connector.yaml:" in p and "routng" in p for p in failed["problems"])
        # Still routing, on the config it had.
        assert _routing_rule(unit, _referral(unit.sf(), "KeptOld")) == "advocate-owner"
        assert _metric(unit.metrics(), "sfconnector_config_reloads_total", result="refused") == 1.0
        assert unit.daemon.process is not None and unit.daemon.process.poll() is None
    finally:
        unit.config.write_text(original)


def test_a_reload_that_changes_the_channels_is_refused_until_a_restart(unit: Unit) -> None:
    original = unit.config.read_text()
    config = yaml.safe_load(original)
    config["stream"]["channels"] = config["stream"]["channels"][:1]
    unit.config.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        unit.notify.drain()
        unit.signal(signal.SIGHUP)
        ready = unit.notify.wait_for(lambda m: m.startswith("READY=1"), what="READY=1 after the refusal")
        assert "needs a restart: stream.channels" in notify_fields(ready)["STATUS"]
        assert unit.log_events("config.reload_refused")[-1]["needs_restart"] == ["stream.channels"]
    finally:
        unit.config.write_text(original)


# -- the shell finds what the unit uses ------------------------------------------------------------------


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_shell_commands_find_the_state_and_the_credentials_the_unit_uses(
    unit: Unit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = str(unit.config)
    # Reading the state needs neither the config nor its secret.
    status = _cli("status", "--state", str(unit.state_dir), "--json")
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["org_id"] and data["org_id"].startswith("00D")
    assert data["schema_version"] == known_version()
    assert _cli("deadletters", "list", "--state", str(unit.state_dir)).exit_code == 0
    # The config's credential:jwt-key.pem resolves where the unit's LoadCredential= reads it.
    plain = CliRunner().invoke(main, ["validate", "--config", config])
    assert plain.exit_code == 2 and "needs $CREDENTIALS_DIRECTORY" in plain.output
    assert _cli("validate", "--config", config, "--credentials-dir", str(unit.credentials)).exit_code == 0
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("SFCONNECTOR_CREDENTIALS_DIR", str(unit.credentials))
    assert _cli("validate", "--config", config).exit_code == 0
    # Without $STATE_DIRECTORY a shell is told where it looked, and how to point at the state.
    lost = CliRunner().invoke(main, ["status", "--config", config])
    assert lost.exit_code == 1 and "pass --state PATH" in lost.output and "Traceback" not in lost.output
    monkeypatch.setenv("STATE_DIRECTORY", str(unit.state_dir))
    found = _cli("status", "--config", config)
    assert found.exit_code == 0 and str(unit.state_dir / "sfconnector.db") in found.output


def test_state_backup_copies_a_running_daemons_state_consistently(unit: Unit, tmp_path: Path) -> None:
    _routing_rule(unit, _referral(unit.sf(), "BackedUp"))
    copy = tmp_path / "backup.db"
    result = _cli("state", "backup", "--state", str(unit.state_dir), str(copy), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["schema_version"] == known_version() and summary["org_id"].startswith("00D")
    assert copy.stat().st_mode & 0o777 == 0o600
    with StateStore.open(copy, readonly=True) as restored:
        assert any(c.channel == "/data/LeadChangeEvent" and c.checkpoint for c in restored.status().channels)
        assert restored.org_id() == summary["org_id"]
    again = CliRunner().invoke(main, ["state", "backup", "--state", str(unit.state_dir), str(copy)])
    assert again.exit_code == 1 and "--force" in again.output
    assert _cli("state", "backup", "--state", str(unit.state_dir), str(copy), "--force").exit_code == 0


# -- metrics and alerts on the running daemon -------------------------------------------------------------


def _metric_names_in(text: str) -> set[str]:
    return set(re.findall(r"\bsfconnector_[a-z0-9_]+", text))


def _exported(metrics: str) -> set[str]:
    names = set(re.findall(r"^# TYPE (\S+) (\S+)$", metrics, re.MULTILINE))
    exported = {name for name, _ in names}
    for name, kind in names:
        if kind == "histogram":
            exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return exported | {
        line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line[:1].isalpha()
    }


def test_every_metric_the_dashboard_and_the_alert_rules_use_is_on_the_running_daemon(unit: Unit) -> None:
    dashboard = (ROOT / "config" / "grafana-dashboard.json").read_text()
    rules_text = (ROOT / "config" / "prometheus-alerts.yaml").read_text()
    json.loads(dashboard)
    rules = yaml.safe_load(rules_text)
    assert all(
        {"alert", "expr", "labels", "annotations"} <= set(r) for g in rules["groups"] for r in g["rules"]
    )
    wanted = _metric_names_in(dashboard) | _metric_names_in(rules_text)
    assert len(wanted) > 15
    missing = wanted - _exported(unit.metrics())
    assert not missing, f"named in config/ but not exported: {sorted(missing)}"


def test_metrics_show_api_use_checkpoint_age_against_retention_and_owner_latency(unit: Unit) -> None:
    _routing_rule(unit, _referral(unit.sf(), "Measured"))

    def measured() -> str | None:
        text = unit.metrics()
        count = _metric(text, "sfconnector_lead_owner_latency_seconds_count")
        return text if count and _metric(text, "sfconnector_api_requests_used") else None

    text = wait_for(measured, timeout=30, what="the owner latency and API readings")
    assert (_metric(text, "sfconnector_api_requests_limit") or 0) > 0
    assert (_metric(text, "sfconnector_api_requests_left") or 0) > 0
    assert (_metric(text, "sfconnector_api_calls_total") or 0) > 0
    channel = "/data/LeadChangeEvent"
    assert _metric(text, "sfconnector_event_retention_seconds", channel=channel) == 72 * 3600
    age = _metric(text, "sfconnector_checkpoint_age_seconds", channel=channel)
    assert age is not None and 0 <= age < 3600
    assert _metric(text, "sfconnector_stream_connected") == 1
    assert _metric(text, "sfconnector_dead_letters_unresolved") is not None
    assert _metric(text, "sfconnector_stream_reconnects_total", reason="disconnected") is not None


def test_dead_letters_are_a_gauge_from_the_state_and_their_growth_an_alert(unit: Unit) -> None:
    def unresolved() -> float | None:
        return _metric(unit.metrics(), "sfconnector_dead_letters_unresolved")

    before = wait_for(lambda: unresolved() is not None, what="the gauge") and unresolved()
    unit.sf().Referral_Submitted__e.create(
        {"Referral_Code__c": "GRACE-1001", "Email__c": "nobody@unit.example"}
    )
    wait_for(lambda: (unresolved() or 0) > (before or 0), timeout=30, what="the dead letter counted")
    grown = wait_for(lambda: unit.log_events("alert.dead_letters_growing"), what="alert.dead_letters_growing")
    assert grown[-1]["unresolved"] >= 1
    text = unit.metrics()
    assert _metric(text, "sfconnector_alert_active", alert="alert.dead_letters_growing") == 1
    assert (_metric(text, "sfconnector_log_events_total", event="deadletter.added") or 0) >= 1
    letters = json.loads(_cli("deadletters", "list", "--state", str(unit.state_dir), "--json").output)
    for letter in letters:
        assert _cli("deadletters", "drop", "--state", str(unit.state_dir), str(letter["id"])).exit_code == 0
    wait_for(lambda: unresolved() == 0, timeout=30, what="the gauge back to 0")
    wait_for(
        lambda: _metric(unit.metrics(), "sfconnector_alert_active", alert="alert.dead_letters_growing") == 0,
        what="the alert cleared",
    )


def test_a_dropped_streaming_connection_is_counted_as_a_reconnect(unit: Unit) -> None:
    def reconnects() -> float:
        text = unit.metrics()
        return sum(
            float(v) for v in re.findall(r"^sfconnector_stream_reconnects_total\{.*\} (\S+)$", text, re.M)
        )

    before = reconnects()
    unit.control("POST", "streaming/forget-clients")
    wait_for(lambda: reconnects() > before, timeout=30, what="the reconnect counted")
    assert _routing_rule(unit, _referral(unit.sf(), "Reconnected")) == "advocate-owner"


def test_api_allocation_below_the_configured_share_is_an_alert(unit: Unit) -> None:
    limit = 200_000
    unit.control("POST", "limits", {"daily_api_requests": limit, "used": int(limit * 0.85)})
    try:
        _routing_rule(unit, _referral(unit.sf(), "Thrifty"))  # any API call carries the new reading
        low = wait_for(lambda: unit.log_events("alert.api_allocation_low"), timeout=30, what="the alert")
        assert low[-1]["threshold"] == 0.2 and low[-1]["left_share"] < 0.2
        assert _metric(unit.metrics(), "sfconnector_alert_active", alert="alert.api_allocation_low") == 1
    finally:
        unit.control("POST", "limits", {"daily_api_requests": limit, "used": 0})
    _routing_rule(unit, _referral(unit.sf(), "Plenty"))
    wait_for(
        lambda: _metric(unit.metrics(), "sfconnector_alert_active", alert="alert.api_allocation_low") == 0,
        timeout=30,
        what="the alert cleared",
    )


# -- the watchdog and /healthz when things go wrong -------------------------------------------------------


def _unavailable(method: str, path: str) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "status": 503,
        "errorCode": "SERVER_UNAVAILABLE",
        "message": "Server Unavailable",
        "count": 1_000_000,
    }


def _watchdog_withheld_while(unit: Unit, problem: str) -> None:
    """/healthz turns 503 naming `problem`, the daemon says it is not making progress, and no WATCHDOG=1
    follows that while /healthz counts at least four more seconds of it (systemd, at WATCHDOG_USEC=1 s, would
    have restarted the daemon three times over)."""

    def unhealthy() -> dict[str, Any] | None:
        status, body = unit.healthz()
        return body if status == 503 and any(p.startswith(problem) for p in body["problems"]) else None

    body = wait_for(unhealthy, timeout=30, what=f"/healthz 503 with {problem!r}")
    assert body["status"] == "unhealthy"
    unit.notify.wait_for(
        lambda m: m.startswith("STATUS=no progress: " + problem.split(" for")[0]), what="STATUS"
    )
    after = len(unit.notify.messages)

    def long_enough() -> bool:
        unit.notify.drain()
        found = [p for p in (unhealthy() or {}).get("problems", []) if p.startswith(problem)]
        return bool(found) and int(re.search(r"for (\d+)s", found[0]).group(1)) >= 5  # type: ignore[union-attr]

    wait_for(long_enough, timeout=30, what=f"{problem} for 5s")
    assert "WATCHDOG=1" not in unit.notify.messages[after:]


def test_watchdog_is_fed_while_idle_stops_while_writes_fail_and_resumes_when_they_pass(
    fresh_unit: Unit,
) -> None:
    unit = fresh_unit.start()
    unit.notify.wait_for(lambda m: m == "WATCHDOG=1", what="a ping while idle")
    for method, path in WRITE_FAULTS:
        unit.control("POST", "faults", _unavailable(method, path))
    lead_id = _referral(unit.sf(), "Unwritten")
    _watchdog_withheld_while(unit, "outbox not draining for")
    assert unit.sf().Lead.get(lead_id)["Advocate__c"] is None
    unit.control("DELETE", "faults")
    wait_for(lambda: unit.sf().Lead.get(lead_id)["Advocate__c"], timeout=30, what="the writes to pass")
    unit.notify.wait_for(lambda m: m == "WATCHDOG=1", what="the watchdog fed again")
    wait_for(lambda: unit.healthz()[0] == 200, timeout=30, what="/healthz 200 again")


def test_watchdog_stops_while_batches_keep_failing_and_sigterm_still_exits_0(fresh_unit: Unit) -> None:
    unit = fresh_unit.start()
    unit.notify.wait_for(lambda m: m == "WATCHDOG=1", what="a ping while idle")
    unit.control(  # a refused query fails fast (not retried in place), as an org in trouble does
        "POST",
        "faults",
        {
            "method": "GET",
            "path": "/query",
            "status": 400,
            "errorCode": "INVALID_FIELD",
            "message": "No such column 'Referral_Code__c' on entity 'Advocate__c'",
            "count": 1_000_000,
        },
    )
    _referral(unit.sf(), "Undecided")
    _watchdog_withheld_while(unit, "batches failing for")
    assert unit.daemon.terminate(timeout=20) == 0
    unit.notify.wait_for(lambda m: m == "STOPPING=1", what="STOPPING=1")
    assert unit.log_events("pipeline.batch_left_for_restart")


def test_a_state_file_of_another_org_stops_the_daemon_with_status_3(fresh_unit: Unit) -> None:
    with StateStore.open(fresh_unit.state_dir / "sfconnector.db") as state:
        state.bind_org("00D000000000999AAA")
    unit = fresh_unit.start(wait_ready=False)
    assert unit.daemon.process is not None
    code = unit.daemon.process.wait(timeout=30)
    assert code == 3, unit.daemon.log()
    assert "belongs to org 00D000000000999AAA" in unit.daemon.log()
    assert "Traceback" not in unit.daemon.log()
