"""Raw-HTTP tests of the CometD endpoint: message shapes, ids, advice and error texts, no client library."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from test_streaming_support import FakeOrg, Served, lead_create, lead_id, serve, wait_until

AUTH = {"Authorization": "Bearer good-token"}
INVALID_REPLAY_TAIL = "you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."


@pytest.fixture
def served() -> Any:
    with serve(FakeOrg(), timeout_ms=2000) as s:
        yield s


def post(s: Served, messages: Any, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
    return requests.post(
        s.cometd, json=messages, headers=AUTH if headers is None else headers, timeout=10, **kw
    )


def handshake(s: Served, msg_id: Any = "0") -> str:
    reply = post(s, [{"channel": "/meta/handshake", "version": "1.0", "id": msg_id}]).json()[0]
    assert reply["successful"] is True
    return str(reply["clientId"])


def connect(s: Served, client_id: str, msg_id: Any = "1", **extra: Any) -> list[dict[str, Any]]:
    body = [
        {
            "channel": "/meta/connect",
            "clientId": client_id,
            "connectionType": "long-polling",
            "id": msg_id,
            **extra,
        }
    ]
    response = post(s, body)
    assert response.status_code == 200
    return list(response.json())


def subscribe(
    s: Served, client_id: str, channel: str, replay: Any = None, msg_id: Any = "2"
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "channel": "/meta/subscribe",
        "clientId": client_id,
        "subscription": channel,
        "id": msg_id,
    }
    if replay is not None:
        message["ext"] = {"replay": replay}
    return dict(post(s, [message]).json()[0])


def test_handshake_advertises_long_polling_replay_ext_and_echoes_id(served: Served) -> None:
    response = post(
        served,
        [
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["websocket", "long-polling"],
                "minimumVersion": "1.0",
                "id": "0",
            }
        ],
    )
    assert response.status_code == 200
    [reply] = response.json()
    assert reply["supportedConnectionTypes"] == ["long-polling"]
    assert reply["ext"] == {"replay": True, "payload.format": True}
    assert reply["id"] == "0" and reply["channel"] == "/meta/handshake" and reply["successful"] is True
    assert reply["version"] == "1.0" and reply["minimumVersion"] == "1.0"
    assert len(reply["clientId"]) >= 20 and reply["clientId"] != handshake(served)
    assert "BAYEUX_BROWSER" in response.cookies


def test_ids_are_echoed_as_the_same_json_value(served: Served) -> None:
    client_id = handshake(served, msg_id=7)
    assert connect(served, client_id, msg_id="a")[0]["id"] == "a"
    assert subscribe(served, client_id, "/data/LeadChangeEvent", msg_id=9)["id"] == 9


def test_first_connect_answers_at_once_with_advice_later_ones_are_held(served: Served) -> None:
    client_id = handshake(served)
    started = time.monotonic()
    [first] = connect(served, client_id)
    assert time.monotonic() - started < 1
    assert first == {
        "clientId": client_id,
        "channel": "/meta/connect",
        "id": "1",
        "successful": True,
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000},
    }
    started = time.monotonic()
    [second] = connect(served, client_id, msg_id="2")
    assert time.monotonic() - started >= 1.9
    assert second == {"clientId": client_id, "channel": "/meta/connect", "id": "2", "successful": True}


def test_connect_with_its_own_zero_timeout_is_answered_at_once(served: Served) -> None:
    client_id = handshake(served)
    connect(served, client_id)
    started = time.monotonic()
    [reply] = connect(served, client_id, msg_id="2", advice={"timeout": 0})
    assert reply["successful"] is True and time.monotonic() - started < 1


def test_held_connect_returns_early_with_events_as_extra_elements(served: Served) -> None:
    client_id = handshake(served)
    assert subscribe(served, client_id, "/data/LeadChangeEvent")["successful"] is True
    connect(served, client_id)
    threading.Timer(0.2, lambda: served.org.commit(lead_create(lead_id(1)))).start()
    started = time.monotonic()
    reply = connect(served, client_id, msg_id="3")
    assert time.monotonic() - started < 1.5
    assert reply[0]["channel"] == "/meta/connect" and reply[0]["successful"] is True
    [event] = reply[1:]
    assert event["channel"] == "/data/LeadChangeEvent"
    assert event["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [lead_id(1)]


def test_newer_connect_replaces_a_held_one_which_completes_empty(served: Served) -> None:
    client_id = handshake(served)
    subscribe(served, client_id, "/data/LeadChangeEvent")
    connect(served, client_id)
    results: dict[str, Any] = {}
    old = threading.Thread(target=lambda: results.update(old=connect(served, client_id, msg_id="2")))
    old.start()
    wait_until(lambda: any(c.held is not None for c in served.hub.server._clients.values()))
    threading.Timer(0.3, lambda: served.org.commit(lead_create(lead_id(2)))).start()
    newer = connect(served, client_id, msg_id="3")
    old.join(5)
    assert results["old"] == [
        {"clientId": client_id, "channel": "/meta/connect", "id": "2", "successful": True}
    ]
    assert [m["channel"] for m in newer] == ["/meta/connect", "/data/LeadChangeEvent"]


def test_subscribe_before_connect_and_batched_with_first_connect(served: Served) -> None:
    client_id = handshake(served)
    served.org.commit(lead_create(lead_id(3)))
    reply = post(
        served,
        [
            {
                "channel": "/meta/connect",
                "clientId": client_id,
                "connectionType": "long-polling",
                "id": "1",
                "advice": {"timeout": 0},
            },
            {
                "channel": "/meta/subscribe",
                "clientId": client_id,
                "subscription": "/data/LeadChangeEvent",
                "id": "2",
                "ext": {"replay": {"/data/LeadChangeEvent": -2}},
            },
        ],
    ).json()
    assert reply[0]["channel"] == "/meta/connect" and reply[0]["successful"] is True
    assert reply[1] == {
        "channel": "/meta/subscribe",
        "id": "2",
        "clientId": client_id,
        "subscription": "/data/LeadChangeEvent",
        "successful": True,
    }
    assert [m["channel"] for m in reply[2:]] == ["/data/LeadChangeEvent"]


def test_subscribe_before_handshake_is_refused_with_403(served: Served) -> None:
    [reply] = post(
        served, [{"channel": "/meta/subscribe", "subscription": "/data/LeadChangeEvent", "id": "1"}]
    ).json()
    assert reply["successful"] is False and reply["error"].startswith("403::")


def test_unknown_channel_is_refused_with_the_salesforce_text(served: Served) -> None:
    client_id = handshake(served)
    reply = subscribe(served, client_id, "/topic/NoSuchTopic")
    assert reply == {
        "channel": "/meta/subscribe",
        "id": "2",
        "clientId": client_id,
        "subscription": "/topic/NoSuchTopic",
        "error": "400::The channel you requested to subscribe to doesn't exist {/topic/NoSuchTopic}",
        "successful": False,
    }


def test_replay_ids_increase_and_after_n_delivers_only_later_events(served: Served) -> None:
    for n in range(5):
        served.org.commit(lead_create(lead_id(10 + n)))
    client_id = handshake(served)
    subscribe(served, client_id, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": -2})
    events = connect(served, client_id)[1:]
    ids = [e["data"]["event"]["replayId"] for e in events]
    assert len(ids) == 5 and ids == sorted(set(ids))
    other = handshake(served)
    assert subscribe(served, other, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": ids[2]})["successful"]
    later = connect(served, other)[1:]
    assert [e["data"]["event"]["replayId"] for e in later] == ids[3:]


def test_invalid_and_expired_replay_ids_get_the_exact_error(served: Served) -> None:
    served.org.commit(lead_create(lead_id(20)))
    served.org.commit(lead_create(lead_id(21)))
    client_id = handshake(served)
    reply = subscribe(served, client_id, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": 999_999})
    assert reply["error"] == "400::The replayId {999999} " + INVALID_REPLAY_TAIL
    assert reply["successful"] is False and reply["subscription"] == "/data/LeadChangeEvent"
    subscribe(served, client_id, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": -2})
    first, second = (e["data"]["event"]["replayId"] for e in connect(served, client_id)[1:])
    expired = requests.post(
        f"{served.url}/_emulator/streaming/expire",
        json={"before_replay_id": second, "channel": "/data/LeadChangeEvent"},
        timeout=5,
    )
    assert expired.json() == {"dropped": 1}
    late = handshake(served)
    reply = subscribe(served, late, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": first})
    assert reply["error"] == f"400::The replayId {{{first}}} {INVALID_REPLAY_TAIL}"


def test_retention_by_time_follows_the_org_clock(served: Served) -> None:
    served.org.commit(lead_create(lead_id(30)))
    client_id = handshake(served)
    subscribe(served, client_id, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": -2})
    [event] = connect(served, client_id)[1:]
    replay_id = event["data"]["event"]["replayId"]
    served.org.now += timedelta(hours=72, minutes=1)
    reply = subscribe(
        served, handshake(served), "/data/LeadChangeEvent", {"/data/LeadChangeEvent": replay_id}
    )
    assert reply["successful"] is False and f"replayId {{{replay_id}}}" in reply["error"]


def test_replay_map_without_the_channel_gets_the_map_error(served: Served) -> None:
    client_id = handshake(served)
    reply = subscribe(served, client_id, "/data/LeadChangeEvent", {})
    assert reply["error"] == (
        "400::The replayId for channel {/data/LeadChangeEvent} wasn't found using the provided replay ID map {{}}."
        " Ensure that the channel name you provided in the replay map is valid and matches the channel name used"
        " for subscribing."
    )


def test_expired_token_on_connect_gets_401_with_reconnect_none(served: Served) -> None:
    client_id = handshake(served)
    connect(served, client_id)
    body = [{"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", "id": 7}]
    [reply] = post(served, body, headers={"Authorization": "Bearer stale"}).json()
    assert reply == {
        "clientId": client_id,
        "advice": {"reconnect": "none", "interval": 0},
        "channel": "/meta/connect",
        "id": 7,
        "error": "401::Authentication invalid",
        "successful": False,
    }
    # the next successful connect re-sends the full advice, since the error replaced it on the client
    [ok] = connect(served, client_id, msg_id="8", advice={"timeout": 0})
    assert ok["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 2000}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Authorization": "OAuth nope"}, "401::Authentication invalid"),
        ({}, "401::Request requires authentication"),
    ],
)
def test_handshake_denied_carries_the_failure_reason(
    served: Served, headers: dict[str, str], reason: str
) -> None:
    [reply] = post(
        served, [{"channel": "/meta/handshake", "version": "1.0", "id": "0"}], headers=headers
    ).json()
    assert reply == {
        "channel": "/meta/handshake",
        "id": "0",
        "ext": {"sfdc": {"failureReason": reason}},
        "advice": {"reconnect": "none"},
        "error": "403::Handshake denied",
        "successful": False,
    }


def test_oauth_scheme_is_accepted(served: Served) -> None:
    [reply] = post(
        served, [{"channel": "/meta/handshake", "id": "0"}], headers={"Authorization": "OAuth good-token"}
    ).json()
    assert reply["successful"] is True


def test_forget_clients_answers_held_connects_and_later_messages_with_unknown_client(served: Served) -> None:
    client_id = handshake(served)
    connect(served, client_id)
    results: dict[str, Any] = {}
    held = threading.Thread(target=lambda: results.update(held=connect(served, client_id, msg_id="2")))
    held.start()
    wait_until(lambda: any(c.held is not None for c in served.hub.server._clients.values()))
    forgotten = requests.post(f"{served.url}/_emulator/streaming/forget-clients", timeout=5).json()
    held.join(5)
    assert forgotten == {"forgotten": 1}
    unknown = {
        "advice": {"reconnect": "handshake", "interval": 0},
        "channel": "/meta/connect",
        "id": "2",
        "error": "403::Unknown client",
        "successful": False,
    }
    assert results["held"] == [unknown]
    [again] = connect(served, client_id, msg_id="3")
    assert again["error"] == "403::Unknown client" and again["advice"] == {
        "reconnect": "handshake",
        "interval": 0,
    }


def test_disconnect_control_aborts_held_connections(served: Served) -> None:
    client_id = handshake(served)
    connect(served, client_id)
    errors: list[BaseException] = []

    def held() -> None:
        try:
            connect(served, client_id, msg_id="2")
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=held)
    thread.start()
    wait_until(lambda: any(c.held is not None for c in served.hub.server._clients.values()))
    assert requests.post(f"{served.url}/_emulator/streaming/disconnect", timeout=5).json() == {"dropped": 1}
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], requests.ConnectionError)
    # the client itself is still known: a network cut is not a forgotten session
    assert connect(served, client_id, msg_id="3", advice={"timeout": 0})[0]["successful"] is True


def test_unsubscribe_and_disconnect_replies(served: Served) -> None:
    client_id = handshake(served)
    subscribe(served, client_id, "/data/LeadChangeEvent")
    [unsub] = post(
        served,
        [
            {
                "channel": "/meta/unsubscribe",
                "clientId": client_id,
                "subscription": "/data/LeadChangeEvent",
                "id": "3",
            }
        ],
    ).json()
    assert unsub == {
        "channel": "/meta/unsubscribe",
        "id": "3",
        "clientId": client_id,
        "subscription": "/data/LeadChangeEvent",
        "successful": True,
    }
    [bye] = post(served, [{"channel": "/meta/disconnect", "clientId": client_id, "id": "4"}]).json()
    assert bye == {"channel": "/meta/disconnect", "id": "4", "clientId": client_id, "successful": True}
    assert connect(served, client_id, msg_id="5")[0]["error"] == "403::Unknown client"


def test_request_limits_chunked_bodies_and_websocket_probe(served: Served) -> None:
    big = [{"channel": "/meta/handshake", "id": "0", "pad": "x" * 40_000}]
    assert post(served, big).status_code == 413

    def chunks() -> Any:
        yield b'[{"channel":"/meta/handshake",'
        yield b'"id":"0"}]'

    chunked = requests.post(
        served.cometd, data=chunks(), headers={**AUTH, "Content-Type": "application/json"}, timeout=5
    )
    assert chunked.status_code == 200 and chunked.json()[0]["successful"] is True
    started = time.monotonic()
    probe = requests.get(served.cometd, headers={"Connection": "Upgrade", "Upgrade": "websocket"}, timeout=5)
    assert probe.status_code not in (101, 200) and time.monotonic() - started < 1
    assert requests.post(f"{served.url}/cometd", json=[], headers=AUTH, timeout=5).status_code == 400


def test_stats_count_events_per_channel(served: Served) -> None:
    served.org.commit(lead_create(lead_id(40), "Doe"), lead_create(lead_id(41), "Roe"))
    assert served.org.stats.events_by_channel == {"/data/LeadChangeEvent": 2, "/data/ChangeEvents": 2}


def test_gap_and_overflow_events_are_header_only(served: Served) -> None:
    client_id = handshake(served)
    subscribe(served, client_id, "/data/LeadChangeEvent")
    connect(served, client_id)
    url = f"{served.url}/_emulator/streaming/gap"
    assert (
        requests.post(
            url, json={"entity": "Lead", "recordIds": [lead_id(50)], "changeType": "GAP_UPDATE"}, timeout=5
        ).status_code
        == 200
    )
    assert (
        requests.post(url, json={"entity": "Lead", "changeType": "GAP_OVERFLOW"}, timeout=5).status_code
        == 200
    )
    gap, overflow = (m["data"]["payload"] for m in connect(served, client_id, msg_id="2")[1:])
    assert list(gap) == ["ChangeEventHeader"] and list(overflow) == ["ChangeEventHeader"]
    assert gap["ChangeEventHeader"]["changeType"] == "GAP_UPDATE"
    assert gap["ChangeEventHeader"]["recordIds"] == [lead_id(50)]
    assert overflow["ChangeEventHeader"]["changeType"] == "GAP_OVERFLOW"
    assert overflow["ChangeEventHeader"]["recordIds"] == []
    assert (
        requests.post(url, json={"entity": "Nope", "changeType": "GAP_UPDATE"}, timeout=5).status_code == 400
    )


def test_every_reply_is_a_json_array_even_for_a_single_object_message(served: Served) -> None:
    response = requests.post(
        served.cometd, data=json.dumps({"channel": "/meta/handshake", "id": "0"}), headers=AUTH, timeout=5
    )
    assert response.status_code == 200 and isinstance(response.json(), list)


def test_a_replaying_subscribe_wakes_the_held_connect(served: Served) -> None:
    served.org.commit(lead_create(lead_id(60)))
    client_id = handshake(served)
    connect(served, client_id)
    results: dict[str, Any] = {}
    held = threading.Thread(target=lambda: results.update(held=connect(served, client_id, msg_id="2")))
    held.start()
    wait_until(lambda: any(c.held is not None for c in served.hub.server._clients.values()))
    started = time.monotonic()
    assert subscribe(served, client_id, "/data/LeadChangeEvent", {"/data/LeadChangeEvent": -2})["successful"]
    held.join(5)
    assert time.monotonic() - started < 1
    assert [m["channel"] for m in results["held"]] == ["/meta/connect", "/data/LeadChangeEvent"]


def test_a_client_that_stops_reconnecting_is_forgotten() -> None:
    with serve(FakeOrg(), timeout_ms=2000, client_expiry_s=0.2) as s:
        client_id = handshake(s)
        connect(s, client_id)
        # any request sweeps; the idle client goes once it has been silent longer than the expiry
        wait_until(lambda: bool(handshake(s)) and client_id not in s.hub.server._clients)
        assert connect(s, client_id, msg_id="2")[0]["error"] == "403::Unknown client"
