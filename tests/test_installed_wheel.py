"""The built wheel, installed into a fresh virtual environment, works outside the checkout as a new user runs
it: `--version`, `init`, `validate`, `emulator`, `check` against that emulator, and `demo`.

The wheel must carry what sfconnector reads at run time (the Salesforce schema, the example config, its
mapping and rules, the units): nothing here can see the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon_harness import ROOT, free_port, wait_for


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


def test_init_validate_and_check_against_the_installed_emulator(installed: Path, tmp_path: Path) -> None:
    env = _clean_env(installed)
    port, tls = free_port(), tmp_path / "tls"
    emulator = subprocess.Popen(
        [installed / "sfconnector", "emulator", "--port", str(port), "--tls-dir", tls, "--seed", "demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answering() -> bool:
            try:
                url = f"https://127.0.0.1:{port}/services/data/"
                return requests.get(url, verify=tls / "ca.pem", timeout=2).status_code < 500
            except (requests.RequestException, OSError):
                return False

        wait_for(answering, timeout=60, what="the installed emulator")
        org = tmp_path / "org"
        _run(
            installed / "sfconnector", "init", org, "--login-url", f"https://127.0.0.1:{port}",
            "--client-id", "sfconnector-demo", "--username", "integration@sfconnector.test",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        config = org / "connector.yaml"
        text = config.read_text().replace(
            "# ca_bundle: /path/to/extra-ca.pem", f"ca_bundle: {tls / 'ca.pem'}"
        )
        config.write_text(text)
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "jwt-key.pem").write_bytes((tls / "jwt-key.pem").read_bytes())
        (credentials / "jwt-key.pem").chmod(0o600)
        common = ["--config", str(config), "--credentials-dir", str(credentials)]
        assert "config OK" in _run(installed / "sfconnector", "validate", *common, cwd=tmp_path, env=env)
        _run(installed / "sfconnector", "check", *common, cwd=tmp_path, env=env)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def test_the_installed_demo_runs_end_to_end(installed: Path, tmp_path: Path) -> None:
    out = _run(installed / "sfconnector", "demo", cwd=tmp_path, env=_clean_env(installed))
    assert "Rewards (2)" in out and "Grace Hopper" in out
