"""`sfconnector explain --event` on several saved messages decides them as one batch, as the daemon would:
a submitted referral whose CreatedDate has no offset (some gateways omit it) is read as UTC and decided with
the others, and the same person submitted twice is one referral and one duplicate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from daemon_harness import write_config

from sfconnector.cli import main
from sfemulator.server import Emulator


def _submitted(uuid: str, created: str, email: str) -> dict[str, Any]:
    return {
        "channel": "/event/Referral_Submitted__e",
        "data": {
            "schema": "referral-submitted",
            "event": {"replayId": int(uuid[-2:]), "EventUuid": uuid},
            "payload": {
                "Referral_Code__c": "GRACE-1001",
                "Last_Name__c": "Okafor",
                "Email__c": email,
                "Channel__c": "SMS",
                "CreatedDate": created,
                "CreatedById": "0055g0000000001AAA",
            },
        },
    }


def test_explain_decides_saved_messages_together_with_naive_and_zoned_dates(
    emulator_reset: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator_reset)
    messages = [
        _submitted("0b7e5a52-0000-4000-8000-000000000011", "2026-11-20T08:00:05", "ngozi@batch.example"),
        _submitted("0b7e5a52-0000-4000-8000-000000000012", "2026-11-20T08:00:00.000Z", "ngozi@batch.example"),
    ]
    event_file = tmp_path / "events.json"
    event_file.write_text(json.dumps(messages))
    result = CliRunner().invoke(
        main, ["explain", "--event", str(event_file), "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    decided = json.loads(result.output)
    assert decided["dead_letters"] == []
    kinds = {d["referral"][-2:]: d["attribution"]["kind"] for d in decided["decisions"]}
    assert kinds == {"12": "New Lead", "11": "Duplicate"}  # the earlier submission (08:00:00Z) counts
