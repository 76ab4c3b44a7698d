"""Replay ids for (re)subscribing come from the daemon's durable checkpoints, never from what was merely received.

aiosfstream's own storages either forget everything (a constant -1) or advance when a message is received
(AUTOMATIC). Here the id for a channel moves only when the daemon says an event is processed, so a
re-handshake resubscribes from the last processed event and a crash replays the rest.

The storage also watches replies: a resubscription that the transport sends by itself after a re-handshake
(batched with /meta/connect) fails silently in aiocometd; it is recorded here so the client can raise it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiocometd_ng.typing import Headers, JsonObject, Payload
from aiosfstream_ng.replay import ReplayMarker, ReplayMarkerStorage

NEW_EVENTS = -1
ALL_EVENTS = -2


class CheckpointReplayStorage(ReplayMarkerStorage):
    """Per-channel replay ids seeded from checkpoints and advanced by `mark_processed`."""

    def __init__(self, replay_ids: Mapping[str, int] | None = None, default: int = NEW_EVENTS) -> None:
        super().__init__()
        self.default = default
        self._ids: dict[str, int] = dict(replay_ids or {})
        self.lost: list[tuple[str, str]] = []  # (channel, error) of failed automatic resubscriptions
        self.lost_event = asyncio.Event()

    def replay_ids(self) -> dict[str, int]:
        return dict(self._ids)

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        replay_id = self._ids.get(subscription)
        return None if replay_id is None else ReplayMarker(date="", replay_id=replay_id)

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        self._ids[subscription] = replay_marker.replay_id

    async def get_replay_id(self, subscription: str) -> int:
        return self._ids.get(subscription, self.default)

    async def extract_replay_id(self, message: JsonObject) -> None:
        # Events are marked in the order they were processed; no date comparison (CDC dates are epoch
        # strings, PushTopic dates ISO strings: aiosfstream's string compare is not an order for them).
        self._ids[message["channel"]] = int(message["data"]["event"]["replayId"])

    def set(self, channel: str, replay_id: int) -> None:
        """Resubscribe `channel` from `replay_id` (a committed checkpoint, or -1/-2)."""
        self._ids[channel] = replay_id

    def forget(self, channel: str) -> None:
        """Drop the stored id so the next subscribe uses the default (after a reconcile)."""
        self._ids.pop(channel, None)

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        if not any(m.get("channel") == "/meta/connect" for m in payload):
            return  # an explicit subscribe: Client.subscribe sees and raises its own failure
        for message in payload:
            if message.get("channel") == "/meta/subscribe" and message.get("successful") is False:
                self.lost.append((str(message.get("subscription")), str(message.get("error"))))
                self.lost_event.set()


def is_replay_error(error: Any) -> bool:
    text = str(error or "")
    return text.startswith("400::") and "replayId" in text
