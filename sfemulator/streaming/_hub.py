"""Wiring: org commits -> event bus -> Bayeux clients, plus the /_emulator/streaming control routes."""

from __future__ import annotations

import logging
import random
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from sfemulator.edge import read_body
from sfemulator.streaming import _pushtopic
from sfemulator.streaming._bayeux import BayeuxServer, HubSettings
from sfemulator.streaming._bus import EventBus
from sfemulator.streaming._events import (
    ALL_CHANGE_EVENTS,
    cdc_channel,
    change_event_header,
    commit_events,
    header_only_body,
    is_platform_event,
)
from sfemulator.wire import JsonError, parse_json

log = logging.getLogger("sfemulator.streaming")

HOUR_MS = 3_600_000
# Objects that exist in the org but are not enabled for Change Data Capture.
NOT_CDC_ENABLED = frozenset(
    {"PushTopic", "Group", "GroupMember", "AssignmentRule", "Organization", "Profile", "RecordType"}
)
GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"})


@dataclass(frozen=True)
class StreamingSettings:
    """Tunables, read from the emulator's settings object or mapping (names prefixed `streaming_`)."""

    timeout_ms: int = 110_000
    client_expiry_s: float = 40.0
    max_batch: int = 1000
    retention_hours_cdc: float = 72.0  # CDC and platform events
    retention_hours_topic: float = 24.0  # PushTopic and generic
    max_events_per_channel: int = 1_000_000

    @classmethod
    def from_any(cls, settings: Any) -> StreamingSettings:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            key = f"streaming_{name}"
            value = settings.get(key) if isinstance(settings, Mapping) else getattr(settings, key, None)
            if value is not None:
                values[name] = value
        return cls(**values)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class _OrgEvents:
    """The event log of one org: lives as long as the org, across server restarts."""

    def __init__(self, org: Any, settings: StreamingSettings, rng: random.Random | None = None) -> None:
        self.org = org
        cdc_ms = int(settings.retention_hours_cdc * HOUR_MS)
        topic_ms = int(settings.retention_hours_topic * HOUR_MS)
        self.bus = EventBus(
            clock_ms=lambda: _epoch_ms(org.clock()),
            retention_ms=lambda ch: topic_ms if ch.startswith(("/topic/", "/u/")) else cdc_ms,
            max_per_channel=settings.max_events_per_channel,
            rng=rng,
        )
        self.topics = _pushtopic.PushTopics(org)
        org.add_commit_listener(self.on_commit)
        add_reset_listener = getattr(org, "add_reset_listener", None)
        if add_reset_listener is not None:
            add_reset_listener(self.on_reset)

    def on_reset(self) -> None:
        """A reset org has no history: drop retained events (ids keep increasing) and re-read PushTopics."""
        self.bus.clear()
        self.topics.reload()

    def on_commit(self, commit: Any) -> None:
        items = commit_events(commit, NOT_CDC_ENABLED)
        try:
            items.extend(self.topics.events_for(commit))
        except Exception:  # a bug in topic matching must not cost the transaction its change events
            log.exception("streaming.pushtopic_events_failed")
        if items:
            self.publish(items)

    def publish(self, items: list[Any]) -> None:
        self.bus.publish_many(items)
        counts = self.org.stats.events_by_channel
        for channel, _ in items:
            counts[channel] = counts.get(channel, 0) + 1


_EVENT_LOGS: weakref.WeakKeyDictionary[Any, _OrgEvents] = weakref.WeakKeyDictionary()


def _events_of(org: Any, settings: StreamingSettings) -> _OrgEvents:
    log = _EVENT_LOGS.get(org)
    if log is None:
        log = _EVENT_LOGS[org] = _OrgEvents(org, settings)
    return log


class StreamingHub:
    """One server's streaming endpoint over an org's event log."""

    def __init__(self, org: Any, settings: StreamingSettings) -> None:
        self.org = org
        self.settings = settings
        self.events = _events_of(org, settings)
        self.bus = self.events.bus
        self.server = BayeuxServer(
            self.bus,
            org.authenticate,
            self.channel_exists,
            HubSettings(settings.timeout_ms, settings.client_expiry_s, settings.max_batch),
        )
        self.bus.add_listener(self.server.on_published)

    def close(self) -> None:
        """Detach from the org's event log (the server is going away; the log stays)."""
        self.bus.remove_listener(self.server.on_published)
        self.server.forget_clients()

    # --- channels --------------------------------------------------------------------------------

    def _schema_object(self, name: str) -> Any:
        schema = getattr(self.org, "schema", None)
        return schema.get(name) if schema is not None else None

    def _entity_for_cdc_channel(self, channel: str) -> str | None:
        base = channel.removeprefix("/data/").removesuffix("ChangeEvent")
        for entity in (base, base + "c"):
            obj = self._schema_object(entity)
            enabled = obj is not None and obj.name not in NOT_CDC_ENABLED and not is_platform_event(obj.name)
            if enabled and cdc_channel(obj.name) == channel:
                return str(obj.name)
        return None

    def channel_exists(self, channel: str) -> bool:
        if channel == ALL_CHANGE_EVENTS:
            return True
        if channel.startswith("/data/") and channel.endswith("ChangeEvent"):
            return self._entity_for_cdc_channel(channel) is not None
        if channel.startswith("/event/"):
            obj = self._schema_object(channel.removeprefix("/event/"))
            return obj is not None and is_platform_event(obj.name) and f"/event/{obj.name}" == channel
        if channel.startswith("/topic/"):
            return self.events.topics.exists(channel.removeprefix("/topic/"))
        return False

    # --- control routes --------------------------------------------------------------------------

    async def forget_clients(self, request: web.Request) -> web.Response:
        return web.json_response({"forgotten": self.server.forget_clients()})

    async def disconnect(self, request: web.Request) -> web.Response:
        return web.json_response({"dropped": self.server.cut_held_connections()})

    async def gap(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        entity = body.get("entity")
        change_type = body.get("changeType")
        if not isinstance(entity, str) or self._entity_for_cdc_channel(cdc_channel(entity)) is None:
            return _bad(f"entity must name a CDC-enabled object, got {entity!r}")
        if change_type not in GAP_TYPES | {"GAP_OVERFLOW"}:
            return _bad(f"changeType must be one of {sorted(GAP_TYPES | {'GAP_OVERFLOW'})}")
        record_ids = body.get("recordIds", [])
        if change_type == "GAP_OVERFLOW":
            record_ids = []
        elif (
            not isinstance(record_ids, list)
            or not record_ids
            or not all(isinstance(r, str) for r in record_ids)
        ):
            return _bad("recordIds must be a non-empty list of record ids for GAP_* events")
        now_ms = _epoch_ms(self.org.clock())
        commit = _GapCommit(
            transaction_key=str(uuid.uuid4()),
            commit_user=str(body.get("commitUser") or _default_user(self.org)),
            commit_timestamp_ms=now_ms,
            commit_number=now_ms * 1000 + random.randint(0, 999),
        )
        header = change_event_header(
            commit,  # type: ignore[arg-type]
            entity=entity,
            record_ids=record_ids,
            change_type=change_type,
            sequence_number=1,
            changed_fields=None,
        )
        event = header_only_body(header, entity)
        self.events.publish([(cdc_channel(entity), event), (ALL_CHANGE_EVENTS, event)])
        return web.json_response({"published": 2, "changeType": change_type, "recordIds": record_ids})

    async def expire(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        channel = body.get("channel")
        if channel is not None and not isinstance(channel, str):
            return _bad("channel must be a string")
        if "before_replay_id" in body:
            replay_id = body["before_replay_id"]
            if isinstance(replay_id, bool) or not isinstance(replay_id, int):
                return _bad("before_replay_id must be an integer")
            return web.json_response({"dropped": self.bus.expire_before_id(replay_id, channel)})
        if "before" in body:
            try:
                moment = datetime.fromisoformat(str(body["before"]).replace("Z", "+00:00"))
            except ValueError:
                return _bad("before must be an ISO 8601 date-time")
            if moment.tzinfo is None:
                return _bad("before must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
            return web.json_response({"dropped": self.bus.expire_before_time(_epoch_ms(moment), channel)})
        return _bad('give "before_replay_id" (with an optional "channel") or "before" (ISO time)')


@dataclass(frozen=True)
class _GapCommit:
    transaction_key: str
    commit_user: str
    commit_timestamp_ms: int
    commit_number: int
    api: str | None = None
    api_version: str | None = None
    client: str | None = None


def _default_user(org: Any) -> str:
    return str(getattr(org, "integration_user_id", None) or "005000000000001AAA")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = parse_json(await read_body(request))
    except JsonError:
        return {}
    return body if isinstance(body, dict) else {}


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def install(app: web.Application, org: Any, settings: Any = None) -> StreamingHub:
    """Serve CometD at /cometd/{version} and the streaming control routes on `app`."""
    hub = StreamingHub(org, StreamingSettings.from_any(settings))
    server = hub.server
    app.router.add_post("/cometd/{version}", server.handle_post)
    app.router.add_get("/cometd/{version}", server.handle_get)
    app.router.add_post("/cometd", server.handle_no_version)
    app.router.add_post("/cometd/", server.handle_no_version)
    app.router.add_post("/_emulator/streaming/forget-clients", hub.forget_clients)
    app.router.add_post("/_emulator/streaming/gap", hub.gap)
    app.router.add_post("/_emulator/streaming/expire", hub.expire)
    app.router.add_post("/_emulator/streaming/disconnect", hub.disconnect)

    async def _shutdown(_: web.Application) -> None:
        # Before aiohttp waits for in-flight handlers: held connects end as a stopping server ends them.
        hub.server.cut_held_connections()

    async def _cleanup(_: web.Application) -> None:
        hub.close()

    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return hub
