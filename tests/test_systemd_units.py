"""The shipped units (config/sfconnector.service, config/sfconnector@.service): what they promise IT, checked
in the files; and, where systemd's tools are installed, `systemd-analyze verify` (clean, not a warning) and
`systemd-analyze security --offline=true` (the exposure level, printed, and held at or below 2.0)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sfconnector.commands._state import STATE_FILE, unit_state_candidates
from sfconnector.systemd import STOP_TIMEOUT_ENV, drain_limit, parse_timespan

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"sfconnector.service": "sfconnector.service", "sfconnector@.service": "sfconnector@acme.service"}
EXPOSURE_AT_MOST = 2.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)"
)


def _settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (ROOT / "config" / unit).read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_units_reload_on_sighup_and_do_not_restart_what_only_a_person_can_fix(unit: str) -> None:
    s = _settings(unit)
    assert s["Type"] == ["notify"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert set(s["RestartPreventExitStatus"][0].split()) == {"2", "3"}  # bad config; another org's state
    assert s["Restart"] == ["on-failure"]
    assert "WatchdogSec" in s


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_units_load_only_the_jwt_key_the_recommended_config_uses(unit: str) -> None:
    loaded = [value.split(":", 1)[0] for value in _settings(unit)["LoadCredential"]]
    assert loaded == ["jwt-key.pem"]


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_the_drain_ends_before_the_units_stop_timeout(unit: str) -> None:
    s = _settings(unit)
    stop = parse_timespan(s["TimeoutStopSec"][0])
    told = dict(v.split("=", 1) for v in s["Environment"])[STOP_TIMEOUT_ENV]
    assert stop is not None and parse_timespan(told) == stop  # what the daemon is told is what systemd does
    limit, source = drain_limit(None, {STOP_TIMEOUT_ENV: told}, request_timeout=30.0)
    assert 0 < limit + 30.0 < stop and source.startswith(STOP_TIMEOUT_ENV)


def test_the_template_gives_each_org_its_config_credentials_state_and_user() -> None:
    s = _settings("sfconnector@.service")
    assert "--config /etc/sfconnector/%i.yaml" in s["ExecStart"][0]
    assert s["LoadCredential"] == ["jwt-key.pem:/etc/sfconnector/credentials/%i/jwt-key.pem"]
    assert s["StateDirectory"] == ["sfconnector-%i"] and s["User"] == ["sfconnector-%i"]


@pytest.mark.parametrize(
    ("unit", "config_file"),
    [
        ("sfconnector.service", "/etc/sfconnector/connector.yaml"),
        ("sfconnector@.service", "/etc/sfconnector/acme.yaml"),
    ],
)
def test_a_shell_looks_for_the_state_where_the_unit_keeps_it(unit: str, config_file: str) -> None:
    state_directory = _settings(unit)["StateDirectory"][0].replace("%i", "acme")
    expected = Path("/var/lib") / state_directory / STATE_FILE
    assert expected in unit_state_candidates(Path(config_file))
    assert f"--config {config_file.replace('acme', '%i')}" in _settings(unit)["ExecStart"][0]


def _installable(unit: str, directory: Path) -> Path:
    """The unit as installed here: ExecStart= pointing at this checkout's sfconnector."""
    text = (ROOT / "config" / unit).read_text()
    executable = Path(sys.executable).with_name("sfconnector")
    path = directory / unit
    path.write_text(text.replace("/opt/sfconnector/.venv/bin/sfconnector", str(executable)))
    return directory / UNITS[unit]


@needs_analyze
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_verify_finds_nothing_to_say(unit: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ANALYZE), "verify", str(_installable(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify exits 0 even for unknown keys; any line it prints is a problem.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_security_rates_the_units_exposure_low(unit: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", "--no-pager", str(_installable(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"{unit}: systemd-analyze security exposure {exposure} {match.group(2)}")
    assert exposure <= EXPOSURE_AT_MOST, result.stdout
