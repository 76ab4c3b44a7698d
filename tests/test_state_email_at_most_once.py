"""An advocate is told at most once: an email interrupted mid-send is quarantined, never re-sent by itself."""

from pathlib import Path

from sfconnector.clock import system_clock
from sfconnector.state import DecidedBatch, OutboxEntry, StateStore

EMAIL = OutboxEntry(
    key="notify:lead:00Q000000000001AAA:Lead",
    op="email",
    sobject="",
    fields={
        "emailAddresses": "a@example.com",
        "emailSubject": "s",
        "emailBody": "b",
        "senderType": "CurrentUser",
    },
)


def test_an_email_interrupted_while_sending_becomes_a_dead_letter_not_a_resend(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore.open(path) as state:
        state.commit_batch(DecidedBatch(outbox=[EMAIL]))
        state.mark_sending([EMAIL.key])
        assert state.pending_outbox(10, system_clock()) == []  # not picked up again while in flight
    # the process died here; a new one starts
    with StateStore.open(path) as state:
        assert state.quarantine_interrupted_sends() == [EMAIL.key]
        assert state.pending_outbox(10, system_clock()) == []
        letters = state.dead_letters()
        assert len(letters) == 1 and "may have reached the advocate" in letters[0].reason
        assert state.quarantine_interrupted_sends() == []  # once
        state.retry_dead_letter(letters[0].id)  # an admin checked: it did not arrive
        assert [e.key for e in state.pending_outbox(10, system_clock())] == [EMAIL.key]


def test_a_sent_email_is_not_quarantined(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state.db") as state:
        state.commit_batch(DecidedBatch(outbox=[EMAIL]))
        state.mark_sending([EMAIL.key])
        state.mark_done([EMAIL.key], {})
        assert state.quarantine_interrupted_sends() == []
        assert state.dead_letters() == []
