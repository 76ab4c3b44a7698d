"""Benchmark of the emulator's Streaming API as the daemon's client sees it.

    .venv/bin/python bench/bench_streaming.py [--batches 20] [--latency-samples 50] [--retained 1000000]

1. Delivery throughput: bursts of 200-record sObject Collection inserts of Leads over HTTPS; one StreamClient
   (aiosfstream-ng) subscribed to /data/LeadChangeEvent. Events/s from the first insert to the last event,
   compared with the insert rate (can delivery keep up with writes?) and with Salesforce's ceiling for
   CDC/PE delivery to CometD (5,000,000 a day, the "stay under" figure of the allocations page: ~57.9/s).
2. Latency: one REST create at a time, time from sending it to the change event arriving at the client.
3. Memory: RSS growth with N retained Lead change events (each on its entity channel and /data/ChangeEvents),
   then N/5 more with the ring bounded at N per channel, to show retention by count caps memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from sfconnector.clock import system_clock
from sfconnector.stream import StreamClient
from sfemulator.server import Emulator
from sfemulator.store import Commit, RecordChange
from sfemulator.streaming._hub import StreamingSettings, _OrgEvents

API = "59.0"
LEADS = "/data/LeadChangeEvent"
SALESFORCE_CEILING_PER_S = 5_000_000 / 86_400


class Session:
    def __init__(self, emu: Emulator) -> None:
        self.url = emu.base_url
        self.ca = str(emu.ca_path)
        token = requests.post(
            f"{self.url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sfconnector-demo",
                "client_secret": "demo-secret",
            },
            verify=self.ca,
            timeout=30,
        )
        token.raise_for_status()
        self.token = str(token.json()["access_token"])
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    async def get_token(self, force_refresh: bool) -> tuple[str, str]:
        return self.token, self.url

    def post(self, path: str, body: Any) -> Any:
        response = self.http.post(
            f"{self.url}/services/data/v{API}/{path}", json=body, verify=self.ca, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def insert_burst(self, n: int, tag: str) -> None:
        records = [
            {
                "attributes": {"type": "Lead"},
                "FirstName": "Bench",
                "LastName": f"{tag}-{i}",
                "Company": "Acme",
                "Email": f"{tag}-{i}@example.com",
                "LeadSource": "Partner Referral",
            }
            for i in range(n)
        ]
        result = self.post("composite/sobjects", {"allOrNone": True, "records": records})
        assert all(r["success"] for r in result), result[:2]


async def bench_throughput(session: Session, batches: int) -> tuple[float, float, int]:
    expected = batches * 200
    async with StreamClient(
        session.get_token, api_version=API, ca_file=session.ca, max_pending_count=1000
    ) as client:
        await client.subscribe(LEADS)
        writes: dict[str, float] = {}

        def writer() -> None:
            started = time.perf_counter()
            for b in range(batches):
                session.insert_burst(200, f"t{b}")
            writes["elapsed"] = time.perf_counter() - started

        started = time.perf_counter()
        thread = threading.Thread(target=writer)
        thread.start()
        for _ in range(expected):
            await client.receive()
        elapsed = time.perf_counter() - started
        await asyncio.to_thread(thread.join)
    return expected / elapsed, expected / writes["elapsed"], expected


async def bench_latency(session: Session, samples: int) -> list[float]:
    delays = []
    async with StreamClient(session.get_token, api_version=API, ca_file=session.ca) as client:
        await client.subscribe(LEADS)
        for i in range(samples):
            started = time.perf_counter()
            await asyncio.to_thread(
                session.post, "sobjects/Lead", {"LastName": f"Latency-{i}", "Company": "Acme"}
            )
            await client.receive()
            delays.append((time.perf_counter() - started) * 1000)
    return delays


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2


class _Stats:
    events_by_channel: dict[str, int]

    def __init__(self) -> None:
        self.events_by_channel = {}


class _BareOrg:
    """Just what the event log needs; 1,000,000 writes through the full store would measure the store."""

    def __init__(self) -> None:
        self.stats = _Stats()
        self.listeners: list[Any] = []

    def clock(self) -> Any:

        return system_clock()

    def add_commit_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def records(self, sobject: str, include_deleted: bool) -> list[Any]:
        return []


def bench_memory(retained: int) -> dict[str, float]:
    org = _BareOrg()
    log = _OrgEvents(org, StreamingSettings(max_events_per_channel=retained))
    gc.collect()
    before = rss_mb()

    def commit(n: int) -> Commit:
        lead = f"00Q5g{n:010d}AAA"
        fields = {
            "FirstName": "Bench",
            "LastName": f"Lead{n}",
            "Company": "Acme Corporation",
            "Email": f"lead{n}@example.com",
            "LeadSource": "Partner Referral",
            "Status": "Open - Not Contacted",
            "OwnerId": "0055g0000000001AAA",
            "CreatedDate": "2026-11-23T05:00:00.000+0000",
            "CreatedById": "0055g0000000001AAA",
            "LastModifiedDate": "2026-11-23T05:00:00.000+0000",
            "LastModifiedById": "0055g0000000001AAA",
            "Referral_Code__c": f"ADV-{n % 5000}",
        }
        return Commit(
            changes=(RecordChange("Lead", "CREATE", lead, fields),),
            transaction_key=str(uuid.uuid4()),
            commit_user="0055g0000000001AAA",
            commit_timestamp_ms=1_795_000_000_000 + n,
            commit_number=n,
            api="rest",
            api_version=API,
            client="referral-site",
        )

    started = time.perf_counter()
    for n in range(retained):
        log.on_commit(commit(n))
    fill_s = time.perf_counter() - started
    gc.collect()
    full = rss_mb()
    sample = log.bus.after(LEADS, 0, 1)[0][1]
    for n in range(retained, retained + retained // 5):
        log.on_commit(commit(n))
    gc.collect()
    over = rss_mb()
    return {
        "retained_lead_channel": log.bus.retained_count(LEADS),
        "retained_total": log.bus.retained_count(),
        "rss_growth_mb": full - before,
        "rss_after_overflow_mb": over - before,
        "bytes_per_event": (full - before) * 1024**2 / retained,
        "message_bytes": len(sample.encode()),
        "publish_per_s": retained / fill_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20, help="200-record inserts in the throughput run")
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--retained", type=int, default=1_000_000)
    args = parser.parse_args()

    with Emulator(port=0, seed="demo") as emu:
        session = Session(emu)
        events_s, writes_s, count = asyncio.run(bench_throughput(session, args.batches))
        print(
            f"throughput: {count} CDC events from {args.batches} x 200-record inserts: {events_s:,.0f} events/s"
        )
        print(
            f"  vs insert rate {writes_s:,.0f} records/s: ratio {events_s / writes_s:.2f} (>= ~1: keeps up)"
        )
        print(
            f"  vs Salesforce delivery ceiling {SALESFORCE_CEILING_PER_S:.1f}/s: ratio "
            f"{events_s / SALESFORCE_CEILING_PER_S:,.0f}x"
        )
        delays = asyncio.run(bench_latency(session, args.latency_samples))
        q = statistics.quantiles(delays, n=20, method="inclusive")
        print(
            f"latency REST create -> event at client ({len(delays)} samples): p50 {statistics.median(delays):.1f} ms, "
            f"p95 {q[18]:.1f} ms, max {max(delays):.1f} ms"
        )
        print(
            f"  vs the 110,000 ms long-poll hold it cuts short: ratio {statistics.median(delays) / 110_000:.5f}"
        )

    m = bench_memory(args.retained)
    print(
        f"memory: {args.retained:,} retained Lead change events ({m['retained_total']:,.0f} channel entries, "
        f"bodies shared): RSS +{m['rss_growth_mb']:.0f} MB, {m['bytes_per_event']:.0f} B/event "
        f"(rendered message {m['message_bytes']} B: ratio {m['bytes_per_event'] / m['message_bytes']:.2f})"
    )
    print(f"  publish rate while filling: {m['publish_per_s']:,.0f} events/s")
    print(
        f"  after {args.retained // 5:,} more with the ring bounded at {args.retained:,}/channel: "
        f"{m['retained_lead_channel']:,.0f} retained, RSS +{m['rss_after_overflow_mb']:.0f} MB "
        f"(ratio to full {m['rss_after_overflow_mb'] / max(m['rss_growth_mb'], 1):.2f})"
    )


if __name__ == "__main__":
    main()
