"""How one emulator instance is configured, and the mutable state its HTTP layers share."""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sfemulator.rest import RestApi
from sfemulator.store import Org


@dataclass
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    tls_dir: Path = Path("state/tls")
    seed: str | dict[str, Any] = "demo"
    latency_ms: int = 0
    jitter_ms: int = 0
    session_seconds: int = 7200
    query_batch_size: int = 2000
    daily_api_requests: int | None = None  # None: what the seed says (demo: 100,000)
    base_url: str = ""  # https://127.0.0.1:<port>, known once the socket is bound
    clock_start: dt.datetime | None = None  # the org's clock starts here (default: the machine's time)
    # Streaming (read by sfemulator.streaming through the `streaming_` prefix; docs/streaming.md).
    streaming_timeout_ms: int = 110_000  # how long a /meta/connect is held (advice.timeout)
    streaming_client_expiry_s: float = 40.0
    streaming_max_batch: int = 1000
    streaming_retention_hours_cdc: float = 72.0  # CDC and platform events
    streaming_retention_hours_topic: float = 24.0  # PushTopic and generic
    streaming_max_events_per_channel: int = 1_000_000


@dataclass
class Fault:
    """Fail (or delay) the next `count` requests whose method and path match."""

    method: str | None
    path: re.Pattern[str]
    status: int | None
    error_code: str
    message: str
    count: int
    delay_ms: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path.pattern,
            "status": self.status,
            "errorCode": self.error_code,
            "message": self.message,
            "count": self.count,
            "delay_ms": self.delay_ms,
        }


@dataclass
class EmulatorState:
    """What the REST, OAuth and control handlers share for one running emulator."""

    org: Org
    settings: EmulatorSettings
    rest: RestApi
    faults: list[Fault] = field(default_factory=list)
    latency_ms: int = 0
    jitter_ms: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def latency_seconds(self) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        return (self.latency_ms + self.rng.uniform(0, self.jitter_ms)) / 1000.0

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.count > 0 and fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None


STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("sfemulator_state", EmulatorState)
