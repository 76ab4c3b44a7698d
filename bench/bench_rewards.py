"""API calls the daemon spends per won opportunity, in a burst, against the emulator.

    .venv/bin/python bench/bench_rewards.py [--n 500] [--latency-ms 0]

An in-process emulator (demo org) and `sfconnector run` as a subprocess (the example config, all lifecycle
channels). Three bursts of N, each measured by `GET /_emulator/stats` before and after, less the calls this
script made itself (sObject Collections of 200), waiting on the daemon's state file (no API calls) until every
decision is written:

1. routing: N referral leads created (the baseline: routing calls per lead);
2. conversion: the N leads converted (control API, not an API call);
3. won: the N opportunities set to Closed Won with an amount by a rep (rewards, totals, emails, tasks).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from sfemulator.server import Emulator, trusting_session

ROOT = Path(__file__).resolve().parents[1]
CODES = ("GRACE-1001", "ADA-1003", "ALAN-1002")
CHANNELS = [
    "/data/LeadChangeEvent",
    "/event/Referral_Submitted__e",
    "/data/Advocate__ChangeEvent",
    "/data/OpportunityChangeEvent",
    "/data/Reward__ChangeEvent",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(directory: Path, emu: Emulator) -> Path:
    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text())
    config["salesforce"]["login_url"] = emu.base_url
    config["salesforce"]["ca_bundle"] = str(emu.ca_path)
    config["salesforce"]["auth"]["private_key_file"] = str(Path(emu.tls_dir) / "jwt-key.pem")
    config["state"]["path"] = str(directory / "state.db")
    config["mapping"]["file"] = str(ROOT / "config" / "mapping.yaml")
    config["rules"]["file"] = str(ROOT / "config" / "rules.yaml")
    config["health"]["listen"] = f"127.0.0.1:{_free_port()}"
    config["stream"]["channels"] = CHANNELS
    config["logging"]["level"] = "warning"
    path = directory / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


class Org:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.http = trusting_session(emu.ca_path)
        token = self._post("/_emulator/sessions", {"username": "alice.nguyen@sfconnector.test"})
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}
        self.calls = 0  # API calls this script made

    def _post(self, path: str, body: Any) -> Any:
        response = self.http.post(f"{self.emu.base_url}{path}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def api(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        self.calls += 1
        response = self.http.request(
            method,
            f"{self.emu.base_url}/services/data/v59.0/{path}",
            json=body,
            headers={**self.headers, **headers},
            timeout=60,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stats_total(self) -> int:
        return int(self.http.get(f"{self.emu.base_url}/_emulator/stats", timeout=10).json()["total"])

    def collection(self, method: str, records: list[dict[str, Any]], **headers: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for i in range(0, len(records), 200):
            body = {"allOrNone": False, "records": records[i : i + 200]}
            results += self.api(method, "composite/sobjects", body, **headers)
        return results


def _outbox(state: Path, like: str) -> tuple[int, int]:
    """(entries whose key is LIKE `like` and done, entries still open)."""
    if not state.exists():
        return 0, 0
    with sqlite3.connect(state) as db:
        (done,) = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE key LIKE ? AND status = 'done'", [like]
        ).fetchone()
        (open_,) = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'retrying')"
        ).fetchone()
    return int(done), int(open_)


def _measure(
    org: Org, state: Path, like: str, n: int, act: Callable[[], None], what: str
) -> tuple[int, float]:
    before, mine = org.stats_total(), org.calls
    started = time.perf_counter()
    act()
    _wait(lambda: (lambda d, o: d >= n and o == 0)(*_outbox(state, like)), 300, what)
    elapsed = time.perf_counter() - started
    return org.stats_total() - before - (org.calls - mine), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--routing-only", action="store_true", help="measure only the routing burst")
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulator(host="127.0.0.1", port=0, tls_dir=Path(tmp) / "tls", seed="demo")
        emu.start()
        org = Org(emu)
        if args.latency_ms:
            org._post("/_emulator/latency", {"ms": args.latency_ms})
        config = _config(Path(tmp), emu)
        state = Path(tmp) / "state.db"
        log = (Path(tmp) / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sfconnector", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        health = "http://" + yaml.safe_load(config.read_text())["health"]["listen"] + "/healthz"

        def healthy() -> bool:
            try:
                return requests.get(health, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        try:
            _wait(healthy, 60, "the daemon to subscribe")
            leads: list[str] = []

            def create() -> None:
                records = [
                    {
                        "attributes": {"type": "Lead"},
                        "LastName": f"Bench{i}",
                        "Company": f"Bench {i} Ltd",
                        "Email": f"bench{i}@bench{i}.example",
                        "Referral_Code__c": CODES[i % len(CODES)],
                        "Referral_Channel__c": "Card",
                    }
                    for i in range(n)
                ]
                results = org.collection("POST", records, **{"Sforce-Call-Options": "client=webform"})
                leads.extend(str(r["id"]) for r in results)

            routing_calls, routing_s = _measure(org, state, "referral:%", n, create, "routing")
            if args.routing_only:
                print(
                    f"routing:    {routing_calls:5d} API calls, {routing_calls / n:.3f} per lead, {routing_s:.1f} s"
                )
                return 0
            opportunities: list[str] = []

            def convert() -> None:
                for lead in leads:
                    opportunities.append(
                        str(org._post(f"/_emulator/leads/{lead}/convert", {})["opportunityId"])
                    )

            conversion_calls, conversion_s = _measure(
                org, state, "referral-status:%:Converted:%", n, convert, "conversions"
            )

            def win() -> None:
                org.collection(
                    "PATCH",
                    [
                        {
                            "attributes": {"type": "Opportunity"},
                            "id": o,
                            "StageName": "Closed Won",
                            "Amount": 1000 + i,
                        }
                        for i, o in enumerate(opportunities)
                    ],
                )

            won_calls, won_s = _measure(org, state, "reward:%", n, win, "rewards")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            log.close()
            emu.stop()
    per_lead = routing_calls / n
    per_won = won_calls / n
    print(f"burst of {n}, emulator latency {args.latency_ms} ms")
    print(f"routing:    {routing_calls:5d} API calls, {per_lead:.3f} per lead, {routing_s:.1f} s")
    print(
        f"conversion: {conversion_calls:5d} API calls, {conversion_calls / n:.3f} per conversion, {conversion_s:.1f} s"
    )
    print(f"won:        {won_calls:5d} API calls, {per_won:.3f} per won opportunity, {won_s:.1f} s")
    print(f"ratio won/routing per record: {per_won / per_lead:.2f}" if per_lead else "ratio: n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
