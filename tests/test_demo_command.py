"""`sfconnector demo` (what `make demo` runs) works end to end and tells the story."""

import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def out() -> str:
    """The demo's output, run once for every test here (it takes a few seconds)."""
    result = subprocess.run(
        [sys.executable, "-m", "sfconnector", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def test_demo_routes_every_channel_and_stops_cleanly(out: str) -> None:
    assert "stopped cleanly on SIGTERM (exit 0)" in out
    rows = {line.split("  ")[0] + "|" + line: line for line in out.splitlines()}
    maya = next(line for line in rows.values() if "Maya Patel" in line and "Unassigned" in line)
    assert "Alice Nguyen" in maya and "advocate-owner" in maya
    sms = next(line for line in out.splitlines() if line.startswith("SMS "))
    assert "Referral Desk" in sms and "fallback:inactive_owner" in sms
    assert "Rejected" in next(line for line in out.splitlines() if "Omar Farouk" in line)
    assert "Emails to advocates" in out and "Tasks for reps" in out


def test_demo_follows_deals_to_rewards_totals_and_emails(out: str) -> None:
    """The story happens on the demo's own date (2026-12-07, inside the example rules' December promotion),
    so these amounts and dates hold on every day of every year."""
    lines = out.splitlines()
    assert "Won" in next(line for line in lines if line.startswith("Web") and "Maya Patel" in line)
    assert "Lost" in next(line for line in lines if line.startswith("Card") and "Tom Okafor" in line)
    patel = next(line for line in lines if line.startswith("Grace Hopper") and "Patel referral deal" in line)
    assert "200.00" in patel and "Paid" in patel and "base" in patel and "2027-01-06" in patel
    iyer = next(line for line in lines if line.startswith("Alan Turing") and "Iyer referral deal" in line)
    # 5% of 30,000 doubled by the December promotion, then held to the rule's max: max is the most it pays
    assert "1,000.00" in iyer and "Pending Approval" in iyer and "Commission" in iyer
    assert any(
        "5% of 30,000.00 = 1,500.00; promotion 'double-december' x2 = 3,000.00;"
        " capped at 1,000.00 after promotions" in line
        for line in lines
    )
    emails = out.split("Emails to advocates")[1].split("Rewards")[0]
    assert "to grace@advocates.example: Your reward of 200.00 has been paid" in emails
    assert "to ada@advocates.example: An update on your referral Tom Okafor" in emails
    assert "katherine@advocates.example" not in emails  # opted out of program emails
    totals = out.split("Advocates' totals")[1]
    assert "owed" in totals and "awaiting approval" in totals
    grace = next(line for line in totals.splitlines() if line.startswith("Grace Hopper"))
    assert grace.split()[2:6] == ["1", "1", "0.00", "0.00"]  # her reward is paid: nothing owed
    alan = next(line for line in totals.splitlines() if line.startswith("Alan Turing"))
    assert alan.split()[2:6] == ["2", "1", "0.00", "1,000.00"]  # above 500: not owed until approved
