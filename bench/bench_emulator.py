"""Throughput and memory of the Salesforce emulator, served from its own process over HTTPS.

    .venv/bin/python bench/bench_emulator.py [--seconds 5] [--concurrency 8] [--records 100000]

Measured, each for `--seconds` with `--concurrency` keep-alive connections (aiohttp client):
1. baseline: `GET /services/data/` (versions list: no auth, no store) — the server's ceiling;
2. single-record creates: `POST /sobjects/Lead/` (assignment rule running, as by default);
3. 200-record sObject Collections creates: `POST /composite/sobjects`;
4. resident memory of the emulator process with `--records` Leads loaded (through collections).
Each figure is also given as a ratio of the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp


def start_emulator(tls_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sfconnector.cli import main; main()",
            "emulator",
            "--port",
            "0",
            "--seed",
            "demo",
            "--tls-dir",
            str(tls_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(https://\S+) \(CA: (.+)\)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, match.group(1), match.group(2)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_for(
    seconds: float, concurrency: int, one: Callable[[], Awaitable[int]], pid: int | None = None
) -> tuple[float, float]:
    """(requests per second, server capacity in requests per CPU-second) over `seconds`."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency
    items = [0] * concurrency

    async def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            items[i] += await one()
            counts[i] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(pid) - cpu_before) if pid else 0.0
    return sum(counts) / elapsed, (sum(counts) / cpu if cpu else float("nan"))


async def bench(
    base: str, ca: str, seconds: float, concurrency: int, records: int, pid: int
) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=ca)
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(f"{base}/_emulator/sessions", json={}) as r:
            token = (await r.json())["access_token"]
        await (await http.post(f"{base}/_emulator/limits", json={"daily_api_requests": 10**9})).read()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        api = f"{base}/services/data/v59.0"

        async def versions() -> int:
            async with http.get(f"{base}/services/data/") as r:
                await r.read()
                assert r.status == 200
            return 1

        lead = json.dumps({"LastName": "Bench", "Company": "Bench Co", "State": "CA"})

        async def create() -> int:
            async with http.post(f"{api}/sobjects/Lead/", data=lead, headers=headers) as r:
                await r.read()
                assert r.status == 201, r.status
            return 1

        batch = json.dumps(
            {
                "allOrNone": False,
                "records": [
                    {"attributes": {"type": "Lead"}, "LastName": f"B{i}", "Company": "Batch Co"}
                    for i in range(200)
                ],
            }
        )

        async def collection() -> int:
            async with http.post(f"{api}/composite/sobjects", data=batch, headers=headers) as r:
                body = await r.read()
                assert r.status == 200, body[:200]
            return 200

        out: dict[str, Any] = {}
        await run_for(0.5, concurrency, versions)  # warm up connections and code paths
        out["baseline_rps"], out["baseline_cap"] = await run_for(seconds, concurrency, versions, pid)
        out["create_rps"], out["create_cap"] = await run_for(seconds, concurrency, create, pid)
        out["collection_rps"], out["collection_cap"] = await run_for(seconds, concurrency, collection, pid)
        out["collection_records_ps"] = out["collection_rps"] * 200
        async with http.get(f"{api}/query", params={"q": "SELECT COUNT() FROM Lead"}, headers=headers) as r:
            loaded = (await r.json())["totalSize"]
        while loaded < records:
            await collection()
            loaded += 200
        out["records_loaded"] = loaded
        out["rss_mb"] = rss_mb(pid)
        started = time.perf_counter()
        async with http.get(
            f"{api}/query", params={"q": "SELECT Id FROM Lead WHERE LastName = 'nobody'"}, headers=headers
        ) as r:
            await r.read()
        out["full_scan_query_ms"] = (time.perf_counter() - started) * 1000
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, base, ca = start_emulator(Path(tmp) / "tls")
        try:
            idle = rss_mb(proc.pid)
            result = asyncio.run(bench(base, ca, args.seconds, args.concurrency, args.records, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    baseline = result["baseline_rps"]
    print(
        f"emulator benchmark ({os.cpu_count()} cpus, concurrency {args.concurrency}, {args.seconds:.0f}s each)"
    )
    print("  served = with client and server sharing this machine; capacity = requests per CPU-second")
    print("  of the emulator process (what it serves given one free core)")
    print(
        f"  baseline GET /services/data/     {baseline:8.0f} req/s served {result['baseline_cap']:8.0f} capacity"
    )
    print(
        f"  single-record create (Lead)      {result['create_rps']:8.0f} req/s served {result['create_cap']:8.0f}"
        f" capacity   ratio {result['create_rps'] / baseline:.2f} of baseline"
    )
    print(
        f"  200-record collection create     {result['collection_rps']:8.1f} req/s served"
        f" {result['collection_cap']:8.1f} capacity   ({result['collection_records_ps']:.0f} records/s,"
        f" ratio {result['collection_rps'] / baseline:.3f} of baseline)"
    )
    print(f"  RSS idle / with {result['records_loaded']} leads   {idle:6.0f} MB / {result['rss_mb']:.0f} MB")
    print(f"  full-scan SOQL over all leads      {result['full_scan_query_ms']:8.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
