"""The daemon's Salesforce Streaming API client (CometD long-polling via aiosfstream-ng).

    async with StreamClient(tokens.get_token, api_version="59.0", replay_ids=checkpoints, ca_file=ca) as client:
        await client.subscribe("/data/LeadChangeEvent")
        while True:
            message = await client.receive()
            ...                                  # make the decision durable
            await client.mark_processed(message)

Supervision (the routing issue) closes the client on any `StreamError` and opens a new one from the durable
checkpoints; `ReplayIdExpired` means reconcile first, then subscribe with -1 or -2. See docs/streaming.md.
"""

from sfconnector.stream._client import ProviderAuthenticator, StreamClient, TokenSource
from sfconnector.stream._errors import ReplayIdExpired, StreamDisconnected, StreamError, SubscriptionRefused
from sfconnector.stream._replay import ALL_EVENTS, NEW_EVENTS, CheckpointReplayStorage

__all__ = [
    "ALL_EVENTS",
    "NEW_EVENTS",
    "CheckpointReplayStorage",
    "ProviderAuthenticator",
    "ReplayIdExpired",
    "StreamClient",
    "StreamDisconnected",
    "StreamError",
    "SubscriptionRefused",
    "TokenSource",
]
