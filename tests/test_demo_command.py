"""`sfconnector demo` (what `make demo` runs) works end to end and tells the story."""

import subprocess
import sys


def test_demo_routes_every_channel_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sfconnector", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    assert "stopped cleanly on SIGTERM (exit 0)" in out
    rows = {line.split("  ")[0] + "|" + line: line for line in out.splitlines()}
    maya = next(line for line in rows.values() if "Maya Patel" in line and "Unassigned" in line)
    assert "Alice Nguyen" in maya and "advocate-owner" in maya
    sms = next(line for line in out.splitlines() if line.startswith("SMS "))
    assert "Referral Desk" in sms and "fallback:inactive_owner" in sms
    assert "Rejected" in next(line for line in out.splitlines() if "Omar Farouk" in line)
    assert "Emails to advocates" in out and "Tasks for reps" in out
