"""Shared fixtures: one real emulator (HTTPS on a free port) per test session, reset per test on demand.

    def test_something(emulator_reset, sf):      # a fresh demo org and a simple-salesforce client on it
        sf.Lead.create({...})

TLS material is generated once per session; the server runs in a background thread of the test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

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
