"""Fidelity of the emulator's CometD endpoint to salesforce-notes §5 and §10, over HTTPS against the real
emulator (raw Bayeux messages, no client library): behaviour widely used clients rely on."""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import pytest
import requests
from conftest import new_token

from sfemulator.server import Emulator

LEADS = "/data/LeadChangeEvent"


class Bayeux:
    """A hand-driven long-polling client: one requests session, messages as dicts."""

    def __init__(self, emulator: Emulator, http: requests.Session, version: str = "59.0") -> None:
        self.emulator = emulator
        self.http = http
        self.token = new_token(emulator, http)
        self.url = f"{emulator.base_url}/cometd/{version}"
        self.client_id = ""

    def post(self, messages: list[dict[str, Any]], timeout: float = 10) -> list[dict[str, Any]]:
        response = self.http.post(
            self.url, json=messages, headers={"Authorization": f"OAuth {self.token}"}, timeout=timeout
        )
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body

    def handshake(self) -> dict[str, Any]:
        reply = self.post([{"channel": "/meta/handshake", "version": "1.0", "id": "1"}])[0]
        assert reply["successful"] is True, reply
        self.client_id = reply["clientId"]
        return reply

    def connect(self, msg_id: str, timeout_ms: int | None = None) -> list[dict[str, Any]]:
        message: dict[str, Any] = {
            "channel": "/meta/connect",
            "clientId": self.client_id,
            "connectionType": "long-polling",
            "id": msg_id,
        }
        if timeout_ms is not None:
            message["advice"] = {"timeout": timeout_ms}
        return self.post([message])

    def subscribe(self, channel: str, replay: int = -1) -> dict[str, Any]:
        return self.post(
            [
                {
                    "channel": "/meta/subscribe",
                    "clientId": self.client_id,
                    "subscription": channel,
                    "id": "s",
                    "ext": {"replay": {channel: replay}},
                }
            ]
        )[0]

    def ready(self, channel: str) -> None:
        """Handshake, subscribe to new events and take the first (unheld) connect."""
        self.handshake()
        assert self.subscribe(channel)["successful"] is True
        self.connect("c0")


def create_lead(emulator: Emulator, http: requests.Session, token: str, last_name: str) -> str:
    response = http.post(
        f"{emulator.base_url}/services/data/v59.0/sobjects/Lead/",
        json={"LastName": last_name, "Company": "Acme"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def events(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in replies if not str(m.get("channel", "")).startswith("/meta/")]


def test_an_abandoned_held_connect_leaves_its_events_for_the_next_connect(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    client = Bayeux(emulator_reset, emulator_http)
    client.ready(LEADS)
    # Hold a connect on a raw socket, then abandon it (a client-side timeout, or faye giving up on it).
    host, port = emulator_reset.base_url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(emulator_reset.ca_path))
    body = json.dumps(
        [
            {
                "channel": "/meta/connect",
                "clientId": client.client_id,
                "connectionType": "long-polling",
                "id": "c1",
            }
        ]
    ).encode()
    with context.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host) as sock:
        sock.sendall(
            b"POST /cometd/59.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: OAuth {client.token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # held: nothing to read yet
    lead = create_lead(emulator_reset, emulator_http, client.token, "Abandoned")
    started = time.monotonic()
    delivered = events(client.connect("c2", timeout_ms=3000))
    assert [e["data"]["payload"]["ChangeEventHeader"]["recordIds"] for e in delivered] == [[lead]]
    assert time.monotonic() - started < 2.0  # delivered at once, not after the hold


def test_the_hold_time_is_configurable_on_the_emulator(emulator: Emulator) -> None:
    with Emulator(port=0, tls_dir=emulator.tls_dir, seed="demo", streaming_timeout_ms=700) as emu:
        from sfemulator.server import trusting_session

        http = trusting_session(emu.ca_path)
        client = Bayeux(emu, http)
        client.handshake()
        first = client.connect("c0")[0]
        assert first["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 700}
        started = time.monotonic()
        held = client.connect("c1")
        assert held[0]["successful"] is True and 0.6 < time.monotonic() - started < 1.8


def test_pushtopic_notifies_deletes_of_matching_records_with_their_last_values(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    client = Bayeux(emulator_reset, emulator_http)
    api = f"{emulator_reset.base_url}/services/data/v59.0/sobjects"
    auth = {"Authorization": f"Bearer {client.token}"}
    topic = {
        "Name": "AcmeLeads",
        "Query": "SELECT Id, LastName FROM Lead WHERE Company = 'Acme'",
        "ApiVersion": 59.0,
        "NotifyForOperationCreate": False,
        "NotifyForOperationDelete": True,
    }
    assert emulator_http.post(f"{api}/PushTopic/", json=topic, headers=auth, timeout=10).status_code == 201
    lead = create_lead(emulator_reset, emulator_http, client.token, "Gone")
    other = emulator_http.post(
        f"{api}/Lead/", json={"LastName": "Elsewhere", "Company": "Globex"}, headers=auth, timeout=10
    ).json()["id"]
    client.ready("/topic/AcmeLeads")
    for record_id in (lead, other):
        assert emulator_http.delete(f"{api}/Lead/{record_id}", headers=auth, timeout=10).status_code == 204
    delivered = events(client.connect("c1", timeout_ms=1500))
    assert [(e["data"]["event"]["type"], e["data"]["sobject"]) for e in delivered] == [
        ("deleted", {"Id": lead, "LastName": "Gone"})
    ]


def test_one_change_to_several_records_of_a_transaction_is_one_event_with_all_their_ids(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    client = Bayeux(emulator_reset, emulator_http)
    leads = [create_lead(emulator_reset, emulator_http, client.token, f"Bulk-{n}") for n in range(3)]
    client.ready(LEADS)
    api = f"{emulator_reset.base_url}/services/data/v59.0/composite/sobjects"
    headers = {"Authorization": f"Bearer {client.token}", "Sforce-Auto-Assign": "FALSE"}
    same = [{"attributes": {"type": "Lead"}, "id": lead, "Title": "Buyer"} for lead in leads[:2]]
    different = [{"attributes": {"type": "Lead"}, "id": leads[2], "Title": "Owner"}]
    update = emulator_http.patch(
        api, json={"allOrNone": True, "records": same + different}, headers=headers, timeout=10
    )
    assert update.status_code == 200 and all(r["success"] for r in update.json())
    ids = ",".join(leads)
    assert emulator_http.delete(f"{api}?ids={ids}&allOrNone=true", headers=headers, timeout=10).ok
    headers_seen = [
        e["data"]["payload"]["ChangeEventHeader"] for e in events(client.connect("c1", timeout_ms=1500))
    ]
    assert [(h["changeType"], h["recordIds"], h["sequenceNumber"]) for h in headers_seen] == [
        ("UPDATE", leads[:2], 1),
        ("UPDATE", leads[2:], 2),
        ("DELETE", leads, 1),
    ]


def test_platform_events_published_in_collections_and_composite_are_delivered(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    client = Bayeux(emulator_reset, emulator_http)
    channel = "/event/Referral_Submitted__e"
    client.ready(channel)
    base = f"{emulator_reset.base_url}/services/data/v59.0"
    auth = {"Authorization": f"Bearer {client.token}"}
    event = {
        "attributes": {"type": "Referral_Submitted__e"},
        "Referral_Code__c": "GRACE-1001",
        "Phone__c": "+1",
    }
    collection = emulator_http.post(
        f"{base}/composite/sobjects", json={"allOrNone": False, "records": [event]}, headers=auth, timeout=10
    ).json()
    sub = {
        "method": "POST",
        "url": "/services/data/v59.0/sobjects/Referral_Submitted__e",
        "referenceId": "pe",
    }
    composite = emulator_http.post(
        f"{base}/composite",
        json={"compositeRequest": [{**sub, "body": {"Referral_Code__c": "ALAN-1002"}}]},
        headers=auth,
        timeout=10,
    ).json()["compositeResponse"][0]
    assert composite["httpStatusCode"] == 201
    results = [collection[0], composite["body"]]
    for result in results:
        assert result["id"].startswith("e01") and result["success"] is True
        assert result["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    delivered = events(client.connect("c1", timeout_ms=1500))
    assert [e["channel"] for e in delivered] == [channel, channel]
    assert [e["data"]["payload"]["Referral_Code__c"] for e in delivered] == ["GRACE-1001", "ALAN-1002"]
    assert delivered[0]["data"]["payload"]["Phone__c"] == "+1"
    assert [e["data"]["event"]["EventUuid"] for e in delivered] == [
        r["errors"][0]["message"] for r in results
    ]
