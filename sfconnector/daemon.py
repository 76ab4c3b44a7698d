"""The daemon: stream in, decide in batches, commit decisions with the checkpoint, drain the outbox out.

    stream (supervised) --> bounded queue --> batches --> decisions + checkpoint (one SQLite tx) --> outbox
                                                                                         writer --> Salesforce

Lifecycle: `run()` owns every task and awaits them. The first SIGTERM stops intake, finishes the batch in
hand and drains the outbox (bounded by the drain limit, which follows the unit's stop timeout:
`sfconnector.systemd.drain_limit`); a second one cancels. A crash at any instant loses nothing: the stream
re-subscribes from the last *committed* replay id and every write is idempotent.

SIGHUP reloads the config file: the new one is checked in full and taken between batches, or refused with
the reasons logged while the old one keeps running (`sfconnector.reload`). systemd hears RELOADING=1, then
READY=1 either way.

The systemd watchdog is fed only by real progress: a batch committed, an outbox write done, or, when there
is nothing to do, a stream whose last long-poll was answered. A daemon whose batches keep failing, whose
outbox does not drain, or whose stream has gone silent stops pinging, and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sfconnector import alerts as alert_names
from sfconnector.alerts import Alerts, api_left_share, checkpoints_too_old, retention_seconds
from sfconnector.clock import Clock, system_clock
from sfconnector.config import Config, load_config
from sfconnector.errors import ConfigError, SfconnectorError
from sfconnector.events import event_time_ms
from sfconnector.health import HealthServer, HealthState, problems
from sfconnector.logging import add_event_listener, configure_logging
from sfconnector.metrics import Metrics
from sfconnector.pipeline.batch import BatchProcessor, ProcessedBatch
from sfconnector.reconcile import reconciler_for, sweep_since
from sfconnector.reload import changed_sections, needs_restart
from sfconnector.retry import backoff_seconds
from sfconnector.salesforce import SalesforceClient, TokenProvider
from sfconnector.state import DecidedBatch, NewDeadLetter, StateStatus, StateStore
from sfconnector.stream import (
    ALL_EVENTS,
    NEW_EVENTS,
    ReplayIdExpired,
    StreamClient,
    StreamError,
    SubscriptionRefused,
)
from sfconnector.systemd import Notifier, drain_limit
from sfconnector.wiring import connect, decision_rules, org_lookups
from sfconnector.writer import OutboxWriter

log = structlog.get_logger("sfconnector.daemon")

_STOP = object()
PRUNE_EVERY_S = 6 * 3600.0
KEEP_HISTORY_S = 30 * 86400.0
OBSERVE_EVERY_S = 5.0  # metrics read from the state and the alerts on them...
OBSERVE_SOON_S = 1.0  # ...or sooner after a commit or a drain changed them
# Salesforce holds an idle long-poll up to 110 s: a stream whose last /meta/connect came back longer ago than
# that (and a margin) is not answering, however connected its transport thinks it is.
LONG_POLL_S = 110.0
STREAM_SILENT_AFTER_S = LONG_POLL_S + 30.0
OWNER_LATENCY_TRACKED = 50_000  # leads whose owner change is awaited for the latency histogram


class Daemon:
    """One connector process for one org."""

    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        drain_timeout: float | None = None,
        tokens: TokenProvider | None = None,
        client: SalesforceClient | None = None,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        env = os.environ if environ is None else environ
        self.notifier = notifier or Notifier(env)
        self.metrics = Metrics()
        self.health = HealthState(unhealthy_after=config.health.unhealthy_after_seconds)
        self.alerts = Alerts(self.metrics)
        if drain_timeout is not None:
            self._drain_timeout, self._drain_source = drain_timeout, "Daemon(drain_timeout=)"
        else:
            self._drain_timeout, self._drain_source = drain_limit(
                config.writer.drain_timeout_seconds, env, request_timeout=config.salesforce.timeout_seconds
            )
        if tokens is None or client is None:
            tokens, client = connect(config, clock=clock)
        self.tokens, self.client = tokens, client
        self.state = StateStore.open(config.state.path, clock=clock)
        for key in self.state.quarantine_interrupted_sends():
            log.warning("outbox.email_uncertain", key=key)
        self.processor = self._processor_for(config)
        self.writer = OutboxWriter(
            self.state,
            client,
            batch_size=config.writer.batch_size,
            max_attempts=config.writer.max_retries,
            backoff_initial_s=config.writer.retry_initial_seconds,
            backoff_max_s=config.writer.retry_max_seconds,
            use_composite=config.writer.use_composite,
            clock=clock,
        )
        self._retention = {c: retention_seconds(c) for c in config.stream.channels}
        self.metrics.declare_channels(config.stream.channels, self._retention)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, config.stream.max_in_flight))
        self._stopping = asyncio.Event()
        self._stop_requested_at: float | None = None
        self._intake_done = asyncio.Event()
        self._outbox_wakeup = asyncio.Event()
        self._draining = asyncio.Event()
        self._drain_expired = asyncio.Event()
        self._reload_wakeup = asyncio.Event()
        self._decide_lock = asyncio.Lock()  # held while a batch is decided and committed; a reload waits
        self._ready_sent = False
        self.reconcile_requested: list[str] = []
        # Channels started at "latest" that have no checkpoint yet: when we first saw them live (epoch ms).
        # A resubscription must not use -1 again (events published during the gap would be lost): it uses -2
        # and drops what happened before this moment.
        self._live_since: dict[str, int] = {}
        self._stream_client: StreamClient | None = None
        self._subscribed_at: float | None = None
        self._connects_failed_seen = 0
        self._last_usage_reading = ""
        self._reconcile_wakeup = asyncio.Event()
        self._sweeping = False
        # Progress, for the watchdog: set by a commit or a write, taken by the next heartbeat's ping.
        self._progress_since_ping = False
        self._observe_soon = False
        self._batches_in_hand = 0
        self._outbox_waiting = 0  # pending + retrying after the last drain
        self._withholding: str | None = None  # why the watchdog is not being fed, once said
        # Where each channel's checkpoint stands in the org's time (its last committed event), for its age.
        self._event_at: dict[str, datetime] = {}
        # The outbox key of a lead's owner change -> the lead's CreatedDate (org time), until it is written.
        self._owner_awaited: dict[str, datetime] = {}
        self._api_calls_seen = 0
        self._dead_letters_seen: int | None = None
        self._targets_missing = 0
        self._targets_missing_seen = 0
        for name, (value, _) in self.state.readings().items():
            if name.startswith("last_event:"):
                with contextlib.suppress(ValueError):
                    self._event_at[name.removeprefix("last_event:")] = datetime.fromisoformat(value)

    def _processor_for(self, config: Config) -> BatchProcessor:
        return BatchProcessor(
            decision_rules(config),
            org_lookups(config, self.client),
            config.salesforce.client_name,
            already_processed=self.state.is_processed,
            clock=self.clock,
            unfinished_writes=self.state.unfinished_outbox,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("daemon.stopping", drain_limit_s=self._drain_timeout)
            self.notifier.stopping()
            self._stop_requested_at = time.monotonic()
            self._stopping.set()

    def request_reload(self) -> None:
        """Re-read the config file between batches (SIGHUP); several requests in a row make one reload."""
        self._reload_wakeup.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                self.request_stop()
            else:
                log.warning("daemon.second_signal_cancelling")
                for task in asyncio.all_tasks(loop):
                    if task is not asyncio.current_task(loop):
                        task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    async def run(self) -> None:
        """Run until `request_stop()` (or a signal); returns after a clean drain."""
        log.info(
            "daemon.starting",
            login_url=self.config.salesforce.login_url,
            channels=list(self.config.stream.channels),
            state=str(self.config.state.path),
            drain_limit_s=self._drain_timeout,
            drain_limit_from=self._drain_source,
        )
        health_cm: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
        if self.config.health.enabled:
            health_cm = HealthServer(
                self.config.health.host, self.config.health.port, self.health, self.metrics
            )
        stop_listening = add_event_listener(self._on_log_event)
        try:
            async with health_cm:
                await self._observe()
                # The state must be this org's before anything in it is replayed or written.
                if not await self._bind_org():
                    return
                # First, so it reads when the checkpoints last moved before the first batch moves them.
                reconcile = asyncio.create_task(self._reconcile_loop(), name="reconcile")
                stream = asyncio.create_task(self._stream_loop(), name="stream")
                process = asyncio.create_task(self._process_loop(), name="process")
                writer = asyncio.create_task(self._writer_loop(), name="writer")
                reload = asyncio.create_task(self._reload_loop(), name="reload")
                stopper = asyncio.create_task(self._stopping.wait(), name="stop")
                heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
                done, _ = await asyncio.wait(
                    {stream, process, writer, stopper, reconcile, reload}, return_when=asyncio.FIRST_COMPLETED
                )
                heartbeat.cancel()
                reload.cancel()
                for task in done:
                    if task is not stopper and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                # Stop intake first, then let the processor finish what is queued, then drain the outbox.
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
                await self._stop_processing(process)
                await self._stop_reconcile(reconcile)
                self._draining.set()
                self._outbox_wakeup.set()
                stop_at = self._stop_requested_at or time.monotonic()
                await asyncio.wait(
                    {writer}, timeout=max(0.0, self._drain_timeout - (time.monotonic() - stop_at))
                )
                if not writer.done():
                    log.warning(
                        "daemon.drain_timeout",
                        pending=self.state.status().outbox_pending,
                        drain_limit_s=self._drain_timeout,
                    )
                    # Not cancelled: its thread would go on writing to Salesforce after the state closed, and
                    # a write Salesforce accepted (an email) would be sent again after the restart. The
                    # writer returns once the drain in hand is recorded.
                    self._drain_expired.set()
                    self._outbox_wakeup.set()
                    await writer
        finally:
            stop_listening()
            self.state.close()
            log.info("daemon.stopped")

    async def _bind_org(self) -> bool:
        """Log in and make sure the state file is this org's (StateOfAnotherOrg otherwise); False: stopped
        before the org could be reached."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                token = await asyncio.to_thread(self.tokens.token)
            except SfconnectorError as exc:  # the org is down or refuses the login: nothing can run yet
                attempt += 1
                log.warning("daemon.login_failed", error=str(exc), attempt=attempt)
                self.health.last_error = str(exc)
                await self._backoff(attempt, initial=1.0)
                continue
            if token.org_id is None:
                log.warning("state.org_unknown", reason="the token response names no org")
            elif self.state.bind_org(token.org_id):
                log.info("state.org_bound", org_id=token.org_id)
            return True
        return False

    def _on_log_event(self, event: str, level: str) -> None:
        """Every warning and error logged in this process (any thread): counted by name."""
        self.metrics.log_events.labels(event=event).inc()
        if event == "routing.target_missing":
            self._targets_missing += 1

    # -- reload -------------------------------------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_wakeup.wait()
            self._reload_wakeup.clear()
            if self._stopping.is_set():
                return
            await self.reload()

    async def reload(self) -> bool:
        """Load the config file again and take it between batches; False (old config kept) when it is bad
        or changes what only a restart can change."""
        source = self.config.source
        announce = self._ready_sent
        if announce:
            self.notifier.reloading(f"reloading {source}")
        log.info("config.reload_requested", config=str(source))
        try:
            new = await asyncio.to_thread(load_config, source)
        except ConfigError as exc:
            found = [str(p) for p in exc.problems]
            log.error("config.reload_failed", config=str(source), problems=found, kept="the running config")
            return self._reload_refused(f"{len(found)} problem(s) in {source}: {found[0] if found else ''}")
        except Exception as exc:  # the loader must not take the running daemon down
            log.error("config.reload_failed", config=str(source), error=repr(exc), kept="the running config")
            return self._reload_refused(f"cannot load {source}: {exc}")
        blockers = needs_restart(self.config, new)
        if blockers:
            log.error(
                "config.reload_refused",
                config=str(source),
                needs_restart=blockers,
                kept="the running config",
                hint="restart the service to apply these",
            )
            return self._reload_refused("needs a restart: " + ", ".join(blockers))
        try:
            processor = self._processor_for(new)
        except Exception as exc:
            log.error("config.reload_failed", config=str(source), error=repr(exc), kept="the running config")
            return self._reload_refused(f"cannot apply {source}: {exc}")
        changed = changed_sections(self.config, new)
        async with self._decide_lock:  # between batches: the batch in hand finishes on the old rules
            old, self.config, self.processor = self.config, new, processor
        self.health.unhealthy_after = new.health.unhealthy_after_seconds
        if new.logging != old.logging:
            fmt = new.logging.format
            configure_logging(new.logging.level, json=None if fmt == "auto" else fmt == "json")
        self.alerts.clear_all(alert_names.ROUTING_TARGET_MISSING)
        self.metrics.config_reloads.labels(result="applied").inc()
        log.info("config.reloaded", config=str(source), changed=changed, summary=new.summary())
        if announce:
            self.notifier.ready("config reloaded: " + (", ".join(changed) or "nothing changed"))
        return True

    def _reload_refused(self, why: str) -> bool:
        self.metrics.config_reloads.labels(result="refused").inc()
        self.health.last_error = f"config reload refused: {why}"
        if self._ready_sent:
            self.notifier.ready(f"config reload refused ({why}); running on the previous config")
        return False

    # -- stream -------------------------------------------------------------------------------------------

    def _replay_ids(self, fallback: Mapping[str, int]) -> dict[str, int]:
        start = ALL_EVENTS if self.config.stream.start == "earliest" else NEW_EVENTS
        ids: dict[str, int] = {}
        for channel in self.config.stream.channels:
            checkpoint = self.state.checkpoint(channel)
            if checkpoint is not None:
                self._live_since.pop(channel, None)
            else:
                # A previous run went live at "latest" but committed nothing (stopped or killed before its
                # first batch was durable): resume from what it may have missed, not from now.
                stored = self.state.live_since(channel)
                if stored is not None:
                    self._live_since.setdefault(channel, stored)
                if channel in self._live_since:
                    checkpoint = ALL_EVENTS
            ids[channel] = fallback.get(channel, checkpoint if checkpoint is not None else start)
        return ids

    async def _stream_loop(self) -> None:
        attempt = 0
        fallback: dict[str, int] = {}
        ca = str(self.config.salesforce.ca_bundle) if self.config.salesforce.ca_bundle else None
        while not self._stopping.is_set():
            replay_ids = self._replay_ids(fallback)
            now_ms = int(self.clock().timestamp() * 1000)
            for channel, replay_id in replay_ids.items():
                if replay_id == NEW_EVENTS:
                    # Durable before subscribing: a restart before the first commit replays from here.
                    self._live_since.setdefault(channel, now_ms)
                    try:
                        self.state.record_live_since(channel, self._live_since[channel])
                    except Exception as exc:  # the stream still runs; only a restart before a commit suffers
                        log.warning("stream.live_since_not_recorded", channel=channel, error=str(exc))
            try:
                async with StreamClient(
                    self.tokens.get_token,
                    api_version=self.config.salesforce.api_version,
                    replay_ids=replay_ids,
                    ca_file=ca,
                    max_pending_count=min(1000, self.config.stream.max_in_flight),
                ) as client:
                    for channel in self.config.stream.channels:
                        await client.subscribe(channel)
                    fallback.clear()
                    attempt = 0
                    self._connects_failed_seen = 0
                    self._stream_client = client
                    for channel in replay_ids:
                        if channel in self._live_since:
                            client.checkpoints.set(channel, ALL_EVENTS)
                    self._subscribed(replay_ids)
                    while True:
                        message = await client.receive()
                        if self._before_start(message):
                            continue
                        await self._queue.put(message)  # receiving is not progress: committing is
            except ReplayIdExpired as exc:
                # Downtime beyond retention: events may be lost. Say so loudly, replay what is retained, and
                # reconcile by SOQL so no referral is missed.
                log.error("stream.replay_expired", channel=exc.channel, replay_id=replay_ids.get(exc.channel))
                self.metrics.stream_reconnects.labels(reason="replay_expired").inc()
                self.health.last_error = f"replay id expired on {exc.channel}"
                fallback[exc.channel] = ALL_EVENTS
                self._request_reconcile(f"replay id expired on {exc.channel}")
            except SubscriptionRefused as exc:
                log.error("stream.subscription_refused", channel=exc.channel, error=exc.error)
                self.metrics.stream_reconnects.labels(reason="subscription_refused").inc()
                self.health.last_error = str(exc)
                attempt += 1
                await self._backoff(attempt, initial=5.0)
            except (StreamError, OSError) as exc:
                log.warning("stream.disconnected", error=str(exc), attempt=attempt + 1)
                self.metrics.stream_reconnects.labels(reason="disconnected").inc()
                self.health.last_error = str(exc)
                attempt += 1
                await self._backoff(attempt)
            except Exception as exc:  # the library can raise anything; supervision must survive it
                log.error("stream.failed", error=repr(exc), attempt=attempt + 1)
                self.metrics.stream_reconnects.labels(reason="failed").inc()
                self.health.last_error = repr(exc)
                attempt += 1
                await self._backoff(attempt)
            finally:
                self._count_transport_reconnects()
                self._stream_client = None
                self.health.subscribed = False
                self.metrics.stream_connected.set(0)

    def _before_start(self, message: Mapping[str, Any]) -> bool:
        """An event replayed by a -2 resubscription that happened before we first subscribed at latest."""
        since = self._live_since.get(str(message.get("channel")))
        if since is None:
            return False
        moment = event_time_ms(message)
        return moment is not None and moment < since - 2000  # clock skew between us and Salesforce

    def _subscribed(self, replay_ids: Mapping[str, int]) -> None:
        self.health.subscribed = True
        self._subscribed_at = time.monotonic()
        self._progress()
        self.metrics.stream_connected.set(1)
        log.info("stream.subscribed", replay_ids=dict(replay_ids))
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready("subscribed to " + ", ".join(self.config.stream.channels))

    async def _backoff(self, attempt: int, initial: float = 0.5) -> None:
        delay = backoff_seconds(attempt, initial=initial, maximum=30.0, jitter=0.5, rand=random.random())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _count_transport_reconnects(self) -> None:
        client = self._stream_client
        if client is not None and client.connects_failed > self._connects_failed_seen:
            self.metrics.stream_reconnects.labels(reason="transport").inc(
                client.connects_failed - self._connects_failed_seen
            )
            self._connects_failed_seen = client.connects_failed

    def _progress(self) -> None:
        """Real progress (a batch committed, a write done): the next heartbeat feeds the watchdog."""
        self.health.progress()
        self._progress_since_ping = True
        self._observe_soon = True

    def _stream_answering(self) -> bool:
        """Subscribed, and the last long-poll (or the subscription itself) was answered recently."""
        client = self._stream_client
        if client is None or not client.is_connected():
            return False
        last = max(client.last_connect_ok or 0.0, self._subscribed_at or 0.0)
        return time.monotonic() - last <= STREAM_SILENT_AFTER_S

    def _idle_and_answering(self) -> bool:
        """Nothing to do (no batch in hand or queued, no write waiting) and the stream answers: the quiet of
        an org with no events, which is progress too."""
        if self._batches_in_hand or not self._queue.empty() or self._outbox_waiting:
            return False
        return self._stream_answering()

    def _caught_up(self) -> bool:
        """The checkpoints move as events arrive: subscribed, answering, and no batch failing."""
        return self._stream_answering() and self.health.batch_failing_since is None

    def _no_progress_reason(self) -> str:
        if self.health.batch_failing_since is not None:
            return f"batches failing: {self.health.batch_error}"
        if self._outbox_waiting and self.health.outbox_stuck_since is not None:
            return f"outbox not draining ({self._outbox_waiting} waiting)"
        if self._stream_client is None:
            return "not subscribed to streaming"
        if not self._stream_answering():
            return "the stream does not answer"
        return "working, nothing committed yet"

    def _quiet_warning_s(self) -> float:
        """How long without progress before saying so (a long batch is not news): half the watchdog
        timeout, when systemd has one; else the health threshold."""
        interval = self.notifier.watchdog_interval
        return interval if interval is not None else self.health.unhealthy_after

    def _heartbeat_tick(self) -> float:
        interval = self.notifier.watchdog_interval
        return min(OBSERVE_SOON_S, interval / 2) if interval else OBSERVE_SOON_S

    async def _heartbeat(self) -> None:
        """From the event loop (a wedged loop pings nothing): feed the systemd watchdog when there was real
        progress since the last ping, or nothing to do on a stream that answers; refresh the metrics and
        alerts; prune old history every few hours."""
        tick = self._heartbeat_tick()
        last_prune = time.monotonic()  # not at start: the first prune comes after PRUNE_EVERY_S
        last_observe = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            self._count_transport_reconnects()
            if self._progress_since_ping or self._idle_and_answering():
                self._progress_since_ping = False
                self.health.progress()
                self.notifier.watchdog()
                if self._withholding is not None:
                    self._withholding = None
                    log.info("daemon.progress_resumed")
                    self.notifier.status("running: " + ", ".join(self.config.stream.channels))
            elif self._ready_sent and time.monotonic() - self.health.last_progress >= self._quiet_warning_s():
                reason = self._no_progress_reason()
                kind = reason.split(":")[0]
                if self._withholding is None or self._withholding.split(":")[0] != kind:
                    self._withholding = reason
                    log.warning("daemon.no_progress", reason=reason, watchdog="not fed")
                    self.notifier.status(f"no progress: {reason}")
            since = time.monotonic() - last_observe
            if since >= OBSERVE_EVERY_S or (self._observe_soon and since >= OBSERVE_SOON_S):
                last_observe, self._observe_soon = time.monotonic(), False
                await self._observe()
            if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                last_prune = time.monotonic()
                await asyncio.to_thread(self._prune)

    async def _observe(self) -> None:
        """Metrics read from the state and the client, and the alerts on them (never fails the daemon)."""
        try:
            status, live = await asyncio.to_thread(self._read_state_for_metrics)
        except Exception as exc:
            log.warning("metrics.state_unreadable", error=repr(exc))
            return
        usage = self.client.api_usage
        if usage is not None:
            self.metrics.api_usage.set(usage.fraction)
            self.metrics.api_requests_used.set(usage.used)
            self.metrics.api_requests_limit.set(usage.max)
            self.metrics.api_requests_left.set(max(0, usage.max - usage.used))
            share = api_left_share(usage.used, usage.max)
            self.alerts.set(
                alert_names.API_ALLOCATION_LOW,
                "",
                share < self.config.health.api_left_alert_share,
                left=max(0, usage.max - usage.used),
                limit=usage.max,
                left_share=round(share, 4),
                threshold=self.config.health.api_left_alert_share,
            )
        calls = self.client.api_calls
        if calls > self._api_calls_seen:
            self.metrics.api_calls.inc(calls - self._api_calls_seen)
            self._api_calls_seen = calls
        self._observe_dead_letters(status.dead_letters)
        now = self.clock()
        checkpoints = {c.channel: c for c in status.channels}
        ages: dict[str, float] = {}
        for channel in self.config.stream.channels:
            # The last committed event; else when the checkpoint moved; else when the channel went live.
            since = self._event_at.get(channel)
            if since is None and channel in checkpoints:
                since = checkpoints[channel].updated_at
            live_ms = live.get(channel)
            if since is None and live_ms is not None:
                since = datetime.fromtimestamp(live_ms / 1000, tz=UTC)
            if since is None:
                continue
            ages[channel] = max(0.0, (now - since).total_seconds())
            self.metrics.checkpoint_age.labels(channel=channel).set(ages[channel])
        too_old = checkpoints_too_old(ages, self._retention, caught_up=self._caught_up())
        for channel in self.config.stream.channels:
            self.alerts.set(
                alert_names.CHECKPOINT_AGE,
                channel,
                channel in too_old,
                age_s=round(ages.get(channel, 0.0)),
                retention_s=self._retention[channel],
                hint="a resubscription past the retention loses events: see docs/operations.md, long outages",
            )
        if self._targets_missing > self._targets_missing_seen:
            self.alerts.raise_(
                alert_names.ROUTING_TARGET_MISSING,
                "",
                logged=self._targets_missing,
                hint="a routing rule names a user or queue the org does not have; fix the rules and reload",
            )
            self._targets_missing_seen = self._targets_missing
        self.metrics.healthy.set(0 if problems(self.health) else 1)

    def _read_state_for_metrics(self) -> tuple[StateStatus, dict[str, int | None]]:
        return self.state.status(), {c: self.state.live_since(c) for c in self.config.stream.channels}

    def _observe_dead_letters(self, count: int) -> None:
        self.metrics.dead_letters_unresolved.set(count)
        before, self._dead_letters_seen = self._dead_letters_seen, count
        if before is None:
            return
        if count > before:
            self.alerts.raise_(
                alert_names.DEAD_LETTERS_GROWING,
                "",
                repeat=True,
                unresolved=count,
                before=before,
                hint="sfconnector deadletters list",
            )
        elif count < before or count == 0:
            self.alerts.clear(alert_names.DEAD_LETTERS_GROWING, "", unresolved=count)

    def _prune(self) -> None:
        # Well beyond the 72 h event retention and the reconcile lookback, so a replay or a sweep still finds
        # the keys that make it a no-op; email keys are never pruned (emails cannot be made idempotent).
        keep = max(KEEP_HISTORY_S, 2 * self.config.reconcile.lookback_seconds)
        try:
            counts = self.state.prune(self.clock() - timedelta(seconds=keep))
        except Exception as exc:  # housekeeping must never take the daemon down
            log.warning("state.prune_failed", error=repr(exc))
            return
        if any(counts.values()):
            log.info("state.pruned", **counts)

    def _request_reconcile(self, why: str) -> None:
        self.reconcile_requested.append(why)
        self._reconcile_wakeup.set()
        self.metrics.reconciliations.labels(trigger="stream").inc()
        log.warning("reconcile.requested", reason=why)

    # -- reconciliation -----------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        """One sweep at a time: on request (expired replay id, gap, overflow) and every `reconcile.period`."""
        cfg = self.config.reconcile
        since = sweep_since(self.state, self.config.stream.channels, self.clock(), cfg.lookback_seconds)
        built_for = self.config
        reconciler = reconciler_for(built_for, self.client, self.state, self.clock)
        failures = 0
        while not self._stopping.is_set():
            cfg = self.config.reconcile
            if not self.reconcile_requested:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reconcile_wakeup.wait(), timeout=cfg.period_seconds or None)
            self._reconcile_wakeup.clear()
            reasons, self.reconcile_requested[:] = list(self.reconcile_requested), []
            if self.config is not built_for:  # reloaded: sweep with the rules the stream now uses
                built_for = self.config
                reconciler = reconciler_for(built_for, self.client, self.state, self.clock)
            now = self.clock()
            # A scheduled sweep leaves the stream the leads it is deciding now: the last minute, or half a
            # period when sweeps come more often than that.
            until = None if reasons else now - timedelta(seconds=min(60.0, cfg.period_seconds / 2))
            self._sweeping = True
            try:
                summary = await asyncio.to_thread(
                    reconciler.run, since, until=until, stopping=self._stopping.is_set
                )
            except Exception as exc:  # org down or limits: say so, keep the request, try again later
                failures += 1
                log.error("reconcile.failed", error=str(exc), reasons=reasons, attempt=failures)
                self.health.last_error = f"reconciliation failed: {exc}"
                self.reconcile_requested[:0] = reasons
                await self._backoff(failures, initial=5.0)
                continue
            finally:
                self._sweeping = False
            failures = 0
            if not reasons:
                self.metrics.reconciliations.labels(trigger="period").inc()
            log.info("reconcile.swept", reasons=reasons or ["period"], queued=summary.queued)
            self._outbox_wakeup.set()
            if not summary.stopped:  # the outage is covered: later sweeps look back the usual time
                since = now - timedelta(seconds=cfg.lookback_seconds)

    async def _stop_reconcile(self, task: asyncio.Task[None]) -> None:
        """A sweep in progress stops at its next page or batch (its thread cannot be cancelled); an idle
        loop is cancelled."""
        if not self._sweeping:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- decisions ----------------------------------------------------------------------------------------

    async def _next_batch(self) -> tuple[list[Any], bool]:
        first = await self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        cfg = self.config.stream.batch
        deadline = time.monotonic() + cfg.max_wait_ms / 1000
        while len(batch) < cfg.max_events:
            timeout = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get_nowait()
                    if timeout <= 0
                    else await asyncio.wait_for(self._queue.get(), timeout)
                )
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def _stop_processing(self, process: asyncio.Task[None]) -> None:
        """Let the processor finish what is queued; a full queue must not keep the stop marker out, and a
        processor that gave up (org down while stopping) must not be waited for."""
        marker = asyncio.create_task(self._queue.put(_STOP))
        await asyncio.wait({marker, process}, return_when=asyncio.FIRST_COMPLETED)
        marker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await marker
        await process

    async def _process_loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = await self._next_batch()
            if batch and not await self._process(batch):
                return

    async def _process(self, messages: list[Any]) -> bool:
        """Decide and commit one batch, retrying until it is durable. False: stopping while it cannot be
        decided; the batch is left uncommitted (its checkpoint does not move, so a restart replays it) and
        nothing after it may be processed, or a later checkpoint would skip it.

        An error that is not the org's or the disk's (a bug, or data no rule expected) would fail the same
        way forever and hold up every referral behind it: after a second failure the batch is decided one
        message at a time, in order, and a message that still fails becomes a dead letter."""
        attempt = 0
        self._batches_in_hand += 1
        try:
            while True:
                try:
                    # A reload swaps the rules between attempts, never during one.
                    async with self._decide_lock:
                        processed = await asyncio.to_thread(self.processor.process, messages)
                        await asyncio.to_thread(self.state.commit_batch, processed.decided)
                    break
                except Exception as exc:
                    # Lookups failed (org down, limits): keep the batch, retry, never skip it.
                    attempt += 1
                    self.health.last_error = str(exc)
                    self.health.batch_failed(str(exc))
                    self.metrics.batches_failing.set(1)
                    with contextlib.suppress(Exception):
                        self.state.record_error("pipeline", str(exc))
                    if self._stopping.is_set():
                        log.warning("pipeline.batch_left_for_restart", error=str(exc), events=len(messages))
                        return False
                    if attempt >= 2 and not _transient(exc):
                        return await self._isolate(messages, exc)
                    log.warning("pipeline.batch_retry", error=str(exc), attempt=attempt, events=len(messages))
                    delay = backoff_seconds(
                        attempt, initial=0.5, maximum=60.0, jitter=0.5, rand=random.random()
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        finally:
            self._batches_in_hand -= 1
        self._batch_committed()
        self._account(processed)
        self._record_event_times(messages)
        self._committed(processed.decided.checkpoints)
        return True

    def _batch_committed(self) -> None:
        self.health.batch_done()
        self.metrics.batches_failing.set(0)

    async def _isolate(self, messages: list[Any], exc: Exception) -> bool:
        if len(messages) > 1:
            log.warning("pipeline.batch_split", error=repr(exc), events=len(messages))
            for message in messages:
                if not await self._process([message]):
                    return False
            return True
        message = messages[0]
        channel = str(message.get("channel", "")) if isinstance(message, Mapping) else ""
        replay_id = _replay_id(message)
        reason = f"processing failed: {exc!r}"
        letter = NewDeadLetter("event", channel or None, replay_id, _jsonable(message), reason)
        checkpoints = {channel: replay_id} if channel and replay_id is not None else {}
        try:
            await asyncio.to_thread(
                self.state.commit_batch, DecidedBatch(checkpoints=checkpoints, dead_letters=[letter])
            )
        except Exception as commit_exc:  # the disk, not the message: leave it for the restart
            log.error(
                "pipeline.dead_letter_failed", error=str(commit_exc), channel=channel, replay_id=replay_id
            )
            return False
        log.error("deadletter.added", source="event", channel=channel, replay_id=replay_id, reason=reason)
        self.metrics.dead_letters.inc()
        self._batch_committed()
        self._committed(checkpoints)
        return True

    def _committed(self, checkpoints: Mapping[str, int]) -> None:
        client = self._stream_client
        for channel, replay_id in checkpoints.items():
            self._live_since.pop(channel, None)
            if client is not None:
                client.checkpoints.set(channel, replay_id)  # a re-handshake resumes after what is committed
        self._outbox_wakeup.set()
        self._progress()

    def _record_event_times(self, messages: list[Any]) -> None:
        """When the last event of each channel happened, for `sfconnector status` (lag)."""
        latest: dict[str, int] = {}
        for message in messages:
            moment = event_time_ms(message) if isinstance(message, Mapping) else None
            channel = str(message.get("channel")) if isinstance(message, Mapping) else ""
            if moment is not None and moment > latest.get(channel, 0):
                latest[channel] = moment
        for channel, ms in latest.items():
            moment_at = datetime.fromtimestamp(ms / 1000, tz=UTC)
            if channel not in self._event_at or moment_at > self._event_at[channel]:
                self._event_at[channel] = moment_at
        if latest:
            readings = {
                f"last_event:{channel}": datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
                for channel, ms in latest.items()
            }
            try:
                self.state.record_readings(readings)
            except Exception as exc:  # a status reading must never stop the pipeline
                log.warning("state.readings_failed", error=repr(exc))

    def _account(self, processed: ProcessedBatch) -> None:
        for channel, count in processed.received.items():
            self.metrics.events_received.labels(channel=channel).inc(count)
        if processed.own_changes:
            self.metrics.events_skipped.labels(reason="own_change").inc(processed.own_changes)
        if processed.duplicates:
            self.metrics.events_skipped.labels(reason="already_processed").inc(processed.duplicates)
        owner_field, lead_object = self.config.mapping.lead.owner, self.config.mapping.lead.object
        for outcome in processed.outcomes:
            self.metrics.routing_decisions.labels(
                rule=outcome.routing.rule, action=outcome.routing.action
            ).inc()
            for entry in outcome.outbox:  # the write that gives the lead its owner: timed when it is done
                if entry.sobject == lead_object and owner_field in entry.fields:
                    if len(self._owner_awaited) >= OWNER_LATENCY_TRACKED:  # skipped or dead: never written
                        del self._owner_awaited[next(iter(self._owner_awaited))]
                    self._owner_awaited[entry.key] = outcome.candidate.created_at
        if processed.decided.dead_letters:
            self.metrics.dead_letters.inc(len(processed.decided.dead_letters))
            for dead in processed.decided.dead_letters:
                log.warning("deadletter.added", source=dead.source, channel=dead.channel, reason=dead.reason)
        for channel, replay_id in processed.decided.checkpoints.items():
            self.metrics.checkpoint.labels(channel=channel).set(replay_id)
        for gap in processed.gaps:
            self._request_reconcile(f"{gap.change_type} on {gap.entity} ({len(gap.record_ids)} records)")

    # -- outbox -------------------------------------------------------------------------------------------

    async def _writer_loop(self) -> None:
        while True:
            self._outbox_wakeup.clear()
            try:
                report = await asyncio.to_thread(self.writer.drain_once)
            except Exception as exc:
                log.error("outbox.drain_failed", error=repr(exc))
                self.health.last_error = repr(exc)
                report = None
            status = self.state.status()
            pending = status.outbox_pending + status.outbox_retrying
            self._outbox_waiting = pending
            self.metrics.outbox_depth.set(pending)
            usage = self.client.api_usage
            if usage is not None:
                self.metrics.api_usage.set(usage.fraction)
                reading = f"{usage.used}/{usage.max}"
                if reading != self._last_usage_reading:
                    self._last_usage_reading = reading
                    await asyncio.to_thread(self.state.record_readings, {"api_usage": reading})
            moved = report is not None and bool(report.done or report.dead or report.skipped)
            if report is not None:
                self.metrics.outbox_results.labels(result="done").inc(report.done)
                self.metrics.outbox_results.labels(result="retried").inc(report.retried)
                self.metrics.outbox_results.labels(result="dead").inc(report.dead)
                self.metrics.outbox_results.labels(result="skipped").inc(report.skipped)
                self._time_owner_changes(report.completed)
                if moved:
                    self._progress()
            if moved or pending == 0:
                self.health.outbox_moving()
                self.metrics.outbox_stalled.set(0)
            else:  # writes wait and none went through: failing, backing off, or paused at the API limit
                why = await asyncio.to_thread(self.state.last_outbox_error)
                if report is not None and report.paused_until is not None:
                    why = f"paused until {report.paused_until.isoformat()} (API limit)"
                elif report is None:
                    why = self.health.last_error
                self.health.outbox_stuck(why)
                self.metrics.outbox_stalled.set(1)
            if self._drain_expired.is_set() or (self._draining.is_set() and (pending == 0 or report is None)):
                return
            wait = self._writer_wait(report)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wakeup.wait(), timeout=wait)

    def _time_owner_changes(self, keys: tuple[str, ...]) -> None:
        """Lead created (the org's time) -> its owner changed (written now): the latency histogram."""
        if not keys or not self._owner_awaited:
            return
        now = self.clock()
        for key in keys:
            created = self._owner_awaited.pop(key, None)
            if created is not None:
                self.metrics.owner_latency.observe(max(0.0, (now - created).total_seconds()))

    def _writer_wait(self, report: Any) -> float:
        if report is not None and report.paused_until is not None:
            return max(0.0, (report.paused_until - self.clock()).total_seconds())
        if report is not None and report.done:
            return 0.0
        due = self.state.next_outbox_due()
        if due is None:
            return 5.0
        return max(0.0, min(5.0, (due - self.clock()).total_seconds()))


def _transient(exc: BaseException) -> bool:
    """The org (errors, refused logins, limits), the network or the disk: retrying the same batch can
    succeed once they are fixed, so the batch waits for them. Anything else is a bug or data no rule
    expected, and fails the same way every time."""
    return isinstance(exc, SfconnectorError | OSError | TimeoutError | sqlite3.Error)


def _replay_id(message: Any) -> int | None:
    data = message.get("data") if isinstance(message, Mapping) else None
    event = data.get("event") if isinstance(data, Mapping) else None
    replay_id = event.get("replayId") if isinstance(event, Mapping) else None
    return replay_id if isinstance(replay_id, int) else None


def _jsonable(message: Any) -> dict[str, Any]:
    """The message as the dead letter keeps it (JSON), so `deadletters retry` can decide it again."""
    try:
        value = json.loads(json.dumps(message, default=str))
    except (TypeError, ValueError):
        return {"unreadable": repr(message)[:2000]}
    return value if isinstance(value, dict) else {"message": value}
