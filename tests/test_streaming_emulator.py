"""End to end: REST writes to the real emulator over HTTPS, events through the daemon's streaming client.

Uses the session's `emulator` fixture (tests/conftest.py), reset before each test; the restart test runs its
own emulator since it stops the server.

Shapes are those of salesforce-notes.md 5.5; faults go through the control API as a test of the daemon would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import requests

from sfconnector.salesforce import AuthSettings, SalesforceSettings, TokenProvider
from sfconnector.stream import ReplayIdExpired, StreamClient
from sfemulator.server import Emulator, trusting_session

LEADS = "/data/LeadChangeEvent"
ALL = "/data/ChangeEvents"
REFERRAL_EVENT = "/event/Referral_Submitted__e"
API = "59.0"


class Org:
    """The emulator seen from a test: REST as an API user, the control API, a token provider."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.url = emulator.base_url
        self.ca = str(emulator.ca_path)
        settings = SalesforceSettings(
            login_url=self.url,
            auth=AuthSettings(
                method="client_credentials", client_id="sfconnector-demo", client_secret="demo-secret"
            ),
            ca_bundle=self.ca,
            api_version=API,
        )
        # The daemon's own token provider; the session must not let REQUESTS_CA_BUNDLE override the CA.
        self.tokens = TokenProvider(settings, session=trusting_session(self.ca))
        self.refreshes = 0

    def token(self, force_refresh: bool = False) -> str:
        return self.tokens.token(force_refresh).access_token

    async def get_token(self, force_refresh: bool) -> tuple[str, str]:
        if force_refresh:
            self.refreshes += 1
        return await self.tokens.get_token(force_refresh)

    def control(self, path: str, body: Any = None) -> Any:
        response = requests.post(f"{self.url}/_emulator/{path}", json=body or {}, verify=self.ca, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def rest(self, method: str, path: str, body: Any = None, client: str | None = "referral-site") -> Any:
        headers = {"Authorization": f"Bearer {self.token()}"}
        if client:
            headers["Sforce-Call-Options"] = f"client={client}"
        response = requests.request(
            method,
            f"{self.url}/services/data/v{API}/{path}",
            json=body,
            headers=headers,
            verify=self.ca,
            timeout=10,
        )
        if response.status_code == 401:  # sessions were expired on purpose: log in again
            headers["Authorization"] = f"Bearer {self.token(force_refresh=True)}"
            response = requests.request(
                method,
                f"{self.url}/services/data/v{API}/{path}",
                json=body,
                headers=headers,
                verify=self.ca,
                timeout=10,
            )
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def create_lead(self, last_name: str, **fields: Any) -> str:
        body = {"FirstName": "Ada", "LastName": last_name, "Company": "Acme", **fields}
        return str(self.rest("POST", "sobjects/Lead", body)["id"])

    def client(self, **kw: Any) -> StreamClient:
        return StreamClient(self.get_token, api_version=API, ca_file=self.ca, **kw)


@pytest.fixture
def org(emulator: Emulator) -> Iterator[Org]:
    requests.post(
        f"{emulator.base_url}/_emulator/reset", verify=str(emulator.ca_path), timeout=10
    ).raise_for_status()
    yield Org(emulator)


def run(coro: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro(), timeout)

    return asyncio.run(bounded())


def soon(fn: Callable[..., Any], *args: Any) -> None:
    threading.Thread(target=fn, args=args).start()


async def take(client: StreamClient, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        message = await client.receive()
        await client.mark_processed(message)
        out.append(message)
    return out


def header(message: dict[str, Any]) -> dict[str, Any]:
    return dict(message["data"]["payload"]["ChangeEventHeader"])


def test_rest_writes_arrive_as_change_events_with_the_documented_shapes(org: Org) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with org.client() as client:
            await client.subscribe(LEADS)
            await client.subscribe(ALL)
            lead_id = await asyncio.to_thread(org.create_lead, "Lovelace", Email="ada@example.com")
            await asyncio.to_thread(
                org.rest, "PATCH", f"sobjects/Lead/{lead_id}", {"LastName": "King", "Phone": None}, None
            )
            await asyncio.to_thread(org.rest, "DELETE", f"sobjects/Lead/{lead_id}")
            return await take(client, 6)

    messages = run(scenario)
    on_leads = [m for m in messages if m["channel"] == LEADS]
    assert len(on_leads) == 3 and len([m for m in messages if m["channel"] == ALL]) == 3
    create, update, delete = on_leads
    for message in on_leads:
        assert set(message) == {"data", "channel"}
        assert set(message["data"]) == {"schema", "payload", "event"}
        assert isinstance(message["data"]["event"]["replayId"], int)
    assert create["data"]["schema"] == update["data"]["schema"]
    created = create["data"]["payload"]
    assert created["Name"] == {"FirstName": "Ada", "LastName": "Lovelace"}
    assert "LastName" not in created and "Id" not in created
    assert created["Email"] == "ada@example.com" and created["Company"] == "Acme"
    h = header(create)
    assert h["entityName"] == "Lead" and h["changeType"] == "CREATE" and "changedFields" not in h
    assert h["changeOrigin"] == f"com/salesforce/api/rest/{API};client=referral-site"
    assert (
        h["sequenceNumber"] == 1
        and isinstance(h["commitTimestamp"], int)
        and h["commitUser"].startswith("005")
    )
    assert len(h["recordIds"]) == 1 and h["recordIds"][0].startswith("00Q")
    updated = update["data"]["payload"]
    assert updated["Name"] == {"LastName": "King"}
    assert "LastModifiedDate" in updated
    assert set(header(update)["changedFields"]) >= {"Name.LastName", "LastModifiedDate"}
    assert header(update)["changeOrigin"] == f"com/salesforce/api/rest/{API}"  # no client named
    assert set(delete["data"]["payload"]) == {"ChangeEventHeader"}
    assert header(delete)["changeType"] == "DELETE"
    lead_ids = {header(m)["recordIds"][0] for m in on_leads}
    assert len(lead_ids) == 1


def test_platform_event_publish_arrives_with_schema_payload_and_event_uuid(org: Org) -> None:
    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        async with org.client() as client:
            await client.subscribe(REFERRAL_EVENT)
            reply = await asyncio.to_thread(
                org.rest,
                "POST",
                "sobjects/Referral_Submitted__e",
                {
                    "Referral_Code__c": "ADV-42",
                    "First_Name__c": "Grace",
                    "Last_Name__c": "Hopper",
                    "Email__c": "grace@example.com",
                    "Company__c": "Navy",
                    "Channel__c": "web",
                },
            )
            return reply, await take(client, 1)

    reply, [event] = run(scenario)
    assert event["channel"] == REFERRAL_EVENT
    assert set(event["data"]) == {"schema", "payload", "event"}
    payload = event["data"]["payload"]
    assert payload["Referral_Code__c"] == "ADV-42" and payload["Last_Name__c"] == "Hopper"
    assert payload["CreatedById"].startswith("005") and payload["CreatedDate"].endswith("Z")
    assert event["data"]["event"]["EventUuid"] == reply["errors"][0]["message"]
    assert isinstance(event["data"]["event"]["replayId"], int)


def test_pushtopic_delivers_selected_fields_of_matching_writes(org: Org) -> None:
    org.rest(
        "POST",
        "sobjects/PushTopic",
        {
            "Name": "ReferredLeads",
            "Query": "SELECT Id, LastName, LeadSource FROM Lead WHERE LeadSource = 'Partner Referral'",
            "ApiVersion": 59.0,
            "NotifyForFields": "Referenced",
            "NotifyForOperationDelete": False,
        },
    )

    async def scenario() -> list[dict[str, Any]]:
        async with org.client() as client:
            await client.subscribe("/topic/ReferredLeads")
            referred = await asyncio.to_thread(org.create_lead, "Turing", LeadSource="Partner Referral")
            await asyncio.to_thread(org.create_lead, "Other", LeadSource="Web")  # WHERE does not match
            await asyncio.to_thread(
                org.rest, "PATCH", f"sobjects/Lead/{referred}", {"Title": "CTO"}
            )  # not referenced
            await asyncio.to_thread(org.rest, "PATCH", f"sobjects/Lead/{referred}", {"LastName": "Turing II"})
            await asyncio.to_thread(org.rest, "DELETE", f"sobjects/Lead/{referred}")  # deletes not notified
            marker = await asyncio.to_thread(org.create_lead, "Marker", LeadSource="Partner Referral")
            messages = await take(client, 3)
            return [*messages, {"marker": marker, "referred": referred}]

    created, updated, marker, ids = run(scenario)
    assert created["channel"] == "/topic/ReferredLeads"
    assert set(created["data"]) == {"event", "sobject"}
    assert created["data"]["event"]["type"] == "created" and created["data"]["event"]["createdDate"].endswith(
        "Z"
    )
    assert isinstance(created["data"]["event"]["replayId"], int)
    assert created["data"]["sobject"] == {
        "Id": ids["referred"],
        "LastName": "Turing",
        "LeadSource": "Partner Referral",
    }
    assert updated["data"]["event"]["type"] == "updated"
    assert updated["data"]["sobject"]["LastName"] == "Turing II"
    assert marker["data"]["sobject"]["Id"] == ids["marker"]


def test_replay_from_stored_id_and_all_retained(org: Org) -> None:
    for n in range(4):
        org.create_lead(f"Replay{n}")

    async def read(**kw: Any) -> list[dict[str, Any]]:
        async with org.client(**kw) as client:
            await client.subscribe(LEADS)
            return await take(client, kw.pop("expect", 4))

    everything = run(lambda: read(default_replay=-2))
    ids = [m["data"]["event"]["replayId"] for m in everything]
    assert [header(m)["recordIds"][0] for m in everything] == [header(m)["recordIds"][0] for m in everything]
    assert ids == sorted(ids)

    async def resume() -> list[int]:
        async with org.client(replay_ids={LEADS: ids[1]}) as client:
            await client.subscribe(LEADS)
            got = await take(client, 2)
            soon(org.create_lead, "After")
            got += await take(client, 1)
            return [m["data"]["event"]["replayId"] for m in got]

    later = run(resume)
    assert later[:2] == ids[2:] and later[2] > ids[-1]


def test_expired_replay_id_gets_the_exact_error(org: Org) -> None:
    org.create_lead("Old")

    async def first() -> int:
        async with org.client(default_replay=-2) as client:
            await client.subscribe(LEADS)
            return int((await take(client, 1))[0]["data"]["event"]["replayId"])

    stale = run(first)
    beyond_retention = 72 * 3600 + 60

    async def strict() -> None:
        async with org.client(replay_ids={LEADS: stale}) as client:
            await client.subscribe(LEADS)

    org.control("clock", {"advance_seconds": beyond_retention})
    try:
        with pytest.raises(ReplayIdExpired) as refused:
            run(strict)
    finally:  # the emulator is shared by the whole session: give its clock back
        org.control("clock", {"advance_seconds": -beyond_retention})
    assert refused.value.error == (
        f"400::The replayId {{{stale}}} you provided was invalid.  Please provide a valid ID, -2 to replay all "
        "events, or -1 to replay only new events."
    )


def test_401_mid_stream_is_survived_with_a_token_refresh(org: Org) -> None:
    async def scenario() -> list[str]:
        async with org.client() as client:
            await client.subscribe(LEADS)
            await asyncio.to_thread(org.control, "sessions/expire")
            soon(org.create_lead, "DuringExpiry")  # answers the held connect; the next connect meets the 401
            got = await take(client, 1)
            soon(org.create_lead, "AfterRefresh")
            got += await take(client, 1)
            return [m["data"]["payload"]["Name"]["LastName"] for m in got]

    assert run(scenario) == ["DuringExpiry", "AfterRefresh"]
    assert org.refreshes >= 1


def test_unknown_client_resubscribes_from_the_last_processed_event(org: Org) -> None:
    async def scenario() -> list[str]:
        async with org.client() as client:
            await client.subscribe(LEADS)
            soon(org.create_lead, "Before")
            got = await take(client, 1)
            await asyncio.to_thread(org.control, "streaming/forget-clients")
            await asyncio.to_thread(org.create_lead, "WhileForgotten")
            got += await take(client, 1)
            return [m["data"]["payload"]["Name"]["LastName"] for m in got]

    assert run(scenario) == ["Before", "WhileForgotten"]


def test_dropped_held_connection_is_reconnected(org: Org) -> None:
    async def scenario() -> list[str]:
        async with org.client(connection_timeout=5) as client:
            await client.subscribe(LEADS)
            soon(org.create_lead, "First")
            got = await take(client, 1)
            dropped = 0
            while not dropped:  # wait until the client's next connect is held, then cut it
                dropped = (await asyncio.to_thread(org.control, "streaming/disconnect"))["dropped"]
            await asyncio.to_thread(org.create_lead, "AfterCut")
            got += await take(client, 1)
            return [m["data"]["payload"]["Name"]["LastName"] for m in got]

    assert run(scenario) == ["First", "AfterCut"]


def test_stats_report_events_per_channel(org: Org) -> None:
    org.create_lead("Counted")
    stats = requests.get(f"{org.url}/_emulator/stats", verify=org.ca, timeout=10).json()
    assert stats["events_by_channel"][LEADS] >= 1 and stats["events_by_channel"][ALL] >= 1


def test_gap_events_reach_the_client_header_only(org: Org) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with org.client() as client:
            await client.subscribe(LEADS)
            lead = await asyncio.to_thread(org.create_lead, "Gapped")
            await asyncio.to_thread(
                org.control,
                "streaming/gap",
                {"entity": "Lead", "recordIds": [lead], "changeType": "GAP_UPDATE"},
            )
            return await take(client, 2)

    _, gap = run(scenario)
    assert list(gap["data"]["payload"]) == ["ChangeEventHeader"]
    assert header(gap)["changeType"] == "GAP_UPDATE"


def test_lead_conversion_is_four_events_of_one_transaction_in_order(org: Org) -> None:
    lead = org.create_lead("Converted")

    async def scenario() -> list[dict[str, Any]]:
        async with org.client() as client:
            await client.subscribe(ALL)
            await asyncio.to_thread(org.control, f"leads/{lead}/convert")
            return await take(client, 4)

    events = [header(m) for m in run(scenario)]
    assert [(h["entityName"], h["changeType"]) for h in events] == [
        ("Account", "CREATE"),
        ("Contact", "CREATE"),
        ("Opportunity", "CREATE"),
        ("Lead", "UPDATE"),
    ]
    assert [h["sequenceNumber"] for h in events] == [1, 2, 3, 4]
    assert len({h["transactionKey"] for h in events}) == 1
    assert {h["changeOrigin"] for h in events} == {"com/salesforce/api/soap/60.0;client=SfdcInternalAPI/"}
    assert "IsConverted" in events[3]["changedFields"]


def _restart(emulator: Emulator) -> None:
    """Stop the HTTPS server and serve the same org on the same port again (a deploy, a crash + restart)."""
    emulator.stop()
    emulator._ready.clear()
    emulator._thread = threading.Thread(target=emulator._run, name="sfemulator", daemon=True)
    emulator._thread.start()
    assert emulator._ready.wait(30) and emulator._error is None


def test_server_restart_on_the_same_port_and_state_loses_no_event(tmp_path: Any) -> None:
    with Emulator(port=0, seed="demo", tls_dir=tmp_path) as emulator:
        org = Org(emulator)

        async def scenario() -> list[str]:
            async with org.client(connection_timeout=15) as client:
                await client.subscribe(LEADS)
                soon(org.create_lead, "BeforeRestart")
                got = await take(client, 1)
                await asyncio.to_thread(_restart, emulator)
                await asyncio.to_thread(org.create_lead, "AfterRestart")
                got += await take(client, 1)
                return [m["data"]["payload"]["Name"]["LastName"] for m in got]

        assert run(scenario, timeout=40) == ["BeforeRestart", "AfterRestart"]


@pytest.mark.parametrize(
    ("channel", "exists"),
    [
        ("/data/ChangeEvents", True),
        ("/data/LeadChangeEvent", True),
        ("/data/Advocate__ChangeEvent", True),
        ("/data/Advocate__cChangeEvent", False),
        ("/data/NoSuchObject__ChangeEvent", False),
        ("/event/Referral_Submitted__e", True),
        ("/event/Nope__e", False),
        ("/topic/NoSuchTopic", False),
    ],
)
def test_which_channels_exist(org: Org, channel: str, exists: bool) -> None:
    headers = {"Authorization": f"OAuth {org.token()}"}
    url = f"{org.url}/cometd/{API}"
    [hs] = requests.post(
        url, json=[{"channel": "/meta/handshake", "id": "0"}], headers=headers, verify=org.ca, timeout=10
    ).json()
    [reply] = requests.post(
        url,
        json=[{"channel": "/meta/subscribe", "clientId": hs["clientId"], "subscription": channel, "id": "1"}],
        headers=headers,
        verify=org.ca,
        timeout=10,
    ).json()
    assert reply["successful"] is exists
    if not exists:
        assert reply["error"] == f"400::The channel you requested to subscribe to doesn't exist {{{channel}}}"
