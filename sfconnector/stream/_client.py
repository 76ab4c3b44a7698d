"""aiosfstream-ng's Client, fitted for the daemon (versions proven: aiosfstream-ng 0.7.5, aiocometd-ng 0.5.6).

What changes against the library, and why:
- tokens come from the daemon's token provider (`get_token(force_refresh)`), not a password POST to
  login.salesforce.com; every re-authentication the transport asks for (after a 401 or 403) forces a refresh;
- the CometD URL uses the configured API version, not the hard-coded 45.0;
- `_wait_connection_timeout` no longer passes `loop=` to `asyncio.wait_for` (Python 3.10+ rejects it, which
  made the first reconnect raise "Lost connection with the server" at once);
- TLS verification can use a private CA (the emulator's, or a corporate proxy's);
- replay ids come from the daemon's checkpoints and advance only through `mark_processed`;
- library errors are translated into `StreamError`s; a resubscription that failed silently after a
  re-handshake is raised from `receive()` instead of leaving the channel quietly unsubscribed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, cast

import aiosfstream_ng
from aiocometd_ng.constants import TransportState
from aiocometd_ng.typing import JsonObject
from aiosfstream_ng.auth import AuthenticatorBase
from aiosfstream_ng.client import ReplayMarkerStoragePolicy

from sfconnector.stream._errors import ReplayIdExpired, StreamDisconnected, StreamError, SubscriptionRefused
from sfconnector.stream._replay import NEW_EVENTS, CheckpointReplayStorage, is_replay_error

TokenSource = Callable[[bool], Awaitable[tuple[str, str]]]


class ProviderAuthenticator(AuthenticatorBase):
    """Takes (access_token, instance_url) from the daemon's token provider."""

    def __init__(self, get_token: TokenSource) -> None:
        super().__init__()
        self._get_token = get_token
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"  # never the token

    async def authenticate(self) -> None:
        # The first call opens the stream; any later one follows a 401/403 from the server.
        force = self.access_token is not None
        access_token, instance_url = await self._get_token(force)
        if force:
            self.refreshes += 1
        self.access_token = access_token
        self.instance_url = instance_url.rstrip("/")
        self.token_type = "Bearer"

    async def _authenticate(
        self,
    ) -> tuple[int, JsonObject]:  # pragma: no cover - authenticate() is overridden
        raise NotImplementedError


class StreamClient(aiosfstream_ng.Client):
    """A Streaming API client driven by the daemon's tokens and checkpoints."""

    def __init__(
        self,
        get_token: TokenSource,
        *,
        api_version: str = "59.0",
        replay_ids: Mapping[str, int] | None = None,
        default_replay: int = NEW_EVENTS,
        replay_fallback: aiosfstream_ng.ReplayOption | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        connection_timeout: float = 10.0,
        max_pending_count: int = 100,
    ) -> None:
        self.api_version = api_version
        self.checkpoints = CheckpointReplayStorage(replay_ids, default_replay)
        self.authenticator = ProviderAuthenticator(get_token)
        super().__init__(
            self.authenticator,
            replay=self.checkpoints,
            replay_fallback=replay_fallback,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
            connection_timeout=connection_timeout,
            max_pending_count=max_pending_count,
            loop=asyncio.get_running_loop(),
        )
        if ssl_context is None and ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=ca_file)
        self.ssl = ssl_context
        self._pushed_back: JsonObject | None = None
        # When a /meta/connect last came back successful (time.monotonic()), and how many did not: an idle
        # stream is alive only while its long-polls are answered (the daemon's watchdog reads these).
        self.last_connect_ok: float | None = None
        self.connects_failed = 0

    def get_cometd_url(self, instance_url: str) -> str:  # type: ignore[override]
        return f"{instance_url.rstrip('/')}/cometd/{self.api_version}"

    async def _wait_connection_timeout(self, timeout: int | float) -> None:
        """Return once the transport has failed to reconnect for `timeout` seconds."""
        transport = self._transport
        assert transport is not None
        while True:
            await transport.wait_for_state(TransportState.CONNECTING)
            try:
                await asyncio.wait_for(transport.wait_for_state(TransportState.CONNECTED), timeout)
            except TimeoutError:
                break

    async def _negotiate_transport(self) -> Any:
        transport = await super()._negotiate_transport()
        follow_advice = transport._connect_done  # type: ignore[attr-defined]

        def connect_done(future: asyncio.Future[JsonObject]) -> None:
            # A connect cancelled by close() has no advice to follow; the library would log a traceback.
            if not future.cancelled():
                answer = None if future.exception() is not None else future.result()
                if isinstance(answer, dict) and answer.get("successful", True):
                    self.last_connect_ok = time.monotonic()
                else:
                    self.connects_failed += 1
                follow_advice(future)

        transport._connect_done = connect_done  # type: ignore[attr-defined]
        return transport

    # --- the daemon's surface ---------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await super().open()
        except aiosfstream_ng.exceptions.AiosfstreamException as exc:
            raise _translate(exc) from exc

    async def subscribe(self, channel: str) -> None:
        try:
            await super().subscribe(channel)
        except aiosfstream_ng.exceptions.ServerError as exc:
            error = str(exc.error or exc)
            if is_replay_error(error):
                raise ReplayIdExpired(channel, error) from exc
            raise SubscriptionRefused(channel, error) from exc
        except aiosfstream_ng.exceptions.AiosfstreamException as exc:
            raise _translate(exc) from exc

    async def receive(self) -> JsonObject:
        """The next event; raises StreamError when the session is gone or a resubscription failed."""
        self._raise_lost()
        if self._pushed_back is not None:
            message, self._pushed_back = self._pushed_back, None
            return message
        get = asyncio.ensure_future(super().receive())
        lost = asyncio.ensure_future(self.checkpoints.lost_event.wait())
        try:
            await asyncio.wait({get, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not get.done():
                get.cancel()
                with suppress(asyncio.CancelledError, aiosfstream_ng.exceptions.AiosfstreamException):
                    await get
        if get.done() and not get.cancelled():
            try:
                message = get.result()
            except aiosfstream_ng.exceptions.AiosfstreamException as exc:
                raise _translate(exc) from exc
            if self.checkpoints.lost:
                self._pushed_back = message
                self._raise_lost()
            return message
        self._raise_lost()
        raise StreamDisconnected("receive ended without a message")  # pragma: no cover - defensive

    def _raise_lost(self) -> None:
        if self.checkpoints.lost:
            channel, error = self.checkpoints.lost[0]
            if is_replay_error(error):
                raise ReplayIdExpired(channel, error)
            raise SubscriptionRefused(channel, error)

    async def mark_processed(self, message: JsonObject) -> None:
        """The event is durably handled: a later resubscription starts after it."""
        await self.checkpoints.extract_replay_id(message)

    def is_connected(self) -> bool:
        """True while the long-polling transport is connected (its /meta/connect round-trips succeed)."""
        transport = self._transport
        return transport is not None and transport.state == TransportState.CONNECTED and not self.closed

    def replay_ids(self) -> dict[str, int]:
        return self.checkpoints.replay_ids()

    async def close(self) -> None:
        with suppress(aiosfstream_ng.exceptions.AiosfstreamException):
            await super().close()

    async def __aenter__(self) -> StreamClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def _translate(exc: Exception) -> StreamError:
    if isinstance(exc, aiosfstream_ng.exceptions.ServerError):
        return StreamDisconnected(f"server ended the session: {exc.error or exc}")
    if isinstance(exc, aiosfstream_ng.exceptions.TransportTimeoutError):
        return StreamDisconnected("connection to the server lost and not re-established in time")
    return cast(StreamError, StreamDisconnected(f"streaming failed: {exc}"))
