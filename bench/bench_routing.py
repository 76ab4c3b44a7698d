"""Routing throughput and latency: the daemon as a process against the emulator as a process.

    .venv/bin/python bench/bench_routing.py [--burst 1000] [--samples 20]

Measured:
1. idle latency: one referral lead created, time until its owner has changed (p50, p95 over --samples);
2. burst: --burst referral leads created through sObject Collections as fast as the emulator takes them,
   time until the last one is routed (its Referral__c exists) and the API calls the daemon used for them
   (the emulator's count, minus this benchmark's own calls) per lead.
The baseline, measured in the same run, is the time the emulator takes to accept the burst's inserts:
routing time / insert time says how far the daemon trails the org.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from sfconnector.demo import ROOT, demo_config


def _session(ca: str) -> requests.Session:
    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override the emulator CA
    return session


class Bench:
    def __init__(self, base: str, ca: str) -> None:
        self.base, self.http, self.own_calls = base, _session(ca), 0
        token = self.http.post(
            f"{base}/_emulator/sessions", json={"username": "integration@sfconnector.test"}, timeout=10
        ).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "Sforce-Call-Options": "client=webform"}

    def api(self, method: str, path: str, **kw: Any) -> Any:
        self.own_calls += 1
        r = self.http.request(
            method, f"{self.base}/services/data/v59.0/{path}", headers=self.headers, timeout=60, **kw
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def count(self, soql: str) -> int:
        return int(self.api("GET", "query/", params={"q": soql})["totalSize"])

    def stats_total(self) -> int:
        return int(self.http.get(f"{self.base}/_emulator/stats", timeout=10).json()["total"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    emu = subprocess.Popen(
        [sys.executable, "-m", "sfconnector", "emulator", "--port", "0", "--tls-dir", str(work / "tls")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emu.stdout is not None
    line = emu.stdout.readline()
    base = re.search(r"https://[0-9.:]+", line).group(0)  # type: ignore[union-attr]
    ca = str(work / "tls" / "ca.pem")
    config = demo_config(ROOT / "connector.yaml.example", work, base, work / "tls")
    health = "http://" + re.search(r"listen: (\S+)", config.read_text()).group(1) + "/healthz"  # type: ignore[union-attr]
    with (work / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sfconnector", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(health, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not become healthy")
            time.sleep(0.05)
        b = Bench(base, ca)
        owner = b.api(
            "GET",
            "query/",
            params={"q": "SELECT OwnerId FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'"},
        )["records"][0]["OwnerId"]

        latencies = []
        for i in range(args.samples):
            created = time.perf_counter()
            lead_id = b.api(
                "POST",
                "sobjects/Lead/",
                json={
                    "LastName": f"Idle-{i}",
                    "Company": "Idle Co",
                    "Email": f"idle{i}@bench.example",
                    "Referral_Code__c": "grace-1001",
                    "LeadSource": "Web",
                },
            )["id"]
            while b.api("GET", f"sobjects/Lead/{lead_id}", params={"fields": "OwnerId"})["OwnerId"] != owner:
                time.sleep(0.002)
            latencies.append(time.perf_counter() - created)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"idle latency, lead created -> owner changed: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
            f"({args.samples} samples; includes the daemon's batching window of 100 ms)"
        )

        before_routed = b.count("SELECT COUNT() FROM Referral__c")
        calls_before, own_before = b.stats_total(), b.own_calls
        start = time.perf_counter()
        for chunk in range(0, args.burst, 200):
            records = [
                {
                    "attributes": {"type": "Lead"},
                    "LastName": f"Burst-{i}",
                    "Company": "Burst Co",
                    "Email": f"burst{i}@bench.example",
                    "Referral_Code__c": "ADA 1003",
                }
                for i in range(chunk, min(args.burst, chunk + 200))
            ]
            b.api("POST", "composite/sobjects", json={"allOrNone": False, "records": records})
        inserted = time.perf_counter() - start
        target = before_routed + args.burst
        while b.count("SELECT COUNT() FROM Referral__c") < target:
            time.sleep(0.05)
        routed = time.perf_counter() - start
        daemon_calls = b.stats_total() - calls_before - (b.own_calls - own_before)
        print(
            f"burst of {args.burst}: inserts accepted in {inserted:.2f} s (baseline), last lead routed after "
            f"{routed:.2f} s: ratio {routed / inserted:.2f}; {args.burst / routed:.0f} leads/s routed"
        )
        print(
            f"API calls used by the daemon for the burst: {daemon_calls} "
            f"({daemon_calls / args.burst:.3f} per lead; Salesforce's default daily allocation is 100,000)"
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        emu.send_signal(signal.SIGTERM)
        emu.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
