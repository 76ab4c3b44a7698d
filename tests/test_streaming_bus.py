"""The retained-event store: replay ids, retention by count and time, and lossless packing of bodies."""

from __future__ import annotations

import itertools
import json
import random

from sfemulator.streaming._bus import EventBody, EventBus

CHANNEL = "/data/LeadChangeEvent"


def body(n: int, text: str = "plain") -> EventBody:
    payload = json.dumps({"LastName": f"{text}-{n}", "n": n})
    return EventBody('{"data":{"schema":"S","payload":' + payload + ',"event":{"replayId":', '}},"channel":')


def make_bus(now: list[int], max_per_channel: int = 1000, retention_ms: int = 3_600_000) -> EventBus:
    return EventBus(lambda: now[0], lambda channel: retention_ms, max_per_channel, random.Random(7))


def test_replay_ids_increase_per_channel_and_are_not_contiguous() -> None:
    bus = make_bus([0])
    ids = bus.publish_many([(CHANNEL, body(n)) for n in range(200)])
    steps = {b - a for a, b in itertools.pairwise(ids)}
    assert all(step >= 1 for step in steps) and steps != {1}
    assert bus.last_id(CHANNEL) == ids[-1]


def test_rendered_messages_survive_packing_exactly_unicode_included() -> None:
    bus = make_bus([0])
    originals = [body(n, text='Zoë ✓ \\u0000 "quoted"') for n in range(3)]
    ids = bus.publish_many([(CHANNEL, b) for b in originals])
    rendered = [text for _, text in bus.after(CHANNEL, 0, 10)]
    assert rendered == [b.render(i, json.dumps(CHANNEL)) for b, i in zip(originals, ids, strict=True)]
    assert json.loads(rendered[0])["data"]["payload"]["LastName"].startswith("Zoë ✓")


def test_retention_by_count_keeps_the_newest_and_invalidates_older_ids() -> None:
    bus = make_bus([0], max_per_channel=5)
    ids = bus.publish_many([(CHANNEL, body(n)) for n in range(8)])
    assert bus.retained_count(CHANNEL) == 5
    assert [rid for rid, _ in bus.after(CHANNEL, 0, 100)] == ids[3:]
    assert not bus.is_valid_replay(CHANNEL, ids[2]) and bus.is_valid_replay(CHANNEL, ids[3])


def test_retention_by_time_follows_the_clock() -> None:
    now = [0]
    bus = make_bus(now, retention_ms=1000)
    [old] = bus.publish_many([(CHANNEL, body(1))])
    now[0] = 900
    [young] = bus.publish_many([(CHANNEL, body(2))])
    now[0] = 1500
    assert not bus.is_valid_replay(CHANNEL, old) and bus.is_valid_replay(CHANNEL, young)
    assert [rid for rid, _ in bus.after(CHANNEL, 0, 10)] == [young]


def test_expire_by_id_and_time_and_clear_keep_ids_increasing() -> None:
    now = [0]
    bus = make_bus(now)
    ids = bus.publish_many([(CHANNEL, body(n)) for n in range(4)])
    assert bus.expire_before_id(ids[2], CHANNEL) == 2
    now[0] = 10
    bus.publish_many([(CHANNEL, body(9))])
    assert bus.expire_before_time(5) == 2
    bus.clear()
    assert bus.retained_count() == 0
    [after_clear] = bus.publish_many([(CHANNEL, body(10))])
    assert after_clear > ids[-1]


def test_compaction_after_many_evictions_keeps_order() -> None:
    bus = make_bus([0], max_per_channel=100)
    for start in range(0, 10_000, 500):
        bus.publish_many([(CHANNEL, body(n)) for n in range(start, start + 500)])
    kept = bus.after(CHANNEL, 0, 1000)
    assert len(kept) == 100
    assert [json.loads(text)["data"]["payload"]["n"] for _, text in kept] == list(range(9900, 10_000))
