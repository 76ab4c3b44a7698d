"""`sfconnector deadletters retry` as an admin uses it after fixing a cause: a retried event is decided and
its writes queued in the same transaction that ends the dead letter; when the retry cannot happen (the org
unreachable, the write pruned meanwhile) it says why, keeps the dead letter, and shows no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from daemon_harness import free_port, write_config

from sfconnector.cli import main
from sfconnector.retry import retries_without_sleep
from sfconnector.state import StateStore
from sfemulator.server import Emulator

CHANNEL = "/event/Referral_Submitted__e"


def _message(last_name: str) -> dict[str, Any]:
    return {
        "channel": CHANNEL,
        "data": {
            "schema": "referral-submitted",
            "event": {"replayId": 7, "EventUuid": "8d3c1f6e-0000-4000-8000-000000000007"},
            "payload": {
                "Referral_Code__c": "GRACE-1001",
                "First_Name__c": "Rita",
                "Last_Name__c": last_name,
                "Email__c": "rita@retry.example",
                "Company__c": "Retry Co",
                "Channel__c": "SMS",
                "CreatedDate": "2026-11-20T08:00:00.000Z",
                "CreatedById": "0055g0000000001AAA",
            },
        },
    }


def _state_with_letters(config: Path) -> tuple[int, int]:
    with StateStore.open(config.parent / "state.db") as state:
        refused = state.add_dead_letter("outbox", None, None, {"key": "lead-route:gone"}, "refused")
        event = state.add_dead_letter("event", CHANNEL, 7, _message("Moreno"), "a rule failed")
    return refused, event


def _retry(config: Path, letter: int) -> Any:
    return CliRunner().invoke(main, ["deadletters", "retry", "--config", str(config), str(letter)])


def _letters(config: Path) -> list[int]:
    with StateStore.open(config.parent / "state.db") as state:
        return [d.id for d in state.dead_letters()]


def test_retrying_an_event_while_the_org_is_unreachable_says_so_and_keeps_the_letter(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator, salesforce__login_url=f"https://127.0.0.1:{free_port()}")
    refused, event = _state_with_letters(config)
    with retries_without_sleep(attempts=2):
        result = _retry(config, event)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{event}: not retried" in result.output
    assert _letters(config) == [refused, event]


def test_retrying_a_write_whose_outbox_entry_is_gone_says_so(emulator: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emulator)
    refused, _ = _state_with_letters(config)
    result = _retry(config, refused)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "lead-route:gone" in result.output and "no longer exists" in result.output


def test_a_retried_event_is_decided_and_its_writes_queued(emulator_reset: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emulator_reset)
    refused, event = _state_with_letters(config)
    result = _retry(config, event)
    assert result.exit_code == 0, result.output
    assert "decided again" in result.output
    assert _letters(config) == [refused]
    with StateStore.open(config.parent / "state.db") as state:
        assert state.status().outbox_pending > 0
