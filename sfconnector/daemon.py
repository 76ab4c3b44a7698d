"""The daemon: stream in, decide in batches, commit decisions with the checkpoint, drain the outbox out.

    stream (supervised) --> bounded queue --> batches --> decisions + checkpoint (one SQLite tx) --> outbox
                                                                                         writer --> Salesforce

Lifecycle: `run()` owns every task and awaits them. The first SIGTERM stops intake, finishes the batch in
hand and drains the outbox (bounded by `drain_timeout`); a second one cancels. A crash at any instant loses
nothing: the stream re-subscribes from the last *committed* replay id and every write is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sfconnector.clock import Clock, system_clock
from sfconnector.config import Config
from sfconnector.errors import SfconnectorError
from sfconnector.events import event_time_ms
from sfconnector.health import HealthServer, HealthState
from sfconnector.metrics import Metrics
from sfconnector.pipeline.batch import BatchProcessor, ProcessedBatch
from sfconnector.reconcile import reconciler_for, sweep_since
from sfconnector.retry import backoff_seconds
from sfconnector.salesforce import SalesforceClient, TokenProvider
from sfconnector.state import DecidedBatch, NewDeadLetter, StateStore
from sfconnector.stream import (
    ALL_EVENTS,
    NEW_EVENTS,
    ReplayIdExpired,
    StreamClient,
    StreamError,
    SubscriptionRefused,
)
from sfconnector.systemd import Notifier
from sfconnector.wiring import connect, decision_rules, org_lookups
from sfconnector.writer import OutboxWriter

log = structlog.get_logger("sfconnector.daemon")

_STOP = object()
PRUNE_EVERY_S = 6 * 3600.0
KEEP_HISTORY_S = 30 * 86400.0


class Daemon:
    """One connector process for one org."""

    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        drain_timeout: float = 30.0,
        tokens: TokenProvider | None = None,
        client: SalesforceClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.health = HealthState()
        self._drain_timeout = drain_timeout
        if tokens is None or client is None:
            tokens, client = connect(config, clock=clock)
        self.tokens, self.client = tokens, client
        self.state = StateStore.open(config.state.path, clock=clock)
        for key in self.state.quarantine_interrupted_sends():
            log.warning("outbox.email_uncertain", key=key)
        self.processor = BatchProcessor(
            decision_rules(config),
            org_lookups(config, client),
            config.salesforce.client_name,
            already_processed=self.state.is_processed,
            clock=clock,
        )
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
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, config.stream.max_in_flight))
        self._stopping = asyncio.Event()
        self._intake_done = asyncio.Event()
        self._outbox_wakeup = asyncio.Event()
        self._draining = asyncio.Event()
        self._drain_expired = asyncio.Event()
        self._ready_sent = False
        self.reconcile_requested: list[str] = []
        # Channels started at "latest" that have no checkpoint yet: when we first saw them live (epoch ms).
        # A resubscription must not use -1 again (events published during the gap would be lost): it uses -2
        # and drops what happened before this moment.
        self._live_since: dict[str, int] = {}
        self._stream_client: StreamClient | None = None
        self._last_usage_reading = ""
        self._reconcile_wakeup = asyncio.Event()
        self._sweeping = False
        self._last_watchdog = 0.0

    # -- lifecycle ----------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("daemon.stopping")
            self.notifier.stopping()
            self._stopping.set()

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

    async def run(self) -> None:
        """Run until `request_stop()` (or a signal); returns after a clean drain."""
        log.info(
            "daemon.starting",
            login_url=self.config.salesforce.login_url,
            channels=list(self.config.stream.channels),
            state=str(self.config.state.path),
        )
        health_cm: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
        if self.config.health.enabled:
            health_cm = HealthServer(
                self.config.health.host, self.config.health.port, self.health, self.metrics
            )
        try:
            async with health_cm:
                # First, so it reads when the checkpoints last moved before the first batch moves them.
                reconcile = asyncio.create_task(self._reconcile_loop(), name="reconcile")
                stream = asyncio.create_task(self._stream_loop(), name="stream")
                process = asyncio.create_task(self._process_loop(), name="process")
                writer = asyncio.create_task(self._writer_loop(), name="writer")
                stopper = asyncio.create_task(self._stopping.wait(), name="stop")
                heartbeat = asyncio.create_task(
                    self._heartbeat(min(10.0, self.notifier.watchdog_interval or 10.0)), name="heartbeat"
                )
                done, _ = await asyncio.wait(
                    {stream, process, writer, stopper, reconcile}, return_when=asyncio.FIRST_COMPLETED
                )
                heartbeat.cancel()
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
                await asyncio.wait({writer}, timeout=self._drain_timeout)
                if not writer.done():
                    log.warning("daemon.drain_timeout", pending=self.state.status().outbox_pending)
                    # Not cancelled: its thread would go on writing to Salesforce after the state closed, and
                    # a write Salesforce accepted (an email) would be sent again after the restart. The
                    # writer returns once the drain in hand is recorded.
                    self._drain_expired.set()
                    self._outbox_wakeup.set()
                    await writer
        finally:
            self.state.close()
            log.info("daemon.stopped")

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
                    self._stream_client = client
                    for channel in replay_ids:
                        if channel in self._live_since:
                            client.checkpoints.set(channel, ALL_EVENTS)
                    self._subscribed(replay_ids)
                    while True:
                        message = await client.receive()
                        if self._before_start(message):
                            continue
                        await self._queue.put(message)
                        self._pulse()
            except ReplayIdExpired as exc:
                # Downtime beyond retention: events may be lost. Say so loudly, replay what is retained, and
                # reconcile by SOQL so no referral is missed.
                log.error("stream.replay_expired", channel=exc.channel, replay_id=replay_ids.get(exc.channel))
                self.health.last_error = f"replay id expired on {exc.channel}"
                fallback[exc.channel] = ALL_EVENTS
                self._request_reconcile(f"replay id expired on {exc.channel}")
            except SubscriptionRefused as exc:
                log.error("stream.subscription_refused", channel=exc.channel, error=exc.error)
                self.health.last_error = str(exc)
                attempt += 1
                await self._backoff(attempt, initial=5.0)
            except (StreamError, OSError) as exc:
                log.warning("stream.disconnected", error=str(exc), attempt=attempt + 1)
                self.health.last_error = str(exc)
                attempt += 1
                await self._backoff(attempt)
            except Exception as exc:  # the library can raise anything; supervision must survive it
                log.error("stream.failed", error=repr(exc), attempt=attempt + 1)
                self.health.last_error = repr(exc)
                attempt += 1
                await self._backoff(attempt)
            finally:
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
        self.health.progress()
        self.metrics.stream_connected.set(1)
        log.info("stream.subscribed", replay_ids=dict(replay_ids))
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready("subscribed to " + ", ".join(self.config.stream.channels))

    async def _backoff(self, attempt: int, initial: float = 0.5) -> None:
        delay = backoff_seconds(attempt, initial=initial, maximum=30.0, jitter=0.5, rand=random.random())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _pulse(self) -> None:
        """Real progress: feed the health check and, at most every few seconds, the systemd watchdog."""
        self.health.progress()
        now = time.monotonic()
        interval = self.notifier.watchdog_interval
        if interval is not None and now - self._last_watchdog >= min(interval, 5.0):
            self._last_watchdog = now
            self.notifier.watchdog()

    async def _heartbeat(self, every: float = 10.0) -> None:
        """An idle org sends no events: a connected long-poll is progress too (health and watchdog).
        Also keeps the state file from growing for ever: old history is pruned every few hours."""
        last_prune = 0.0
        while True:
            client = self._stream_client
            if client is not None and client.is_connected():
                self._pulse()
            if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                last_prune = time.monotonic()
                await asyncio.to_thread(self._prune)
            await asyncio.sleep(every)

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
        reconciler = reconciler_for(self.config, self.client, self.state, self.clock)
        failures = 0
        while not self._stopping.is_set():
            if not self.reconcile_requested:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reconcile_wakeup.wait(), timeout=cfg.period_seconds or None)
            self._reconcile_wakeup.clear()
            reasons, self.reconcile_requested[:] = list(self.reconcile_requested), []
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
        while True:
            try:
                processed = await asyncio.to_thread(self.processor.process, messages)
                await asyncio.to_thread(self.state.commit_batch, processed.decided)
                break
            except (
                Exception
            ) as exc:  # lookups failed (org down, limits): keep the batch, retry, never skip it
                attempt += 1
                self.health.last_error = str(exc)
                with contextlib.suppress(Exception):
                    self.state.record_error("pipeline", str(exc))
                if self._stopping.is_set():
                    log.warning("pipeline.batch_left_for_restart", error=str(exc), events=len(messages))
                    return False
                if attempt >= 2 and not _transient(exc):
                    return await self._isolate(messages, exc)
                log.warning("pipeline.batch_retry", error=str(exc), attempt=attempt, events=len(messages))
                delay = backoff_seconds(attempt, initial=0.5, maximum=60.0, jitter=0.5, rand=random.random())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        self._account(processed)
        self._record_event_times(messages)
        self._committed(processed.decided.checkpoints)
        return True

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
        self._committed(checkpoints)
        return True

    def _committed(self, checkpoints: Mapping[str, int]) -> None:
        client = self._stream_client
        for channel, replay_id in checkpoints.items():
            self._live_since.pop(channel, None)
            if client is not None:
                client.checkpoints.set(channel, replay_id)  # a re-handshake resumes after what is committed
        self._outbox_wakeup.set()
        self._pulse()

    def _record_event_times(self, messages: list[Any]) -> None:
        """When the last event of each channel happened, for `sfconnector status` (lag)."""
        latest: dict[str, int] = {}
        for message in messages:
            moment = event_time_ms(message) if isinstance(message, Mapping) else None
            channel = str(message.get("channel")) if isinstance(message, Mapping) else ""
            if moment is not None and moment > latest.get(channel, 0):
                latest[channel] = moment
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
        for outcome in processed.outcomes:
            self.metrics.routing_decisions.labels(
                rule=outcome.routing.rule, action=outcome.routing.action
            ).inc()
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
            self.metrics.outbox_depth.set(status.outbox_pending + status.outbox_retrying)
            usage = self.client.api_usage
            if usage is not None:
                self.metrics.api_usage.set(usage.fraction)
                reading = f"{usage.used}/{usage.max}"
                if reading != self._last_usage_reading:
                    self._last_usage_reading = reading
                    await asyncio.to_thread(self.state.record_readings, {"api_usage": reading})
            if report is not None:
                self.metrics.outbox_results.labels(result="done").inc(report.done)
                self.metrics.outbox_results.labels(result="retried").inc(report.retried)
                self.metrics.outbox_results.labels(result="dead").inc(report.dead)
                self.metrics.outbox_results.labels(result="skipped").inc(report.skipped)
                if report.done or report.dead or report.skipped:
                    self._pulse()
            pending = status.outbox_pending + status.outbox_retrying
            if self._drain_expired.is_set() or (self._draining.is_set() and (pending == 0 or report is None)):
                return
            wait = self._writer_wait(report)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wakeup.wait(), timeout=wait)

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
