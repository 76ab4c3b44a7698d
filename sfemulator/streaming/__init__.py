"""The emulator's Streaming API: CometD long-polling with CDC, platform events, PushTopics and replay.

`install(app, org, settings)` adds `/cometd/{version}` and the `/_emulator/streaming/*` control routes to an
aiohttp application and returns the `StreamingHub`. Retained events belong to the org, not to the server, so
a server restarted on the same org forgets its clients (403::Unknown client) but still replays.
"""

from __future__ import annotations

from sfemulator.streaming._hub import StreamingHub, StreamingSettings, install

__all__ = ["StreamingHub", "StreamingSettings", "install"]
