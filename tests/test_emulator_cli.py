"""`sfconnector emulator`: help text, the start line, serving, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sfconnector.cli import main
from sfemulator.server import trusting_session


def test_help_documents_the_control_api() -> None:
    result = CliRunner().invoke(main, ["emulator", "--help"])
    assert result.exit_code == 0
    for route in (
        "/_emulator/reset",
        "/_emulator/faults",
        "/_emulator/stats",
        "/_emulator/leads/{id}/convert",
    ):
        assert route in result.output
    assert "--tls-dir" in result.output and "--seed" in result.output and "--latency-ms" in result.output
    assert "--streaming-timeout-ms" in result.output


def test_missing_seed_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["emulator", "--seed", str(tmp_path / "nope.json"), "--tls-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "seed file not found" in result.output


def test_serves_until_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "sfconnector.cli",
        "emulator",
        "--port",
        "0",
        "--tls-dir",
        str(tmp_path / "tls"),
        "--streaming-timeout-ms",
        "4000",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sfconnector.cli import main; main()", *command[3:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(https://127\.0\.0\.1:\d+) \(CA: (.+)\)", line)
        assert match, line
        base_url, ca = match.group(1), match.group(2)
        assert Path(ca) == tmp_path / "tls" / "ca.pem"
        assert (tmp_path / "tls" / "jwt-key.pem").exists()
        http = trusting_session(ca)
        versions = http.get(f"{base_url}/services/data/", timeout=10).json()
        assert versions[-1]["version"] == "67.0"
        token = http.post(f"{base_url}/_emulator/sessions", json={}, timeout=10).json()["access_token"]
        cometd, auth = f"{base_url}/cometd/59.0", {"Authorization": f"Bearer {token}"}
        handshake = [{"channel": "/meta/handshake", "version": "1.0", "id": "1"}]
        client_id = http.post(cometd, json=handshake, headers=auth, timeout=10).json()[0]["clientId"]
        connect = [
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", "id": "2"}
        ]
        first = http.post(cometd, json=connect, headers=auth, timeout=10).json()[0]
        assert first["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 4000}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
