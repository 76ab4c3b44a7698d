"""Shared fixtures: one real emulator (HTTPS on a free port) per test session, reset per test on demand.

    def test_something(emulator_reset, sf):      # a fresh demo org and a simple-salesforce client on it
        sf.Lead.create({...})

TLS material is generated once per session; the server runs in a background thread of the test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from sfconnector.clock import system_clock
from sfconnector.retry import retries_without_sleep
from sfconnector.salesforce import AuthSettings, SalesforceClient, SalesforceSettings, TokenProvider
from sfemulator.server import Emulator, trusting_session

INTEGRATION_USERNAME = "integration@sfconnector.test"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The running emulator (demo seed): `.base_url`, `.ca_path`, `.tls_dir`, `.org`."""
    emu = Emulator(host="127.0.0.1", port=0, tls_dir=tmp_path_factory.mktemp("emulator-tls"), seed="demo")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator_http(emulator: Emulator) -> Iterator[requests.Session]:
    """A requests session trusting the emulator's CA."""
    session = trusting_session(emulator.ca_path)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def emulator_reset(emulator: Emulator, emulator_http: requests.Session) -> Emulator:
    """The emulator after POST /_emulator/reset: demo seed, no sessions, zeroed stats, no faults."""
    response = emulator_http.post(f"{emulator.base_url}/_emulator/reset", timeout=10)
    response.raise_for_status()
    return emulator


def new_token(emulator: Emulator, http: requests.Session, username: str = INTEGRATION_USERNAME) -> str:
    """An access token for `username`, minted by the control API (no login, not counted)."""
    response = http.post(f"{emulator.base_url}/_emulator/sessions", json={"username": username}, timeout=10)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def salesforce_as(
    emulator: Emulator, http: requests.Session, username: str = INTEGRATION_USERNAME
) -> Salesforce:
    """simple-salesforce, unchanged, as `username` (session id + instance URL, trusting the emulator CA)."""
    return Salesforce(
        instance_url=emulator.base_url, session_id=new_token(emulator, http, username), session=http
    )


@pytest.fixture
def sf(emulator_reset: Emulator, emulator_http: requests.Session) -> Salesforce:
    """simple-salesforce, unchanged, on a fresh org as the integration user (session id + instance URL)."""
    token = new_token(emulator_reset, emulator_http)
    return Salesforce(instance_url=emulator_reset.base_url, session_id=token, session=emulator_http)


def control(emulator: Emulator, http: requests.Session, method: str, path: str, body: Any = None) -> Any:
    """Call the control API; returns the decoded JSON body."""
    response = http.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


# -- sfconnector's own REST client on the emulator (shared by the client and writer tests) ---------------

CLIENT_ID = "sfconnector-demo"


def sf_settings(emulator: Any, method: str = "jwt", **auth: Any) -> SalesforceSettings:
    """sfconnector's settings for the emulator org, for any of the four grants."""
    base: dict[str, Any] = {"client_id": CLIENT_ID, "username": INTEGRATION_USERNAME}
    if method == "jwt":
        base["private_key_pem"] = (Path(emulator.tls_dir) / "jwt-key.pem").read_text()
    elif method == "client_credentials":
        base["client_secret"] = "demo-secret"
    elif method == "password":
        base.update(client_secret="demo-secret", password="demo-password")
    base.update(auth)
    return SalesforceSettings(
        login_url=emulator.base_url,
        auth=AuthSettings(method=method, **base),  # type: ignore[arg-type]
        ca_bundle=str(emulator.ca_path),
        client_name="sfconnector-test",
    )


def control_api(emulator: Any, method: str, path: str, body: Any = None) -> Any:
    """The control API without a session of one's own (verify against the emulator CA per request)."""
    response = requests.request(
        method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=str(emulator.ca_path), timeout=10
    )
    response.raise_for_status()
    return response.json() if response.content else None


@pytest.fixture
def org(emulator_reset: Any) -> Iterator[Any]:
    """A freshly reset demo org whose clock agrees with ours; retries in this module never sleep."""
    realign_org_clock(emulator_reset)
    with retries_without_sleep():
        yield emulator_reset


def realign_org_clock(emulator: Any) -> None:
    """Undo clock moves left by other tests: /_emulator/reset keeps the org clock's offset, and a JWT
    assertion (exp = our now + 3 min) is refused by an org whose clock runs hours ahead."""
    org_now = datetime.fromisoformat(
        control_api(emulator, "POST", "clock", {"advance_seconds": 0})["now"].replace("Z", "+00:00")
    )
    drift = (org_now - system_clock()).total_seconds()
    if abs(drift) > 5:
        control_api(emulator, "POST", "clock", {"advance_seconds": -drift})


@pytest.fixture
def client(org: Any) -> Iterator[SalesforceClient]:
    """sfconnector's REST client (JWT auth) on the fresh org."""
    tokens = TokenProvider(sf_settings(org))
    sfc = SalesforceClient(sf_settings(org), tokens)
    yield sfc
    sfc.close()
    tokens.close()
