"""One advocate email Salesforce refuses (HTTP 400 with one result per input) must not take the others with
it: the emails it sent are recorded as sent, so neither a drain nor a dead-letter retry sends them again,
and only the refused one becomes a dead letter."""

from __future__ import annotations

from pathlib import Path

import requests
from conftest import control
from daemon_harness import write_config

from sfconnector.config import load_config
from sfconnector.state import DecidedBatch, OutboxEntry, StateStore
from sfconnector.wiring import connect
from sfconnector.writer import OutboxWriter
from sfemulator.server import Emulator


def _email(key: str, body: str) -> OutboxEntry:
    return OutboxEntry(
        key=key,
        op="email",
        sobject="",
        fields={
            "emailAddresses": "grace@advocates.example",
            "emailSubject": "We received your referral",
            "emailBody": body,
            "senderType": "CurrentUser",
        },
    )


def test_a_refused_email_does_not_dead_letter_the_emails_sent_with_it(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, emulator_reset))
    _, client = connect(config)
    control(emulator_reset, emulator_http, "DELETE", "emails")
    with StateStore.open(config.state.path) as state:
        state.commit_batch(
            DecidedBatch(
                outbox=[
                    _email("notify:lead:A:Lead", "Thank you for referring Ana."),
                    _email("notify:lead:B:Lead", ""),
                    _email("notify:lead:C:Lead", "Thank you for referring Carl."),
                ]
            )
        )
        report = OutboxWriter(state, client).drain_once()
        assert (report.done, report.dead) == (2, 1)
        assert [d.payload.get("key") for d in state.dead_letters()] == ["notify:lead:B:Lead"]
        assert OutboxWriter(state, client).drain_once().idle
    sent = control(emulator_reset, emulator_http, "GET", "emails")
    assert sorted(e["emailBody"] for e in sent) == [
        "Thank you for referring Ana.",
        "Thank you for referring Carl.",
    ]
    client.close()
