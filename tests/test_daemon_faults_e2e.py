"""The running daemon rides out what real orgs do to clients: forgotten sessions, expired tokens, network
cuts, 5xx and lock errors. After each fault a new referral is still routed, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config
from simple_salesforce import Salesforce

from sfemulator.server import Emulator, trusting_session


@pytest.fixture(scope="module")
def env(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    http = trusting_session(emulator.ca_path)
    http.post(f"{emulator.base_url}/_emulator/reset", timeout=10).raise_for_status()
    daemon = DaemonProcess(write_config(tmp_path_factory.mktemp("faults"), emulator)).start()
    yield {"emulator": emulator, "http": http, "daemon": daemon}
    daemon.stop()
    http.close()


def _control(env: dict[str, Any], method: str, path: str, body: Any = None) -> None:
    response = env["http"].request(
        method, f"{env['emulator'].base_url}/_emulator/{path}", json=body, timeout=10
    )
    response.raise_for_status()


def _sf(env: dict[str, Any]) -> Salesforce:
    emulator, http = env["emulator"], env["http"]
    return salesforce_as(emulator, http)


def _routed_once(env: dict[str, Any], name: str) -> None:
    sf = _sf(env)
    lead_id = sf.Lead.create(
        {
            "LastName": name,
            "Company": "Fault Co",
            "Email": f"{name.lower()}@faults.example",
            "Referral_Code__c": "GRACE-1001",
        },
        headers={"Sforce-Call-Options": "client=webform"},
    )["id"]
    wait_for(lambda: _sf(env).Lead.get(lead_id)["Advocate__c"], timeout=30, what=f"{name} routed")
    referrals = sf.query(f"SELECT Id FROM Referral__c WHERE External_Key__c = 'lead:{lead_id}'")["records"]
    assert len(referrals) == 1
    assert env["daemon"].process.poll() is None


@pytest.mark.parametrize(
    ("fault", "path", "body"),
    [
        ("403::Unknown client", "streaming/forget-clients", None),
        ("every access token expired", "sessions/expire", None),
        ("held connections dropped", "streaming/disconnect", None),
    ],
)
def test_streaming_faults_are_survived(env: dict[str, Any], fault: str, path: str, body: Any) -> None:
    _control(env, "POST", path, body)
    _routed_once(env, "After" + "".join(c for c in fault.title() if c.isalpha()))


def test_salesforce_outage_on_writes_is_retried_until_it_passes(env: dict[str, Any]) -> None:
    _control(
        env,
        "POST",
        "faults",
        {
            "method": "POST",
            "path": "/composite",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "message": "Server Unavailable",
            "count": 2,
        },
    )
    _routed_once(env, "AfterOutage")
    _control(env, "DELETE", "faults")


def test_lock_errors_on_lookups_are_retried(env: dict[str, Any]) -> None:
    _control(
        env,
        "POST",
        "faults",
        {
            "method": "GET",
            "path": "/query",
            "status": 400,
            "errorCode": "UNABLE_TO_LOCK_ROW",
            "message": "unable to obtain exclusive access to this record",
            "count": 1,
        },
    )
    _routed_once(env, "AfterLock")
    _control(env, "DELETE", "faults")


def test_emulator_restart_is_survived(env: dict[str, Any]) -> None:
    env["emulator"].restart()
    _routed_once(env, "AfterRestart")
    assert isinstance(env["http"], requests.Session)
