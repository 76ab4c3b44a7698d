"""Retained events per channel: opaque increasing replay ids, retention by time and by count.

Events are stored pre-serialised and shared between channels (a CDC change goes to its entity channel and to
/data/ChangeEvents): a message is `head + replayId + mid + channel + "}"`. Retained bodies are deflated with a
preset dictionary per event family (the first body of that family): change events of one object differ in a
few values only, so a retained event costs ~100-200 bytes instead of ~900, and a million stay affordable.

All mutation happens under one lock because the org may commit from a worker thread.
"""

from __future__ import annotations

import json
import random
import threading
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

# Compacting the arrays is O(n); doing it only once half of them is dead keeps eviction amortised O(1).
_COMPACT_AT = 4096


@dataclass(frozen=True, slots=True)
class EventBody:
    """A serialised message split around its replay id; `mid` runs up to `"channel":`."""

    head: str
    mid: str

    def render(self, replay_id: int, channel_json: str) -> str:
        return f"{self.head}{replay_id}{self.mid}{channel_json}}}"


# Deflate parameters: a 2 KB window holds the dictionary; level 6 costs ~15 us per event, inflating ~2 us.
_WBITS, _LEVEL, _MEM_LEVEL = -11, 6, 4
_FAMILY_PREFIX = 40  # '{"data":{"schema":"<schema id>...' names the object or event type


@dataclass(frozen=True, slots=True)
class _Packed:
    data: bytes
    zdict: bytes

    def unpack(self) -> EventBody:
        inflater = zlib.decompressobj(_WBITS, self.zdict)
        head, _, mid = (inflater.decompress(self.data) + inflater.flush()).decode().partition("\x00")
        return EventBody(head, mid)


class _Codec:
    """Packs bodies with one preset dictionary per family; families are few (objects, events, topics/day)."""

    def __init__(self) -> None:
        self._dicts: dict[str, bytes] = {}

    def pack(self, body: EventBody) -> _Packed:
        # JSON escapes control characters, so NUL cannot occur inside head or mid.
        raw = (body.head + "\x00" + body.mid).encode()
        family = body.head[:_FAMILY_PREFIX]
        zdict = self._dicts.get(family)
        if zdict is None:
            zdict = self._dicts[family] = raw[-(1 << -_WBITS) :]
        deflater = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, zdict)
        return _Packed(deflater.compress(raw) + deflater.flush(), zdict)


class _Ring:
    """A channel's retained events, oldest first, bounded by count."""

    __slots__ = ("bodies", "ids", "start", "times")

    def __init__(self) -> None:
        self.ids = array("q")
        self.times = array("q")
        self.bodies: list[_Packed | None] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.ids) - self.start

    def append(self, replay_id: int, time_ms: int, body: _Packed) -> None:
        self.ids.append(replay_id)
        self.times.append(time_ms)
        self.bodies.append(body)

    def drop_first(self, count: int) -> int:
        count = max(0, min(count, len(self)))
        for i in range(self.start, self.start + count):
            self.bodies[i] = None  # release the string now, not at the next compaction
        self.start += count
        if self.start >= _COMPACT_AT and self.start * 2 >= len(self.ids):
            del self.ids[: self.start]
            del self.times[: self.start]
            del self.bodies[: self.start]
            self.start = 0
        return count

    def count_before_time(self, cutoff_ms: int) -> int:
        n = 0
        times, end = self.times, len(self.times)
        i = self.start
        while i < end and times[i] < cutoff_ms:
            i += 1
            n += 1
        return n

    def count_before_id(self, replay_id: int) -> int:
        return bisect_right(self.ids, replay_id - 1, self.start) - self.start

    def oldest_id(self) -> int | None:
        return self.ids[self.start] if len(self) else None

    def index_after(self, replay_id: int) -> int:
        return bisect_right(self.ids, replay_id, self.start)


@dataclass
class _Channel:
    name: str
    channel_json: str
    retention_ms: int
    ring: _Ring
    last_id: int = 0


class EventBus:
    """Publishes events to channels and serves them back by replay id."""

    def __init__(
        self,
        clock_ms: Callable[[], int],
        retention_ms: Callable[[str], int],
        max_per_channel: int,
        rng: random.Random | None = None,
    ) -> None:
        self._clock_ms = clock_ms
        self._retention_ms = retention_ms
        self._max_per_channel = max(1, max_per_channel)
        self._rng = rng or random.Random()
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[set[str]], None]] = []
        self._codec = _Codec()

    def add_listener(self, listener: Callable[[set[str]], None]) -> None:
        """Called (outside the lock) with the channels that got events after each publish batch."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[set[str]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _channel(self, name: str) -> _Channel:
        ch = self._channels.get(name)
        if ch is None:
            ch = _Channel(name, json.dumps(name), self._retention_ms(name), _Ring())
            self._channels[name] = ch
        return ch

    def publish_many(self, items: list[tuple[str, EventBody]]) -> list[int]:
        """Append events in order; returns their replay ids. Listeners hear once per batch."""
        now = self._clock_ms()
        ids: list[int] = []
        touched: set[str] = set()
        packed: dict[int, _Packed] = {}  # a body shared by two channels is packed once
        for _, event in items:
            if id(event) not in packed:
                packed[id(event)] = self._codec.pack(event)
        with self._lock:
            for name, event in items:
                stored = packed[id(event)]
                ch = self._channel(name)
                # Opaque and increasing, deliberately not contiguous so clients cannot compute ids.
                ch.last_id += self._rng.randint(1, 3)
                ch.ring.append(ch.last_id, now, stored)
                overflow = len(ch.ring) - self._max_per_channel
                if overflow > 0:
                    ch.ring.drop_first(overflow)
                ids.append(ch.last_id)
                touched.add(name)
            for name in touched:
                self._trim_time(self._channels[name], now)
        for listener in self._listeners:
            listener(touched)
        return ids

    def _trim_time(self, ch: _Channel, now_ms: int) -> None:
        ch.ring.drop_first(ch.ring.count_before_time(now_ms - ch.retention_ms))

    def last_id(self, name: str) -> int:
        """The newest id ever issued on the channel (0 if none): the cursor for "new events only"."""
        with self._lock:
            ch = self._channels.get(name)
            return ch.last_id if ch else 0

    def is_valid_replay(self, name: str, replay_id: int) -> bool:
        """True when `replay_id` is inside the retained window of the channel."""
        with self._lock:
            ch = self._channels.get(name)
            if ch is None:
                return False
            self._trim_time(ch, self._clock_ms())
            oldest = ch.ring.oldest_id()
            return oldest is not None and oldest <= replay_id <= ch.last_id

    def after(self, name: str, replay_id: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` retained events with ids greater than `replay_id`, rendered, oldest first."""
        with self._lock:
            ch = self._channels.get(name)
            if ch is None or limit <= 0:
                return []
            self._trim_time(ch, self._clock_ms())
            ring = ch.ring
            i = ring.index_after(replay_id)
            end = min(len(ring.ids), i + limit)
            out = []
            for j in range(i, end):
                body = ring.bodies[j]
                if body is not None:
                    rid = ring.ids[j]
                    out.append((rid, body.unpack().render(rid, ch.channel_json)))
            return out

    def has_after(self, name: str, replay_id: int) -> bool:
        with self._lock:
            ch = self._channels.get(name)
            return ch is not None and ch.last_id > replay_id and len(ch.ring) > 0

    def expire_before_id(self, replay_id: int, channel: str | None = None) -> int:
        """Drop retained events with ids below `replay_id` (on one channel or all)."""
        with self._lock:
            chans = [self._channels[channel]] if channel in self._channels else []
            if channel is None:
                chans = list(self._channels.values())
            return sum(ch.ring.drop_first(ch.ring.count_before_id(replay_id)) for ch in chans)

    def expire_before_time(self, cutoff_ms: int, channel: str | None = None) -> int:
        """Drop retained events published before `cutoff_ms` (epoch ms of the org's clock)."""
        with self._lock:
            chans = [self._channels[channel]] if channel in self._channels else []
            if channel is None:
                chans = list(self._channels.values())
            return sum(ch.ring.drop_first(ch.ring.count_before_time(cutoff_ms)) for ch in chans)

    def clear(self) -> None:
        """Drop every retained event; ids keep increasing so old checkpoints stay invalid, not reused."""
        with self._lock:
            for ch in self._channels.values():
                ch.ring.drop_first(len(ch.ring))

    def retained_count(self, name: str | None = None) -> int:
        with self._lock:
            if name is not None:
                ch = self._channels.get(name)
                return len(ch.ring) if ch else 0
            return sum(len(ch.ring) for ch in self._channels.values())
