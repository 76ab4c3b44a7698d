"""Bayeux over HTTP long-polling at /cometd/NN.N, as Salesforce's Streaming API speaks it.

Each client keeps one cursor (the last delivered replay id) per subscribed channel; a connect reply carries
whatever the retained rings hold beyond those cursors. Nothing is queued per client, so a slow or vanished
client costs nothing, and a reply lost on the wire (a network cut) is simply re-read on the next connect.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sfemulator.edge import UnreadableBody, decode_content
from sfemulator.streaming._bus import EventBus
from sfemulator.wire import JsonError, dumps, parse_json

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

MAX_BODY_BYTES = 32_768
AUTH_INVALID = "401::Authentication invalid"
AUTH_MISSING = "401::Request requires authentication"
UNKNOWN_CLIENT = "403::Unknown client"
HANDSHAKE_DENIED = "403::Handshake denied"
NOT_HANDSHAKEN = "403::Client has not completed handshake"
VERSION_MANDATORY = "API version in the URI is mandatory. URI format: '/cometd/{version}'"
_VERSION_RE = re.compile(r"^\d{1,3}\.\d$")
_CLIENT_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

# Why a held connect woke up.
_EVENTS, _REPLACED, _FORGOTTEN, _CUT = "events", "replaced", "forgotten", "cut"


def invalid_replay_error(replay_id: object) -> str:
    # Two spaces before "Please", as in real captures (EMP-Connector#14, CometD.NetCore#20).
    return (
        f"400::The replayId {{{replay_id}}} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )


def replay_map_error(channel: str, replay_map: dict[str, Any]) -> str:
    java_map = "{" + ", ".join(f"{k}={v}" for k, v in replay_map.items()) + "}"
    return (
        f"400::The replayId for channel {{{channel}}} wasn't found using the provided replay ID map "
        f"{{{java_map}}}. Ensure that the channel name you provided in the replay map is valid and matches "
        "the channel name used for subscribing."
    )


def unknown_channel_error(channel: str) -> str:
    return f"400::The channel you requested to subscribe to doesn't exist {{{channel}}}"


@dataclass
class _Client:
    client_id: str
    user_id: str
    cursors: dict[str, int] = field(default_factory=dict)
    connected: bool = False  # the first connect after a handshake is answered at once, with advice
    advice_due: bool = False  # an error reply changed the advice; the next success re-sends it in full
    held: asyncio.Future[str] | None = None
    last_seen: float = field(default_factory=time.monotonic)


@dataclass
class HubSettings:
    timeout_ms: int = 110_000
    client_expiry_s: float = 40.0
    max_batch: int = 1000


class BayeuxServer:
    """The /cometd endpoint: handshake, connect, subscribe, unsubscribe, disconnect."""

    def __init__(
        self,
        bus: EventBus,
        authenticate: Callable[[str], str | None],
        channel_exists: Callable[[str], bool],
        settings: HubSettings,
    ) -> None:
        self._bus = bus
        self._authenticate = authenticate
        self._channel_exists = channel_exists
        self.settings = settings
        self._clients: dict[str, _Client] = {}
        self._subscribers: dict[str, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last_sweep = time.monotonic()
        self._held_transports: dict[str, asyncio.BaseTransport] = {}

    # --- wake-ups from the bus (any thread) ------------------------------------------------------

    def on_published(self, channels: set[str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._wake(channels)
        else:
            loop.call_soon_threadsafe(self._wake, channels)

    def _wake(self, channels: set[str]) -> None:
        for channel in channels:
            for client_id in self._subscribers.get(channel, ()):
                client = self._clients.get(client_id)
                if client is not None and client.held is not None and not client.held.done():
                    client.held.set_result(_EVENTS)

    # --- control ---------------------------------------------------------------------------------

    def forget_clients(self) -> int:
        """Drop every client: their next message gets 403::Unknown client; held connects answer now."""
        count = len(self._clients)
        for client in self._clients.values():
            if client.held is not None and not client.held.done():
                client.held.set_result(_FORGOTTEN)
        self._clients.clear()
        self._subscribers.clear()
        return count

    def cut_held_connections(self) -> int:
        """Abort the TCP connections of held connects, as a network cut would."""
        count = 0
        for client in self._clients.values():
            if client.held is not None and not client.held.done():
                client.held.set_result(_CUT)
                count += 1
        return count

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # --- HTTP ------------------------------------------------------------------------------------

    async def handle_get(self, request: web.Request) -> web.Response:
        # faye probes a WebSocket upgrade with GET; anything but 101, quickly, sends it to long-polling.
        return _json_response(
            [{"successful": False, "error": "400::Invalid connection type {websocket}"}], 400
        )

    async def handle_no_version(self, request: web.Request) -> web.Response:
        return _json_response([{"successful": False, "error": f"400::{VERSION_MANDATORY}"}], 400)

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        if not _VERSION_RE.match(request.match_info.get("version", "")):
            return await self.handle_no_version(request)
        body = await _read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return _json_response([{"successful": False, "error": "413::Maximum Request Size Exceeded"}], 413)
        try:
            body = decode_content(body, request.headers.get("Content-Encoding"))
        except (UnreadableBody, web.HTTPRequestEntityTooLarge):
            return _json_response([{"successful": False, "error": "400::Invalid JSON"}], 400)
        if len(body) > MAX_BODY_BYTES:
            return _json_response([{"successful": False, "error": "413::Maximum Request Size Exceeded"}], 413)
        try:
            messages = parse_json(body)
        except JsonError:  # not JSON, or JSON Salesforce's parser refuses (NaN, nesting too deep)
            return _json_response([{"successful": False, "error": "400::Invalid JSON"}], 400)
        if isinstance(messages, dict):
            messages = [messages]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _json_response([{"successful": False, "error": "400::Invalid Bayeux message"}], 400)

        self._sweep_expired()
        token = _token(request)
        user_id = self._authenticate(token) if token else None
        replies: list[dict[str, Any]] = []
        connect_at: int | None = None
        handshook = False
        for message in messages:
            channel = message.get("channel")
            if channel == HANDSHAKE:
                reply = self._handshake(message, token, user_id)
                handshook = handshook or bool(reply.get("successful"))
            elif channel == CONNECT and connect_at is None:
                connect_at = len(replies)
                reply = {}  # filled in once the connect is answered, after the rest of the batch
            elif channel == SUBSCRIBE:
                reply = self._subscribe(message, user_id)
            elif channel == UNSUBSCRIBE:
                reply = self._unsubscribe(message, user_id)
            elif channel == DISCONNECT:
                reply = self._disconnect(message, user_id)
            else:
                reply = _base(message, channel) | {"successful": False, "error": "403::Publish not allowed"}
            replies.append(reply)

        events: list[str] = []
        if connect_at is not None:
            outcome = await self._connect(messages[_index_of_connect(messages)], user_id, _alive(request))
            if outcome is None:  # network cut: the reply is never written
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            replies[connect_at], events = outcome

        text = "[" + ",".join([dumps(r).decode() for r in replies] + events) + "]"
        response = web.Response(text=text, content_type="application/json")
        if handshook:
            # Sticky-session cookies as Salesforce sets them; an old one on a re-handshake is never refused.
            if "BAYEUX_BROWSER" not in request.cookies:
                response.set_cookie("BAYEUX_BROWSER", secrets.token_hex(8), path="/", httponly=True)
            if "sfdc-stream" not in request.cookies:
                response.set_cookie("sfdc-stream", "!" + secrets.token_urlsafe(24), path="/")
        return response

    # --- messages --------------------------------------------------------------------------------

    def _handshake(self, message: dict[str, Any], token: str | None, user_id: str | None) -> dict[str, Any]:
        reply = _base(message, HANDSHAKE)
        if user_id is None:
            reason = AUTH_INVALID if token else AUTH_MISSING
            return reply | {
                "ext": {"sfdc": {"failureReason": reason}},
                "advice": {"reconnect": "none"},
                "error": HANDSHAKE_DENIED,
                "successful": False,
            }
        client_id = "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(29))
        self._clients[client_id] = _Client(client_id, user_id)
        return reply | {
            "ext": {"replay": True, "payload.format": True},
            "minimumVersion": "1.0",
            "clientId": client_id,
            "supportedConnectionTypes": ["long-polling"],
            "version": "1.0",
            "successful": True,
        }

    def _advice(self) -> dict[str, Any]:
        return {"reconnect": "retry", "interval": 0, "timeout": self.settings.timeout_ms}

    def _check(
        self, message: dict[str, Any], channel: str, user_id: str | None
    ) -> tuple[_Client | None, dict[str, Any]]:
        """The client, or the error reply for a bad token or an unknown client."""
        reply = _base(message, channel)
        if "clientId" in message:
            reply["clientId"] = message["clientId"]
        if channel in (SUBSCRIBE, UNSUBSCRIBE) and "subscription" in message:
            reply["subscription"] = message["subscription"]
        client = self._clients.get(str(message.get("clientId")))
        if user_id is None:
            if client is not None:
                client.advice_due = True
            return None, reply | {
                "advice": {"reconnect": "none", "interval": 0},
                "error": AUTH_INVALID,
                "successful": False,
            }
        if client is None:
            error = NOT_HANDSHAKEN if "clientId" not in message else UNKNOWN_CLIENT
            return None, reply | {
                "advice": {"reconnect": "handshake", "interval": 0},
                "error": error,
                "successful": False,
            }
        client.last_seen = time.monotonic()
        return client, reply

    def _subscribe(self, message: dict[str, Any], user_id: str | None) -> dict[str, Any]:
        client, reply = self._check(message, SUBSCRIBE, user_id)
        if client is None:
            return reply
        channel = message.get("subscription")
        if not isinstance(channel, str) or not self._channel_exists(channel):
            return reply | {"error": unknown_channel_error(str(channel)), "successful": False}
        replay = -1
        ext = message.get("ext")
        if isinstance(ext, dict) and "replay" in ext:
            replay_map = ext["replay"]
            if not isinstance(replay_map, dict) or channel not in replay_map:
                shown = replay_map if isinstance(replay_map, dict) else {}
                return reply | {"error": replay_map_error(channel, shown), "successful": False}
            replay = replay_map[channel]
        cursor = self._cursor_for(channel, replay)
        if cursor is None:
            return reply | {"error": invalid_replay_error(replay), "successful": False}
        client.cursors[channel] = cursor
        self._subscribers.setdefault(channel, set()).add(client.client_id)
        if client.held is not None and not client.held.done() and self._bus.has_after(channel, cursor):
            client.held.set_result(_EVENTS)  # replayed events go out on the connect already held
        return reply | {"successful": True}

    def _cursor_for(self, channel: str, replay: object) -> int | None:
        if isinstance(replay, bool) or not isinstance(replay, int):
            return None
        if replay == -1:
            return self._bus.last_id(channel)
        if replay == -2:
            return 0
        if replay >= 0 and self._bus.is_valid_replay(channel, replay):
            return replay
        return None

    def _unsubscribe(self, message: dict[str, Any], user_id: str | None) -> dict[str, Any]:
        client, reply = self._check(message, UNSUBSCRIBE, user_id)
        if client is None:
            return reply
        channel = message.get("subscription")
        client.cursors.pop(str(channel), None)
        self._subscribers.get(str(channel), set()).discard(client.client_id)
        return reply | {"successful": True}

    def _disconnect(self, message: dict[str, Any], user_id: str | None) -> dict[str, Any]:
        client, reply = self._check(message, DISCONNECT, user_id)
        if client is None:
            return reply
        self._drop(client)
        if client.held is not None and not client.held.done():
            client.held.set_result(_REPLACED)
        return reply | {"successful": True}

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.client_id, None)
        for channel in client.cursors:
            self._subscribers.get(channel, set()).discard(client.client_id)

    async def _connect(
        self, message: dict[str, Any], user_id: str | None, alive: Callable[[], bool] = lambda: True
    ) -> tuple[dict[str, Any], list[str]] | None:
        client, reply = self._check(message, CONNECT, user_id)
        if client is None:
            return reply, []
        connection_type = message.get("connectionType", "long-polling")
        if connection_type != "long-polling":
            return reply | {
                "error": f"400::Invalid connection type {{{connection_type}}}",
                "successful": False,
            }, []

        if not client.connected:
            client.connected = True
            client.advice_due = False
            return reply | {"advice": self._advice(), "successful": True}, self._collect(client)

        timeout_ms = self.settings.timeout_ms
        advice = message.get("advice")
        asked = advice.get("timeout") if isinstance(advice, dict) else None
        if isinstance(asked, int | float) and not isinstance(asked, bool) and math.isfinite(asked):
            timeout_ms = max(0, min(timeout_ms, int(asked)))

        events = self._collect(client)
        if not events and timeout_ms > 0:
            outcome = await self._hold(client, timeout_ms / 1000)
            if outcome == _CUT or not alive():
                # A client that abandoned its connect never reads this reply: leave the events for the
                # connect it sends next instead of advancing its cursors into a dead socket.
                return None
            if outcome == _FORGOTTEN:
                return _base(message, CONNECT) | {
                    "advice": {"reconnect": "handshake", "interval": 0},
                    "error": UNKNOWN_CLIENT,
                    "successful": False,
                }, []
            if outcome == _EVENTS:
                events = self._collect(client)
        client.last_seen = time.monotonic()
        if client.advice_due:
            client.advice_due = False
            reply["advice"] = self._advice()
        return reply | {"successful": True}, events

    async def _hold(self, client: _Client, timeout_s: float) -> str:
        if client.held is not None and not client.held.done():
            client.held.set_result(_REPLACED)  # the newest connect takes over; the old one ends empty
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        outcome = "timeout"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            held: asyncio.Future[str] = loop.create_future()
            client.held = held
            try:
                outcome = await asyncio.wait_for(held, remaining)
            except TimeoutError:
                outcome = "timeout"
                break
            finally:
                if client.held is held:
                    client.held = None
            # A wake-up can race a reply that already took the events: hold on until there is something.
            if outcome != _EVENTS or self._has_events(client):
                break
        return outcome

    def _has_events(self, client: _Client) -> bool:
        return any(self._bus.has_after(ch, cursor) for ch, cursor in client.cursors.items())

    def _collect(self, client: _Client) -> list[str]:
        budget = self.settings.max_batch
        out: list[str] = []
        for channel, cursor in client.cursors.items():
            if budget <= 0:
                break
            items = self._bus.after(channel, cursor, budget)
            if items:
                client.cursors[channel] = items[-1][0]
                out.extend(text for _, text in items)
                budget -= len(items)
        return out

    def _sweep_expired(self) -> None:
        """Forget clients that stopped reconnecting (Salesforce: within 40 s of a reply)."""
        now = time.monotonic()
        if now - self._last_sweep < min(1.0, self.settings.client_expiry_s / 2):
            return
        self._last_sweep = now
        limit = self.settings.client_expiry_s
        for client in list(self._clients.values()):
            held = client.held is not None and not client.held.done()
            if not held and now - client.last_seen > limit:
                self._drop(client)


def _alive(request: web.Request) -> Callable[[], bool]:
    def alive() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return alive


def _index_of_connect(messages: list[dict[str, Any]]) -> int:
    return next(i for i, m in enumerate(messages) if m.get("channel") == CONNECT)


def _base(message: dict[str, Any], channel: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"channel": channel}
    if "id" in message:
        reply["id"] = message["id"]  # echoed as the same JSON value: clients match replies on it
    return reply


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body (chunked or not), or None when it exceeds `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        return None
    while not request.content.at_eof():
        more = await request.content.read(limit + 1 - len(data))
        if not more:
            break
        data += more
        if len(data) > limit:
            return None
    return data


def _json_response(payload: list[dict[str, Any]], status: int) -> web.Response:
    return web.Response(body=dumps(payload), status=status, content_type="application/json")
