"""The built wheel, installed into a fresh virtual environment, works outside the checkout as a new user runs
it: `--version`, `init`, `validate`, `emulator`, `check` against that emulator, and `demo`.

The wheel must carry what sfconnector reads at run time (the Salesforce schema, the example config, its
mapping and rules, the units): nothing here can see the repository.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon_harness import ROOT, NotifySocket, free_port, notify_fields, wait_for
from simple_salesforce import Salesforce

from sfemulator.server import trusting_session


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin directory of a fresh venv holding only the wheel and its runtime dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", ROOT, cwd=work)
    [wheel] = (work / "dist").glob("sfconnector-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sfconnector/_shipped/connector.yaml.example" in names
    assert any(
        n.startswith("sfconnector/_shipped/salesforce/force-app/main/default/objects/Advocate__c/")
        for n in names
    )
    _run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    bin_dir = work / "venv" / "bin"
    _run(bin_dir / "pip", "install", "--quiet", wheel, cwd=work)
    yield bin_dir


def _clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_installed_cli_has_no_test_tools_and_reports_its_version(installed: Path, tmp_path: Path) -> None:
    out = _run(installed / "sfconnector", "--version", cwd=tmp_path, env=_clean_env(installed))
    assert "sfconnector, version" in out
    listed = _run(
        installed / "pip", "list", "--format=freeze", cwd=tmp_path, env=_clean_env(installed)
    ).lower()
    assert "pytest" not in listed and "hypothesis" not in listed and "mypy" not in listed


class InstalledOrg:
    """The installed emulator (seeded with the demo org) and a config `sfconnector init` wrote for it."""

    def __init__(self, bin_dir: Path, work: Path) -> None:
        self.bin_dir, self.work = bin_dir, work
        self.env = _clean_env(bin_dir)
        self.port, self.tls = free_port(), work / "tls"
        self.emulator = subprocess.Popen(
            [bin_dir / "sfconnector", "emulator", "--port", str(self.port), "--tls-dir", self.tls,
             "--seed", "demo"],
            cwd=work, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.base_url = f"https://127.0.0.1:{self.port}"
        wait_for(self._answering, timeout=60, what="the installed emulator")
        self.dir = work / "org"
        self.sfconnector(
            "init", self.dir, "--login-url", self.base_url,
            "--client-id", "sfconnector-demo", "--username", "integration@sfconnector.test",
        )  # fmt: skip
        self.config = self.dir / "connector.yaml"
        self.health = f"127.0.0.1:{free_port()}"
        text = self.config.read_text()
        text = text.replace("# ca_bundle: /path/to/extra-ca.pem", f"ca_bundle: {self.tls / 'ca.pem'}")
        text = text.replace("listen: 127.0.0.1:9108", f"listen: {self.health}")
        self.config.write_text(text)
        self.credentials = work / "credentials"
        self.credentials.mkdir()
        (self.credentials / "jwt-key.pem").write_bytes((self.tls / "jwt-key.pem").read_bytes())
        (self.credentials / "jwt-key.pem").chmod(0o600)
        self.common = ["--config", str(self.config), "--credentials-dir", str(self.credentials)]

    def _answering(self) -> bool:
        try:
            url = f"{self.base_url}/services/data/"
            return requests.get(url, verify=self.tls / "ca.pem", timeout=2).status_code < 500
        except (requests.RequestException, OSError):
            return False

    def sfconnector(self, *args: str | Path) -> str:
        return _run(self.bin_dir / "sfconnector", *args, cwd=self.work, env=self.env)

    def close(self) -> None:
        self.emulator.terminate()
        self.emulator.wait(timeout=30)


@pytest.fixture(scope="module")
def installed_org(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledOrg]:
    org = InstalledOrg(installed, tmp_path_factory.mktemp("installed-org"))
    yield org
    org.close()


def test_init_validate_and_check_against_the_installed_emulator(installed_org: InstalledOrg) -> None:
    assert "config OK" in installed_org.sfconnector("validate", *installed_org.common)
    installed_org.sfconnector("check", *installed_org.common)


def test_the_installed_daemon_runs_under_a_units_environment_reloads_and_stops(
    installed_org: InstalledOrg, tmp_path: Path
) -> None:
    """What sfconnector.service gives the process (NOTIFY_SOCKET, WATCHDOG_USEC, CREDENTIALS_DIRECTORY,
    STATE_DIRECTORY, the stop timeout) around the installed `sfconnector run`: READY once subscribed, a
    referral routed, RELOADING then READY on SIGHUP, STOPPING and exit 0 on SIGTERM."""
    org = installed_org
    state_dir = tmp_path / "var-lib"
    state_dir.mkdir()
    notify = NotifySocket(tmp_path / "notify")
    env = {
        **org.env,
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "2000000",
        "CREDENTIALS_DIRECTORY": str(org.credentials),
        "STATE_DIRECTORY": str(state_dir),
        "SFCONNECTOR_TIMEOUT_STOP_SEC": "40",
    }
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [org.bin_dir / "sfconnector", "run", "--config", org.config],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        ready = notify.wait_for(lambda m: m.startswith("READY=1"), timeout=60, what="READY=1")
        assert "subscribed to" in notify_fields(ready)["STATUS"]
        assert (state_dir / "sfconnector.db").is_file()

        http = trusting_session(org.tls / "ca.pem")
        token = http.post(
            f"{org.base_url}/_emulator/sessions",
            json={"username": "integration@sfconnector.test"},
            timeout=10,
        )
        sf = Salesforce(instance_url=org.base_url, session_id=token.json()["access_token"], session=http)
        lead_id = sf.Lead.create(
            {"LastName": "Okonkwo", "Company": "Okonkwo Ltd", "Referral_Code__c": "GRACE-1001"},
            headers={"Sforce-Call-Options": "client=webform"},
        )["id"]

        def routed() -> str | None:
            rows = sf.query(f"SELECT Routing_Rule__c FROM Referral__c WHERE Lead__c = '{lead_id}'")["records"]
            return rows[0]["Routing_Rule__c"] if rows else None

        assert wait_for(routed, timeout=60, what="the installed daemon to route the referral")

        notify.drain()
        daemon.send_signal(signal.SIGHUP)
        notify.wait_for(lambda m: m.startswith("RELOADING=1"), what="RELOADING=1")
        notify.wait_for(lambda m: m.startswith("READY=1"), what="READY=1 after the reload")
        assert daemon.poll() is None

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        assert any(m.startswith("STOPPING=1") for m in notify.drain())
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        notify.close()


def test_the_installed_demo_runs_end_to_end(installed: Path, tmp_path: Path) -> None:
    out = _run(installed / "sfconnector", "demo", cwd=tmp_path, env=_clean_env(installed))
    assert "Rewards (2)" in out and "Grace Hopper" in out
