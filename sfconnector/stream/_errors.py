"""Errors of the streaming client, translated from aiosfstream-ng/aiocometd-ng where they enter.

SfconnectorError
└── StreamError                 retryable   close the client, open a new one (same checkpoints)
    ├── StreamDisconnected      yes         the server ended the session or the network stayed down
    ├── SubscriptionRefused     no          unknown channel, missing permission: a config problem
    └── ReplayIdExpired         no          the checkpoint is past retention: reconcile, then fall back
"""

from __future__ import annotations

from sfconnector.errors import SfconnectorError


class StreamError(SfconnectorError):
    """The streaming connection failed; a fresh client from the durable checkpoints recovers."""

    retryable = True


class StreamDisconnected(StreamError):
    """The server ended the session (`reconnect: none`) or the connection stayed down too long."""


class SubscriptionRefused(StreamError):
    """Salesforce refused a subscription for a reason retrying will not fix."""

    retryable = False

    def __init__(self, channel: str, error: str) -> None:
        self.channel = channel
        self.error = error
        super().__init__(f"subscription to {channel} refused: {error}")


class ReplayIdExpired(SubscriptionRefused):
    """The stored replay id is outside the retention window: events may have been missed."""
