"""The daemon's streaming client (aiosfstream-ng underneath) against the emulator's CometD server, faults included."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiosfstream_ng
import pytest
import requests
from test_streaming_support import USER_ID, Change, FakeOrg, Served, lead_create, lead_id, serve

from sfconnector.stream import ReplayIdExpired, StreamClient

LEADS = "/data/LeadChangeEvent"


class Tokens:
    """A token provider: a new token on every forced refresh, registered with the fake org."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.issued = 0
        self.forced = 0
        self._issue()

    def _issue(self) -> None:
        self.issued += 1
        self.current = f"token-{self.issued}"
        self.served.org.tokens[self.current] = USER_ID

    async def __call__(self, force_refresh: bool) -> tuple[str, str]:
        if force_refresh:
            self.forced += 1
            self._issue()
        return self.current, self.served.url


def run(coro: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro(), timeout)

    return asyncio.run(bounded())


def commit_soon(served: Served, *changes: Change) -> None:
    """Commit from another thread, as the REST server's worker would."""
    threading.Thread(target=served.org.commit, args=changes).start()


async def take(client: StreamClient, count: int, *, mark: bool = True) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        message = await client.receive()
        out.append(message)
        if mark:
            await client.mark_processed(message)
    return out


def control(served: Served, path: str, body: dict[str, Any] | None = None) -> Any:
    return requests.post(f"{served.url}/_emulator/streaming/{path}", json=body or {}, timeout=5).json()


@pytest.fixture
def served() -> Any:
    with serve(FakeOrg(), timeout_ms=3000) as s:
        yield s


def test_client_receives_cdc_and_platform_events_with_their_shapes(served: Served) -> None:
    tokens = Tokens(served)

    async def scenario() -> list[dict[str, Any]]:
        async with StreamClient(tokens, api_version="61.0") as client:
            await client.subscribe(LEADS)
            await client.subscribe("/event/Referral_Submitted__e")
            pe = Change(
                "Referral_Submitted__e",
                "PUBLISH",
                "e01000000000001AAA",
                {"Referral_Code__c": "R-1"},
                event_uuid="59ebff93-6ac2-42ee-b1a6-3ded4d03e4e4",
            )
            commit_soon(served, lead_create(lead_id(1)), pe)
            return await take(client, 2)

    cdc, pe = sorted(run(scenario), key=lambda m: m["channel"])
    assert cdc["channel"] == LEADS
    payload = cdc["data"]["payload"]
    assert payload["Name"] == {"FirstName": "Jane", "LastName": "Doe"}
    assert payload["ChangeEventHeader"]["changeType"] == "CREATE"
    assert payload["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/rest/59.0"
    assert pe["channel"] == "/event/Referral_Submitted__e"
    assert pe["data"]["event"]["EventUuid"] == "59ebff93-6ac2-42ee-b1a6-3ded4d03e4e4"
    assert (
        pe["data"]["payload"]["Referral_Code__c"] == "R-1" and pe["data"]["payload"]["CreatedById"] == USER_ID
    )


def test_replay_from_a_stored_id_delivers_exactly_the_later_events(served: Served) -> None:
    for n in range(4):
        served.org.commit(lead_create(lead_id(10 + n)))
    tokens = Tokens(served)

    async def read_all() -> list[int]:
        async with StreamClient(tokens, default_replay=-2) as client:
            await client.subscribe(LEADS)
            return [m["data"]["event"]["replayId"] for m in await take(client, 4)]

    ids = run(read_all)
    assert ids == sorted(ids) and len(set(ids)) == 4

    async def resume() -> list[dict[str, Any]]:
        async with StreamClient(tokens, replay_ids={LEADS: ids[1]}) as client:
            await client.subscribe(LEADS)
            got = await take(client, 2)
            commit_soon(served, lead_create(lead_id(99)))
            got += await take(client, 1)
            return got

    later = run(resume)
    assert [m["data"]["event"]["replayId"] for m in later[:2]] == ids[2:]
    assert later[2]["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [lead_id(99)]


def test_expired_replay_id_raises_with_the_exact_error_and_a_fallback_recovers(served: Served) -> None:
    served.org.commit(lead_create(lead_id(20)))
    served.org.commit(lead_create(lead_id(21)))
    tokens = Tokens(served)

    async def first_id() -> int:
        async with StreamClient(tokens, default_replay=-2) as client:
            await client.subscribe(LEADS)
            return int((await take(client, 1))[0]["data"]["event"]["replayId"])

    stale = run(first_id)
    control(served, "expire", {"before_replay_id": stale + 1, "channel": LEADS})

    async def strict() -> None:
        async with StreamClient(tokens, replay_ids={LEADS: stale}) as client:
            await client.subscribe(LEADS)

    with pytest.raises(ReplayIdExpired) as refused:
        run(strict)
    assert refused.value.error == (
        f"400::The replayId {{{stale}}} you provided was invalid.  Please provide a valid ID, -2 to replay all "
        "events, or -1 to replay only new events."
    )

    async def with_fallback() -> list[dict[str, Any]]:
        async with StreamClient(
            tokens, replay_ids={LEADS: stale}, replay_fallback=aiosfstream_ng.ReplayOption.ALL_EVENTS
        ) as client:
            await client.subscribe(LEADS)
            return await take(client, 1)

    [kept] = run(with_fallback)
    assert kept["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [lead_id(21)]


def test_401_mid_stream_refreshes_the_token_and_keeps_delivering(served: Served) -> None:
    tokens = Tokens(served)

    async def scenario() -> list[dict[str, Any]]:
        async with StreamClient(tokens) as client:
            await client.subscribe(LEADS)
            served.org.tokens.clear()  # every session expires, as POST /_emulator/sessions/expire does
            commit_soon(served, lead_create(lead_id(30)))
            got = await take(client, 1)  # the held connect still answers; the next one gets 401
            commit_soon(served, lead_create(lead_id(31)))
            got += await take(client, 1)
            return got

    got = run(scenario)
    assert [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in got] == [
        lead_id(30),
        lead_id(31),
    ]
    assert tokens.forced >= 1


def test_unknown_client_rehandshakes_and_resumes_from_the_last_processed_event(served: Served) -> None:
    tokens = Tokens(served)

    async def scenario() -> list[str]:
        async with StreamClient(tokens) as client:
            await client.subscribe(LEADS)
            commit_soon(served, lead_create(lead_id(40)))
            got = await take(client, 1)
            control(served, "forget-clients")
            served.org.commit(lead_create(lead_id(41)))  # published while the server forgot the client
            got += await take(client, 1)
            return [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in got]

    assert run(scenario) == [lead_id(40), lead_id(41)]
    assert served.hub.server.client_count == 0  # the client disconnected cleanly on close


def test_dropped_held_connection_reconnects_without_losing_events(served: Served) -> None:
    tokens = Tokens(served)

    async def scenario() -> list[str]:
        async with StreamClient(tokens, connection_timeout=5) as client:
            await client.subscribe(LEADS)
            commit_soon(served, lead_create(lead_id(50)))
            got = await take(client, 1)
            await _until(lambda: _held(served) == 1)
            assert control(served, "disconnect") == {"dropped": 1}
            served.org.commit(lead_create(lead_id(51)))
            got += await take(client, 1)
            return [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in got]

    assert run(scenario) == [lead_id(50), lead_id(51)]


def test_unpatched_library_wait_connection_timeout_breaks_on_this_python() -> None:
    """Pins why StreamClient overrides it: aiocometd-ng 0.5.6 passes loop= to asyncio.wait_for."""

    class Transport:
        async def wait_for_state(self, state: Any) -> None:
            return None

    async def scenario() -> None:
        client = StreamClient(Tokens.__new__(Tokens))
        client._transport = Transport()  # type: ignore[assignment]
        await aiosfstream_ng.Client._wait_connection_timeout(client, 0.01)

    with pytest.raises(TypeError, match="loop"):
        run(scenario)


@pytest.mark.slow
def test_server_restart_on_the_same_org_and_port_loses_no_event() -> None:
    org = FakeOrg()
    with serve(org, timeout_ms=3000) as first:
        port = first.port
        tokens = Tokens(first)
    holder: dict[str, Any] = {}

    async def scenario() -> list[str]:
        with serve(org, port=port, timeout_ms=3000) as s:
            client = StreamClient(tokens, connection_timeout=8)
            await client.open()
            await client.subscribe(LEADS)
            commit_soon(s, lead_create(lead_id(60)))
            got = await take(client, 1)
        org.commit(lead_create(lead_id(61)))  # while the server is down
        with serve(org, port=port, timeout_ms=3000) as restarted:
            holder["restarted"] = restarted
            got += await take(client, 1)
            await client.close()
        return [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in got]

    assert run(scenario, timeout=40) == [lead_id(60), lead_id(61)]


def test_failed_resubscription_after_rehandshake_is_raised_not_swallowed(served: Served) -> None:
    tokens = Tokens(served)

    async def scenario() -> None:
        async with StreamClient(tokens) as client:
            await client.subscribe(LEADS)
            commit_soon(served, lead_create(lead_id(70)))
            await take(client, 1)
            control(
                served, "expire", {"before_replay_id": 10**12, "channel": LEADS}
            )  # downtime beyond retention
            control(served, "forget-clients")
            await client.receive()

    with pytest.raises(ReplayIdExpired) as lost:
        run(scenario)
    assert lost.value.channel == LEADS and "you provided was invalid" in lost.value.error


def _held(served: Served) -> int:
    return sum(1 for c in served.hub.server._clients.values() if c.held is not None and not c.held.done())


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)
