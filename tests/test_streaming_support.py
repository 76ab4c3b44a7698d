"""Shared helpers for the streaming tests: a minimal org and a loopback server running in a thread.

The fake org offers exactly the interface the streaming package relies on (commit listeners, authenticate,
clock, stats, schema lookups), so the Bayeux layer is tested alone; the end-to-end tests use the real emulator.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from sfemulator.streaming import StreamingHub, install

USER_ID = "005000000000001AAA"


@dataclass(frozen=True)
class Change:
    entity: str
    change_type: str
    record_id: str
    fields: dict[str, Any]
    event_uuid: str | None = None


@dataclass(frozen=True)
class Commit:
    changes: tuple[Change, ...]
    transaction_key: str
    commit_user: str
    commit_timestamp_ms: int
    commit_number: int
    api: str | None
    api_version: str | None
    client: str | None


@dataclass
class FakeOrg:
    tokens: dict[str, str] = field(default_factory=lambda: {"good-token": USER_ID})
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    listeners: list[Callable[[Commit], None]] = field(default_factory=list)
    stats: Any = field(default_factory=lambda: SimpleNamespace(events_by_channel={}))
    pushtopics: list[dict[str, Any]] = field(default_factory=list)
    _numbers: Any = field(default_factory=lambda: itertools.count(1000))

    def __hash__(self) -> int:
        return id(self)

    @property
    def schema(self) -> Any:
        objects = {
            "lead": SimpleNamespace(name="Lead"),
            "advocate__c": SimpleNamespace(name="Advocate__c"),
            "referral_submitted__e": SimpleNamespace(name="Referral_Submitted__e"),
        }
        return SimpleNamespace(get=lambda name: objects.get(name.lower()))

    def clock(self) -> datetime:
        return self.now

    def add_commit_listener(self, listener: Callable[[Commit], None]) -> None:
        self.listeners.append(listener)

    def authenticate(self, token: str) -> str | None:
        return self.tokens.get(token)

    def records(self, sobject: str, include_deleted: bool) -> list[dict[str, Any]]:
        return list(self.pushtopics) if sobject == "PushTopic" else []

    def get(self, record_id: str) -> None:
        return None

    def commit(self, *changes: Change, api: str | None = "rest", client: str | None = None) -> Commit:
        commit = Commit(
            changes=changes,
            transaction_key=str(uuid.uuid4()),
            commit_user=USER_ID,
            commit_timestamp_ms=int(self.now.timestamp() * 1000),
            commit_number=next(self._numbers),
            api=api,
            api_version="59.0" if api else None,
            client=client,
        )
        for listener in self.listeners:
            listener(commit)
        return commit


def lead_create(record_id: str, last_name: str = "Doe", **extra: Any) -> Change:
    fields = {"FirstName": "Jane", "LastName": last_name, "Company": "Acme", "OwnerId": USER_ID, **extra}
    return Change("Lead", "CREATE", record_id, fields)


def lead_id(n: int) -> str:
    return f"00Q{n:012d}AAA"


@dataclass
class Served:
    url: str
    hub: StreamingHub
    org: FakeOrg
    port: int
    loop: asyncio.AbstractEventLoop

    @property
    def cometd(self) -> str:
        return f"{self.url}/cometd/59.0"


@contextmanager
def serve(org: FakeOrg, port: int = 0, **settings: Any) -> Iterator[Served]:
    """The streaming routes on a loopback HTTP server in a background thread."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application()
        hub = install(app, org, {f"streaming_{k}": v for k, v in settings.items()})
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        loop.run_until_complete(site.start())
        state.update(loop=loop, hub=hub, port=site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        stop = loop.create_future()
        state["stop"] = stop
        ready.set()
        loop.run_until_complete(stop)
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "streaming server did not start"
    loop = state["loop"]
    try:
        yield Served(f"http://127.0.0.1:{state['port']}", state["hub"], org, state["port"], loop)
    finally:
        loop.call_soon_threadsafe(state["stop"].set_result, None)
        thread.join(10)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)
