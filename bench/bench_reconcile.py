"""Benchmark: a full reconciliation of N referral leads the daemon never saw.

    .venv/bin/python -m bench.bench_reconcile [--leads 10000] [--latency-ms 0]

The emulator runs as its own process (demo org). N referral leads are created through sObject Collections
(200 per call) with the daemon not running, so none has a Referral__c. Then, timed, each with the API calls
the emulator counted (`GET /_emulator/stats`):

1. baseline: one query reading those N leads (the sweep's own lead fields, 2,000 per page);
2. the sweep: find every lead without a Referral__c, decide each (batched lookups, 200 at a time) and queue
   its writes in a fresh state file (`Reconciler.run`, what `sfconnector reconcile` and the daemon run);
3. the drain: the outbox writer writes what was queued (owner updates, referrals, tasks, emails);
4. the sweep again: finds nothing missing and queues nothing (idempotence), a second cost figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.bench_emulator import start_emulator
from sfconnector.clock import system_clock
from sfconnector.config import load_config
from sfconnector.logging import configure_logging
from sfconnector.reconcile import reconciler_for
from sfconnector.state import StateStore
from sfconnector.wiring import connect
from sfconnector.writer import OutboxWriter

ROOT = Path(__file__).resolve().parents[1]
CODES = ["GRACE-1001", "grace 1001", "ALAN1002", "ada-1003", "KJ 1004", "EWD-1005", "NOBODY-9"]
CHANNELS = ["Card", "Verbal", "Email", "Social", "SMS", "Web"]


def write_config(directory: Path, base_url: str, ca: str, tls_dir: Path) -> Path:
    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text())
    config["salesforce"]["login_url"] = base_url
    config["salesforce"]["ca_bundle"] = ca
    config["salesforce"]["auth"]["private_key_file"] = str(tls_dir / "jwt-key.pem")
    config["state"]["path"] = str(directory / "state.db")
    config["mapping"]["file"] = str(ROOT / "config" / "mapping.yaml")
    config["rules"]["file"] = str(ROOT / "config" / "rules.yaml")
    path = directory / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Stats:
    def __init__(self, base_url: str, ca: str) -> None:
        self._url, self._ca = f"{base_url}/_emulator/stats", ca

    def total(self) -> int:
        body: dict[str, Any] = requests.get(self._url, verify=self._ca, timeout=30).json()
        return int(body["total"])


def timed(label: str, stats: Stats, fn: Any) -> tuple[Any, float, int]:
    calls = stats.total()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    used = stats.total() - calls
    print(f"{label:<44} {elapsed:8.2f} s  {used:6d} API calls", flush=True)
    return result, elapsed, used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="added to every API call (a WAN round trip)"
    )
    args = parser.parse_args()
    configure_logging("warning", json=False)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        emulator, base_url, ca = start_emulator(directory / "tls")
        try:
            return run(directory, base_url, ca, args.leads, args.latency_ms)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)


def run(directory: Path, base_url: str, ca: str, leads: int, latency_ms: int) -> int:
    config = load_config(write_config(directory, base_url, ca, directory / "tls"))
    _, client = connect(config)
    stats = Stats(base_url, ca)
    since = system_clock() - timedelta(minutes=5)
    started = time.perf_counter()
    for start in range(0, leads, 200):
        client.collection_create(
            [
                {
                    "attributes": {"type": "Lead"},
                    "LastName": f"Bench-{i:05d}",
                    "Company": f"Bench Co {i % 97}",
                    "Email": f"bench{i}@reconcile-bench.example",
                    "Referral_Code__c": CODES[i % len(CODES)],
                    "Referral_Channel__c": CHANNELS[i % len(CHANNELS)],
                }
                for i in range(start, min(leads, start + 200))
            ]
        )
    print(f"seeded {leads} referral leads in {time.perf_counter() - started:.1f} s (daemon not running)")
    if latency_ms:
        requests.post(f"{base_url}/_emulator/latency", json={"ms": latency_ms}, verify=ca, timeout=30)
        print(f"latency: {latency_ms} ms added to every API call")

    with StateStore.open(config.state.path) as state:
        reconciler = reconciler_for(config, client, state)
        fields = ", ".join(reconciler.lead_fields())  # the same columns the sweep reads
        rows, baseline, baseline_calls = timed(
            "baseline: query the leads once",
            stats,
            lambda: client.query(f"SELECT {fields} FROM Lead WHERE Referral_Code__c != null"),
        )
        assert len(rows) == leads, f"expected {leads} leads, read {len(rows)}"
        summary, sweep, sweep_calls = timed(
            "sweep: find, decide, queue", stats, lambda: reconciler.run(since)
        )
        missing = summary.count("missing_referral", "queued")
        writer = OutboxWriter(state, client, batch_size=config.writer.batch_size, use_composite=True)

        def drain() -> int:
            written = 0
            while True:
                report = writer.drain_once()
                written += report.done + report.skipped
                status = state.status()
                if status.outbox_pending + status.outbox_retrying == 0 or report.idle:
                    return written

        written, drain_s, drain_calls = timed("drain: write the queued repairs", stats, drain)
        again, sweep2, sweep2_calls = timed(
            "sweep again (nothing to do)", stats, lambda: reconciler_for(config, client, state).run(since)
        )
        referrals = client.query("SELECT COUNT(Id) n FROM Referral__c")[0]["n"]
    print()
    print(f"leads without a referral found and queued: {missing} ({summary.queued} outbox entries)")
    print(f"written by the drain: {written}; Referral__c in the org: {referrals}")
    print(f"second sweep: {again.count('missing_referral')} missing, {again.queued} queued")
    print(
        f"sweep / baseline query: {sweep / baseline:.1f}x time, {sweep_calls / max(1, baseline_calls):.1f}x calls"
    )
    print(
        f"sweep + drain: {sweep + drain_s:.1f} s, {sweep_calls + drain_calls} API calls"
        f" ({1000 * (sweep + drain_s) / max(1, leads):.2f} ms and"
        f" {(sweep_calls + drain_calls) / max(1, leads):.3f} calls per lead)"
    )
    print(f"second sweep / baseline query: {sweep2 / baseline:.1f}x time, {sweep2_calls} calls")
    ok = missing == leads and referrals == leads and again.queued == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
