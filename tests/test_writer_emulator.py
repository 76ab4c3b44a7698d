"""Outbox writer end to end: SQLite outbox -> emulator, with assignment rules, replays, crashes and faults."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import control_api as control

from sfconnector.clock import system_clock
from sfconnector.retry import RetryPolicy
from sfconnector.salesforce import SalesforceClient
from sfconnector.state import DecidedBatch, OutboxEntry, StateStore
from sfconnector.writer import OutboxWriter

FAR = system_clock() + timedelta(days=3650)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path / "state.db")
    yield s
    s.close()


def users(client: SalesforceClient) -> dict[str, str]:
    return {u["Username"].split("@")[0]: u["Id"] for u in client.query("SELECT Id, Username FROM User")}


def other_reps(client: SalesforceClient, owner_id: str) -> list[str]:
    """Active reps other than ``owner_id`` (the lead's standard owner), in a stable order."""
    u = users(client)
    reps = ["alice.nguyen", "bruno.keller", "chitra.rao", "diego.alvarez"]
    return [u[r] for r in reps if u[r] != owner_id]


def person_creates_lead(org: Any, client: SalesforceClient, **fields: Any) -> dict[str, Any]:
    """A lead created the way a web form does: no Sforce-Auto-Assign header, so assignment rules run."""
    token = client._tokens.token()
    response = requests.post(
        f"{token.instance_url}/services/data/v{client.api_version}/sobjects/Lead/",
        json={"LastName": "Referral", "Company": "Prospect Inc", **fields},
        headers={"Authorization": f"Bearer {token.access_token}"},
        verify=str(org.ca_path),
        timeout=10,
    )
    response.raise_for_status()
    lead_id = response.json()["id"]
    (row,) = client.query(f"SELECT Id, OwnerId FROM Lead WHERE Id = '{lead_id}'")
    return row


def person_reassigns(org: Any, client: SalesforceClient, lead_id: str, owner_id: str) -> None:
    token = client._tokens.token()
    response = requests.patch(
        f"{token.instance_url}/services/data/v{client.api_version}/sobjects/Lead/{lead_id}",
        json={"OwnerId": owner_id},
        headers={"Authorization": f"Bearer {token.access_token}", "Sforce-Auto-Assign": "FALSE"},
        verify=str(org.ca_path),
        timeout=10,
    )
    response.raise_for_status()


def owner_update(lead: dict[str, Any], owner: str) -> OutboxEntry:
    return OutboxEntry(
        key=f"lead-owner:{lead['Id']}",
        op="update",
        sobject="Lead",
        fields={"OwnerId": owner},
        record_id=lead["Id"],
        expect={"OwnerId": lead["OwnerId"]},
    )


def referral(lead_id: str, status: str = "Lead") -> OutboxEntry:
    return OutboxEntry(
        key=f"referral:{lead_id}",
        op="upsert",
        sobject="Referral__c",
        fields={"External_Key__c": f"lead:{lead_id}", "Lead__c": lead_id, "Status__c": status},
        external_id_field="External_Key__c",
    )


def call_task(lead_id: str, owner: str, what: str | None = None) -> OutboxEntry:
    fields = {"Subject": "Call the advocate first", "OwnerId": owner, "WhoId": lead_id}
    if what:
        fields["WhatId"] = what
    return OutboxEntry(
        key=f"task:{lead_id}:call-advocate",
        op="create_once",
        sobject="Task",
        fields={**fields, "External_Key__c": f"task:{lead_id}:call-advocate"},
        depends_on=f"referral:{lead_id}" if what else None,
    )


def commit(store: StateStore, *entries: OutboxEntry) -> None:
    store.commit_batch(DecidedBatch(outbox=entries))


def writer(store: StateStore, client: SalesforceClient, **kw: Any) -> OutboxWriter:
    return OutboxWriter(store, client, **kw)


def test_owner_update_sticks_because_auto_assign_is_off(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """The routed owner is written and the emulator's round-robin assignment rule does not take it back."""
    u = users(client)
    leads = [person_creates_lead(org, client, LastName=f"L{i}") for i in range(4)]
    target = u["chitra.rao"]
    commit(store, *(owner_update(lead, target) for lead in leads))
    report = writer(store, client).drain_once()
    assert (report.done, report.dead, report.retried) == (4, 0, 0)
    rows = client.query(
        "SELECT Id, OwnerId FROM Lead WHERE Id IN (" + ",".join(f"'{x['Id']}'" for x in leads) + ")"
    )
    assert {r["OwnerId"] for r in rows} == {target}
    assert store.pending_outbox(10, FAR) == []


def test_conditional_update_skips_a_lead_a_person_reassigned(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """If someone moved the lead after the decision, the writer leaves it with them."""
    lead = person_creates_lead(org, client)
    person, routed = other_reps(client, lead["OwnerId"])[:2]
    person_reassigns(org, client, lead["Id"], person)
    commit(store, owner_update(lead, routed))
    report = writer(store, client).drain_once()
    assert (report.done, report.skipped) == (0, 1)
    (row,) = client.query(f"SELECT OwnerId FROM Lead WHERE Id = '{lead['Id']}'")
    assert row["OwnerId"] == person
    entry = store.outbox_entry(f"lead-owner:{lead['Id']}")
    assert entry is not None and entry.status == "skipped" and "OwnerId" in str(entry.last_error)


def test_conditional_update_already_applied_counts_as_done(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A lead that already has the target owner (a crash after the write) is done without another write."""
    lead = person_creates_lead(org, client)
    routed = other_reps(client, lead["OwnerId"])[0]
    person_reassigns(org, client, lead["Id"], routed)
    commit(store, owner_update(lead, routed))
    report = writer(store, client).drain_once()
    assert (report.done, report.skipped, report.api_calls) == (1, 0, 1)


def test_referral_upsert_replayed_gives_one_record(
    org: Any, client: SalesforceClient, tmp_path: Path
) -> None:
    """The same referral decided again, even from a lost state file, upserts the same record."""
    lead = person_creates_lead(org, client)
    for attempt in range(2):
        with StateStore.open(tmp_path / f"state-{attempt}.db") as s:
            commit(s, referral(lead["Id"]))
            commit(s, referral(lead["Id"]))  # a replayed batch adds nothing
            assert writer(s, client).drain_once().done == 1
    rows = client.query(f"SELECT Id, Status__c FROM Referral__c WHERE External_Key__c = 'lead:{lead['Id']}'")
    assert len(rows) == 1 and rows[0]["Status__c"] == "Lead"


def test_create_once_task_not_duplicated_after_crash_before_mark_done(
    org: Any, client: SalesforceClient, tmp_path: Path
) -> None:
    """A task created just before a crash (never marked done) is found by its key, not created again."""
    u = users(client)
    lead = person_creates_lead(org, client)
    entry = call_task(lead["Id"], u["alice.nguyen"])
    with StateStore.open(tmp_path / "before-crash.db") as s:
        commit(s, entry)
        assert writer(s, client).drain_once().done == 1
    # the state as it was on disk before mark_done: the entry still pending
    with StateStore.open(tmp_path / "after-restart.db") as s:
        commit(s, entry)
        report = writer(s, client).drain_once()
        assert (report.done, report.api_calls) == (1, 1)  # the key lookup only
        done = s.outbox_entry(entry.key)
    tasks = client.query(f"SELECT Id FROM Task WHERE External_Key__c = '{entry.key}'")
    assert len(tasks) == 1
    assert done is not None and done.result_id == tasks[0]["Id"]


def test_mixed_batch_packs_collections_into_composite_calls(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """Owner updates, referral upserts and tasks for 10 leads take 2 API calls (reads, then writes)."""
    u = users(client)
    leads = [person_creates_lead(org, client, LastName=f"M{i}") for i in range(10)]
    entries: list[OutboxEntry] = []
    for lead in leads:
        entries += [
            owner_update(lead, u["bruno.keller"]),
            referral(lead["Id"]),
            call_task(lead["Id"], u["bruno.keller"]),
        ]
    commit(store, *entries)
    report = writer(store, client).drain_once()
    assert (report.done, report.dead, report.retried) == (30, 0, 0)
    assert report.api_calls == 2
    owners = client.query("SELECT OwnerId FROM Lead WHERE LastName LIKE 'M%'")
    assert {r["OwnerId"] for r in owners} == {u["bruno.keller"]}
    assert len(client.query("SELECT Id FROM Task WHERE External_Key__c LIKE 'task:%'")) == 10
    assert len(client.query("SELECT Id FROM Referral__c")) == 10


def test_dependent_entry_gets_the_referral_id_in_the_same_drain(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A reward whose Referral__c is "@{referral:<lead>}" is written after the referral, with its id."""
    lead = person_creates_lead(org, client)
    reward = OutboxEntry(
        key=f"reward:{lead['Id']}:first",
        op="upsert",
        sobject="Reward__c",
        fields={
            "External_Key__c": f"reward:{lead['Id']}:first",
            "Referral__c": "@{referral:" + lead["Id"] + "}",
        },
        external_id_field="External_Key__c",
        depends_on=f"referral:{lead['Id']}",
    )
    commit(store, reward, referral(lead["Id"]))
    report = writer(store, client).drain_once()
    assert (report.done, report.deferred, report.dead) == (2, 0, 0)
    (ref,) = client.query(f"SELECT Id FROM Referral__c WHERE External_Key__c = 'lead:{lead['Id']}'")
    (row,) = client.query("SELECT Id, Referral__c FROM Reward__c")
    assert row["Referral__c"] == ref["Id"]


def test_entry_waits_while_its_dependency_is_retrying(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A dependent entry is deferred (not failed) while the entry it needs is not written yet."""
    lead = person_creates_lead(org, client)
    task = OutboxEntry(
        key="task:x",
        op="create_once",
        sobject="Task",
        fields={"Subject": "Call", "Description": "@{referral:" + lead["Id"] + "}"},
        depends_on=f"referral:{lead['Id']}",
    )
    commit(store, referral(lead["Id"]), task)
    control(
        org,
        "POST",
        "faults",
        {
            "method": "PATCH",
            "path": "/composite/sobjects",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "message": "down",
            "count": 1,
        },
    )
    report = writer(store, client, retry_policy=RetryPolicy("test", attempts=1)).drain_once()
    assert (report.done, report.retried, report.deferred) == (0, 1, 1)
    retry_at = store.outbox_entry(f"referral:{lead['Id']}").next_attempt_at  # type: ignore[union-attr]
    assert retry_at is not None and store.next_outbox_due() == retry_at  # nothing to spin on meanwhile
    later = writer(store, client).drain_once(system_clock() + timedelta(hours=2))
    assert (later.done, later.deferred) == (2, 0)
    (row,) = client.query("SELECT Description FROM Task WHERE External_Key__c = 'task:x'")
    assert row["Description"].startswith("a")


def test_503_twice_then_success_is_ridden_out_in_place(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """Two 503s on the collection call are retried in place; the write lands once."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(
        org,
        "POST",
        "faults",
        {
            "method": "PATCH",
            "path": "/composite/sobjects",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "message": "Server Unavailable",
            "count": 2,
        },
    )
    report = writer(store, client).drain_once()
    assert (report.done, report.retried, report.api_calls) == (1, 0, 3)
    assert len(client.query("SELECT Id FROM Referral__c")) == 1


def test_lock_error_is_rescheduled_with_backoff_then_written(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """UNABLE_TO_LOCK_ROW beyond the in-place attempts is persisted as a retry with a due time, then written."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(
        org,
        "POST",
        "faults",
        {
            "method": "PATCH",
            "path": "/composite/sobjects",
            "status": 400,
            "errorCode": "UNABLE_TO_LOCK_ROW",
            "message": "unable to obtain exclusive access to this record",
            "count": 1,
        },
    )
    w = writer(store, client, retry_policy=RetryPolicy("test", attempts=1), rand=lambda: 0.0)
    now = system_clock()
    first = w.drain_once(now)
    assert (first.done, first.retried) == (0, 1)
    entry = store.outbox_entry(f"referral:{lead['Id']}")
    assert entry is not None and entry.status == "retrying" and entry.attempts == 1
    assert "UNABLE_TO_LOCK_ROW" in str(entry.last_error)
    assert w.drain_once(now).idle  # not due yet
    second = w.drain_once(now + timedelta(minutes=1))
    assert second.done == 1


def test_fatal_400_goes_to_dead_letters_with_the_reason(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A validation error is not retried: the entry becomes a dead letter carrying the reason and payload."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(
        org,
        "POST",
        "faults",
        {
            "method": "PATCH",
            "path": "/composite/sobjects",
            "status": 400,
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Referral needs a channel",
            "count": 1,
        },
    )
    report = writer(store, client).drain_once()
    assert (report.done, report.dead, report.api_calls) == (0, 1, 1)
    (letter,) = store.dead_letters()
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in letter.reason
    assert letter.payload["key"] == f"referral:{lead['Id']}"


def test_one_bad_record_does_not_sink_its_batch(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A record Salesforce rejects is dead-lettered alone; the rest of the collection is written."""
    leads = [person_creates_lead(org, client, LastName=f"B{i}") for i in range(3)]
    bad = replace(
        referral(leads[1]["Id"]), fields={**referral(leads[1]["Id"]).fields, "Status__c": "Not A Status"}
    )
    commit(store, referral(leads[0]["Id"]), bad, referral(leads[2]["Id"]))
    report = writer(store, client).drain_once()
    assert (report.done, report.dead) == (2, 1)
    (letter,) = store.dead_letters()
    assert letter.payload["key"] == bad.key


def test_request_limit_stops_the_drain_and_reports_the_pause(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """REQUEST_LIMIT_EXCEEDED stops draining, keeps entries pending and says until when to pause."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(
        org,
        "POST",
        "faults",
        {
            "method": "PATCH",
            "path": "/composite/sobjects",
            "status": 403,
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "message": "TotalRequests Limit exceeded.",
            "count": 1,
        },
    )
    now = system_clock()
    report = writer(store, client).drain_once(now)
    assert report.paused_until is not None and report.paused_until > now
    assert (report.done, report.retried, report.dead) == (0, 0, 0)
    assert [e.key for e in store.pending_outbox(10, now)] == [f"referral:{lead['Id']}"]


def test_advocate_email_is_sent_once_per_entry(org: Any, client: SalesforceClient, store: StateStore) -> None:
    """Email entries go out in one emailSimple call and are marked done."""
    emails = [
        OutboxEntry(
            key=f"email:lead:{i}:received",
            op="email",
            sobject="",
            fields={
                "emailAddresses": "grace@advocates.example",
                "emailSubject": "Thanks",
                "emailBody": f"#{i}",
            },
        )
        for i in range(3)
    ]
    commit(store, *emails)
    report = writer(store, client).drain_once()
    assert (report.done, report.api_calls) == (3, 1)


def test_emails_reach_the_emulator_once_even_when_replayed(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """Each email entry is sent once; committing the same decisions again sends nothing more."""
    control(org, "DELETE", "emails")
    entry = OutboxEntry(
        key="email:lead:X:received",
        op="email",
        sobject="",
        fields={
            "emailAddresses": "ada@advocates.example",
            "emailSubject": "Received",
            "emailBody": "Thanks!",
        },
    )
    commit(store, entry)
    writer(store, client).drain_once()
    commit(store, entry)
    assert writer(store, client).drain_once().idle
    sent = control(org, "GET", "emails")
    assert len(sent) == 1 and "ada@advocates.example" in str(sent[0])


def test_throttle_pauses_the_drain_when_the_allocation_is_nearly_spent(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """Past the reserve, the writer stops before calling and reports a pause; under it, it writes."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(org, "POST", "limits", {"daily_api_requests": 1000, "used": 980})
    client.limits()  # any call brings the Sforce-Limit-Info header
    now = system_clock()
    report = writer(store, client, api_reserve=0.10).drain_once(now)
    assert report.paused_until is not None and report.paused_until > now and report.api_calls == 0
    control(org, "POST", "limits", {"daily_api_requests": 1000, "used": 10})
    client.limits()
    assert writer(store, client, api_reserve=0.10).drain_once(now).done == 1


def test_spent_allocation_in_the_org_pauses_rather_than_dead_letters(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A real REQUEST_LIMIT_EXCEEDED from the org (allocation spent) pauses the writer, entries untouched."""
    lead = person_creates_lead(org, client)
    commit(store, referral(lead["Id"]))
    control(org, "POST", "limits", {"daily_api_requests": 1000, "used": 1000})
    report = writer(store, client).drain_once()
    assert report.paused_until is not None and (report.dead, report.retried) == (0, 0)
    entry = store.outbox_entry(f"referral:{lead['Id']}")
    assert entry is not None and entry.status == "pending" and entry.attempts == 0


def test_report_counts_match_the_orgs_api_usage(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """api_calls in the drain report equals what the org counted."""
    leads = [person_creates_lead(org, client, LastName=f"C{i}") for i in range(5)]
    commit(
        store,
        *(referral(lead["Id"]) for lead in leads),
        *(call_task(lead["Id"], leads[0]["OwnerId"]) for lead in leads),
    )
    before = control(org, "GET", "stats")["api_usage"]["used"]
    report = writer(store, client).drain_once()
    after = control(org, "GET", "stats")["api_usage"]["used"]
    assert report.done == 10
    assert after - before == report.api_calls == 2


def test_two_entries_for_one_lead_go_out_in_separate_drains_in_order(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """A second write to the same lead waits for the next drain, so the later decision lands last."""
    lead = person_creates_lead(org, client)
    first = OutboxEntry(
        "lead-channel:1", "update", "Lead", {"Referral_Channel__c": "Card"}, record_id=lead["Id"]
    )
    second = OutboxEntry(
        "lead-channel:2", "update", "Lead", {"Referral_Channel__c": "Web"}, record_id=lead["Id"]
    )
    commit(store, first, second)
    w = writer(store, client)
    one = w.drain_once()
    assert (one.done, one.deferred) == (1, 1)
    two = w.drain_once()
    assert (two.done, two.deferred) == (1, 0)
    (row,) = client.query(f"SELECT Referral_Channel__c FROM Lead WHERE Id = '{lead['Id']}'")
    assert row["Referral_Channel__c"] == "Web"


_DRAIN_SCRIPT = """
import os, sys
from pathlib import Path
from sfconnector.salesforce import AuthSettings, SalesforceClient, SalesforceSettings, TokenProvider
from sfconnector.state import StateStore
from sfconnector.writer import OutboxWriter

env = os.environ
settings = SalesforceSettings(
    login_url=env["EMU_BASE_URL"],
    auth=AuthSettings("jwt", "sfconnector-demo", "integration@sfconnector.test",
                      private_key_pem=Path(env["EMU_JWT_KEY"]).read_text()),
    ca_bundle=env["EMU_CA"],
)
store = StateStore.open(Path(env["STATE_DB"]))
writer = OutboxWriter(store, SalesforceClient(settings, TokenProvider(settings)), batch_size=60)
print("draining", flush=True)
while not writer.drain_once().idle:
    pass
"""


@pytest.mark.slow
def test_sigkill_during_drains_loses_nothing_and_doubles_nothing(
    org: Any, client: SalesforceClient, tmp_path: Path
) -> None:
    """Killing the writer process at random moments, then draining to the end, writes every entry once."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    created = client.collection_create(
        [{"attributes": {"type": "Lead"}, "LastName": f"K{i}", "Company": "Kill"} for i in range(100)]
    )
    leads = client.query("SELECT Id, OwnerId FROM Lead WHERE Company = 'Kill'")
    assert len(leads) == len(created) == 100
    owners = other_reps(client, "")
    db = tmp_path / "state.db"
    with StateStore.open(db) as s:
        for i, lead in enumerate(leads):
            commit(
                s,
                owner_update(lead, owners[i % 4]),
                referral(lead["Id"]),
                call_task(lead["Id"], owners[i % 4]),
            )
    control(org, "POST", "latency", {"ms": 15})
    env = {
        **os.environ,
        "EMU_BASE_URL": org.base_url,
        "EMU_JWT_KEY": str(Path(org.tls_dir) / "jwt-key.pem"),
        "EMU_CA": str(org.ca_path),
        "STATE_DB": str(db),
    }
    rng = random.Random(7)
    try:
        for _ in range(3):
            start = control(org, "GET", "stats")["total"]
            proc = subprocess.Popen([sys.executable, "-c", _DRAIN_SCRIPT], env=env, stdout=subprocess.PIPE)
            target = start + rng.randint(1, 6)
            deadline = time.monotonic() + 20
            while control(org, "GET", "stats")["total"] < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the writer process made no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))  # land anywhere inside the next request
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        control(org, "POST", "latency", {"ms": 0})
    with StateStore.open(db) as s:
        left = s.status()
        assert 0 < left.outbox_pending + left.outbox_retrying < 300, "the kills did not land mid-drain"
        w = writer(s, client)
        while not w.drain_once().idle:
            pass
        status = s.status()
        assert (status.outbox_pending, status.outbox_retrying, status.dead_letters) == (0, 0, 0)
    tasks = client.query("SELECT External_Key__c FROM Task WHERE External_Key__c LIKE 'task:%'")
    referrals = client.query("SELECT External_Key__c FROM Referral__c")
    assert sorted(t["External_Key__c"] for t in tasks) == sorted(
        f"task:{x['Id']}:call-advocate" for x in leads
    )
    assert sorted(r["External_Key__c"] for r in referrals) == sorted(f"lead:{x['Id']}" for x in leads)
    rows = client.query("SELECT Id, OwnerId FROM Lead WHERE Company = 'Kill'")
    expected = {lead["Id"]: owners[i % 4] for i, lead in enumerate(leads)}
    assert {r["Id"]: r["OwnerId"] for r in rows} == expected


def test_after_a_throttle_pause_one_call_refreshes_the_reading(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    """When the pause is over, the writer spends one call (bringing fresh usage) instead of pausing forever."""
    leads = [person_creates_lead(org, client, LastName=f"T{i}") for i in range(2)]
    commit(store, referral(leads[0]["Id"]))
    commit(store, call_task(leads[1]["Id"], leads[1]["OwnerId"]))  # a second op: would need a second call
    control(org, "POST", "limits", {"daily_api_requests": 1000, "used": 950})
    client.limits()
    w = writer(store, client, api_reserve=0.10, use_composite=False)
    now = system_clock()
    first = w.drain_once(now)
    assert first.api_calls == 0 and first.paused_until is not None
    assert w.drain_once(first.paused_until - timedelta(seconds=1)).api_calls == 0  # still pausing
    second = w.drain_once(first.paused_until)
    assert (
        second.api_calls == 1 and second.paused_until is not None and second.paused_until > first.paused_until
    )


def _landed_referral(org: Any, client: SalesforceClient, store: StateStore) -> tuple[str, str]:
    """A referral whose routing upsert reached Salesforce but was never recorded done (the process was
    killed between the answer and `mark_done`): (lead id, referral id)."""
    lead = person_creates_lead(org, client, LastName="Ferreira")
    commit(store, referral(lead["Id"]))
    landed = OutboxWriter(StateStore.open(store.path), client)  # a predecessor whose answers are lost
    assert landed.drain_once().done == 1
    (row,) = client.query(f"SELECT Id FROM Referral__c WHERE External_Key__c = 'lead:{lead['Id']}'")
    store._db.execute(
        "UPDATE outbox SET status = 'pending', result_id = NULL WHERE key = ?", [f"referral:{lead['Id']}"]
    )
    return lead["Id"], str(row["Id"])


def test_a_replayed_upsert_and_a_newer_update_of_the_same_record_land_oldest_first(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    lead_id, referral_id = _landed_referral(org, client, store)
    converted = OutboxEntry(
        key=f"referral-status:lead:{lead_id}:Converted:e1", op="update", sobject="Referral__c",
        fields={"Status__c": "Converted"}, record_id=referral_id, expect={"Status__c": "Lead"},
    )  # fmt: skip
    commit(store, converted)
    w = writer(store, client)
    first = w.drain_once()
    assert first.done == 1  # the replayed upsert; the update waits for it
    assert store.outbox_entry(converted.key).status == "pending"  # type: ignore[union-attr]
    assert w.drain_once().done == 1
    (row,) = client.query(f"SELECT Status__c FROM Referral__c WHERE Id = '{referral_id}'")
    assert row["Status__c"] == "Converted"


def test_a_conditional_upsert_is_refused_when_the_record_moved_on_since_the_decision(
    org: Any, client: SalesforceClient, store: StateStore
) -> None:
    lead_id, referral_id = _landed_referral(org, client, store)
    token = client._tokens.token()
    requests.patch(
        f"{token.instance_url}/services/data/v{client.api_version}/sobjects/Referral__c/{referral_id}",
        json={"Status__c": "Won"},
        headers={"Authorization": f"Bearer {token.access_token}"},
        verify=str(org.ca_path),
        timeout=10,
    ).raise_for_status()
    key = f"referral:{lead_id}"
    store._db.execute("UPDATE outbox SET expect = ? WHERE key = ?", ['{"Status__c": "Lead"}', key])
    report = writer(store, client).drain_once()
    assert (report.done, report.skipped) == (0, 1)
    assert "changed since the decision" in str(store.outbox_entry(key).last_error)  # type: ignore[union-attr]
    (row,) = client.query(f"SELECT Status__c FROM Referral__c WHERE Id = '{referral_id}'")
    assert row["Status__c"] == "Won"
