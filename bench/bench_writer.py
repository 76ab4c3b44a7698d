"""Benchmark of the durable state and the outbox writer.

    .venv/bin/python bench/bench_writer.py [--leads 1000] [--batch 200]

1. ``commit_batch`` throughput: batches of 100 decided events (3 outbox entries, 1 routing row each), with
   ``synchronous=FULL`` (the setting StateStore uses) and NORMAL for comparison.
2. Draining the outbox for N referral leads (owner update with its conditional pre-check, referral upsert,
   create-once task: 3 entries per lead) into an in-process emulator over HTTPS: wall time and API calls,
   with and without packing collections into Composite requests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

from sfconnector.clock import system_clock
from sfconnector.logging import configure_logging
from sfconnector.salesforce import AuthSettings, SalesforceClient, SalesforceSettings, TokenProvider
from sfconnector.state import DecidedBatch, OutboxEntry, RoutingLogRow, StateStore
from sfconnector.writer import OutboxWriter
from sfemulator.server import Emulator


def bench_commits(batches: int, synchronous: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore.open(Path(tmp) / "state.db")
        store._db.execute(f"PRAGMA synchronous={synchronous}")
        started = time.perf_counter()
        for b in range(batches):
            entries, rows = [], []
            for i in range(100):
                lead = f"00Q{b:06d}{i:06d}"
                entries += [
                    OutboxEntry(f"lead-owner:{lead}", "update", "Lead", {"OwnerId": "005A"}, record_id=lead),
                    OutboxEntry(
                        f"referral:{lead}",
                        "upsert",
                        "Referral__c",
                        {"External_Key__c": f"lead:{lead}"},
                        external_id_field="External_Key__c",
                    ),
                    OutboxEntry(f"task:{lead}", "create_once", "Task", {"Subject": "Call"}),
                ]
                rows.append(RoutingLogRow(lead, "a01", "005S", "005A", "r", "why", system_clock()))
            store.commit_batch(
                DecidedBatch({"/data/LeadChangeEvent": b}, entries, [f"c:{b}:{i}" for i in range(100)], rows)
            )
        elapsed = time.perf_counter() - started
        store.close()
    return elapsed


def bench_drain(emu: Emulator, leads: int, batch: int, composite: bool) -> tuple[float, int, int, int]:
    requests.post(f"{emu.base_url}/_emulator/reset", verify=str(emu.ca_path), timeout=30).raise_for_status()
    key = (emu.settings.tls_dir / "jwt-key.pem").read_text()
    settings = SalesforceSettings(
        login_url=emu.base_url,
        auth=AuthSettings("jwt", "sfconnector-demo", "integration@sfconnector.test", private_key_pem=key),
        ca_bundle=str(emu.ca_path),
    )
    client = SalesforceClient(settings, TokenProvider(settings))
    users = {u["Username"]: u["Id"] for u in client.query("SELECT Id, Username FROM User")}
    owner = users["chitra.rao@sfconnector.test"]
    created = client.collection_create(
        [{"attributes": {"type": "Lead"}, "LastName": f"Bench {i}", "Company": "Bench"} for i in range(leads)]
    )
    ids = [r.id for r in created if r.id]
    current = {
        r["Id"]: r["OwnerId"] for r in client.query("SELECT Id, OwnerId FROM Lead WHERE Company = 'Bench'")
    }
    entries: list[OutboxEntry] = []
    for lead in ids:
        entries += [
            OutboxEntry(
                f"lead-owner:{lead}",
                "update",
                "Lead",
                {"OwnerId": owner},
                record_id=lead,
                expect={"OwnerId": current[lead]},
            ),
            OutboxEntry(
                f"referral:{lead}",
                "upsert",
                "Referral__c",
                {"External_Key__c": f"lead:{lead}", "Lead__c": lead, "Status__c": "Lead"},
                external_id_field="External_Key__c",
            ),
            OutboxEntry(
                f"task:{lead}:call-advocate",
                "create_once",
                "Task",
                {"Subject": "Call the advocate first", "WhoId": lead, "OwnerId": owner},
            ),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore.open(Path(tmp) / "state.db")
        store.commit_batch(DecidedBatch(outbox=entries))
        writer = OutboxWriter(store, client, batch_size=batch, use_composite=composite)
        calls = done = 0
        started = time.perf_counter()
        while True:
            report = writer.drain_once()
            calls += report.api_calls
            done += report.done + report.skipped
            if report.idle:
                break
        elapsed = time.perf_counter() - started
        store.close()
    stats = requests.get(f"{emu.base_url}/_emulator/stats", verify=str(emu.ca_path), timeout=30).json()
    client.close()
    return elapsed, calls, done, int(stats["api_usage"]["used"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--commit-batches", type=int, default=50)
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="emulator latency per request (a WAN round trip)"
    )
    args = parser.parse_args(argv)
    configure_logging("warning")

    for sync in ("FULL", "NORMAL"):
        elapsed = bench_commits(args.commit_batches, sync)
        per = elapsed / args.commit_batches * 1000
        print(
            f"commit_batch synchronous={sync:6s}: {args.commit_batches} batches of 100 events "
            f"in {elapsed:.2f}s ({per:.1f} ms/batch, {args.commit_batches * 100 / elapsed:,.0f} events/s)"
        )

    with (
        tempfile.TemporaryDirectory() as tls,
        Emulator(tls_dir=tls, seed="demo", latency_ms=args.latency_ms) as emu,
    ):
        for composite in (True, False):
            elapsed, calls, done, used = bench_drain(emu, args.leads, args.batch, composite)
            print(
                f"drain {args.leads} leads x 3 entries, batch {args.batch}, latency {args.latency_ms} ms, "
                f"composite={composite!s:5s}: "
                f"{done} written in {elapsed:.2f}s, {calls} API calls by the writer ({used} counted by the org "
                f"incl. setup), {done / elapsed:,.0f} entries/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
