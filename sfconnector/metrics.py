"""Prometheus metrics of the daemon, on a registry of its own (no global state).

Every name here is stable: `config/prometheus-alerts.yaml` and `config/grafana-dashboard.json` use them, and
a test checks that each metric they name is on a running daemon's /metrics. Labelled metrics get their
children at start (per channel, per result...) so a series exists before its first increment.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Lead created in Salesforce -> its owner changed by us: mostly the batching window plus one round trip.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
OUTBOX_RESULTS = ("done", "retried", "dead", "skipped")
RECONNECT_REASONS = ("disconnected", "replay_expired", "subscription_refused", "failed", "transport")
# Log events counted by `sfconnector_log_events_total` from the start (0 until they happen).
WATCHED_LOG_EVENTS = ("routing.target_missing", "stream.replay_expired", "deadletter.added")


class Metrics:
    """Every metric the daemon exports; names are stable, admins alert on them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "sfconnector_events_received", "Streaming events received", ["channel"], registry=r
        )
        self.events_skipped = Counter(
            "sfconnector_events_skipped", "Events ignored (own writes, duplicates)", ["reason"], registry=r
        )
        self.routing_decisions = Counter(
            "sfconnector_routing_decisions", "Routing decisions made", ["rule", "action"], registry=r
        )
        self.outbox_results = Counter(
            "sfconnector_outbox_results",
            "Outbox entries written, retried or dead-lettered",
            ["result"],
            registry=r,
        )
        self.dead_letters = Counter(
            "sfconnector_dead_letters", "Events or writes sent to dead letters", registry=r
        )
        self.dead_letters_unresolved = Gauge(
            "sfconnector_dead_letters_unresolved",
            "Dead letters in the state file (not yet retried or dropped)",
            registry=r,
        )
        self.outbox_depth = Gauge("sfconnector_outbox_depth", "Outbox entries not yet written", registry=r)
        self.stream_connected = Gauge(
            "sfconnector_stream_connected", "1 while subscribed to Salesforce streaming", registry=r
        )
        self.stream_reconnects = Counter(
            "sfconnector_stream_reconnects",
            "Streaming resubscriptions (by why the last session ended) and transport reconnects",
            ["reason"],
            registry=r,
        )
        self.checkpoint = Gauge(
            "sfconnector_checkpoint_replay_id", "Last processed replay id", ["channel"], registry=r
        )
        self.checkpoint_age = Gauge(
            "sfconnector_checkpoint_age_seconds",
            "Age of the last event committed on the channel (where a resubscription replays from)",
            ["channel"],
            registry=r,
        )
        self.retention = Gauge(
            "sfconnector_event_retention_seconds",
            "How long Salesforce retains the channel's events for replay",
            ["channel"],
            registry=r,
        )
        self.api_usage = Gauge(
            "sfconnector_api_usage_ratio", "Share of the org's daily API allocation used", registry=r
        )
        self.api_requests_used = Gauge(
            "sfconnector_api_requests_used",
            "The org's API requests used in the last 24 h (Sforce-Limit-Info)",
            registry=r,
        )
        self.api_requests_limit = Gauge(
            "sfconnector_api_requests_limit", "The org's daily API allocation (Sforce-Limit-Info)", registry=r
        )
        self.api_requests_left = Gauge(
            "sfconnector_api_requests_left",
            "API requests left in the org's daily allocation (Sforce-Limit-Info)",
            registry=r,
        )
        self.api_calls = Counter(
            "sfconnector_api_calls",
            "REST API calls this process made (as Salesforce counts them)",
            registry=r,
        )
        self.reconciliations = Counter(
            "sfconnector_reconciliations", "Reconciliation sweeps run", ["trigger"], registry=r
        )
        self.owner_latency = Histogram(
            "sfconnector_lead_owner_latency_seconds",
            "From a referral lead's creation in Salesforce to its owner changed by the connector",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batches_failing = Gauge(
            "sfconnector_batches_failing",
            "1 while a batch of events keeps failing to be decided or committed",
            registry=r,
        )
        self.outbox_stalled = Gauge(
            "sfconnector_outbox_stalled",
            "1 while the outbox has writes waiting and none succeeds",
            registry=r,
        )
        self.healthy = Gauge("sfconnector_healthy", "1 while /healthz answers 200", registry=r)
        self.alerts = Gauge(
            "sfconnector_alert_active", "1 while the alert of that name stands", ["alert"], registry=r
        )
        self.log_events = Counter(
            "sfconnector_log_events",
            "Warnings and errors logged, by stable event name",
            ["event"],
            registry=r,
        )
        self.config_reloads = Counter(
            "sfconnector_config_reloads", "Config reloads on SIGHUP, by result", ["result"], registry=r
        )
        for result in OUTBOX_RESULTS:
            self.outbox_results.labels(result=result)
        for reason in RECONNECT_REASONS:
            self.stream_reconnects.labels(reason=reason)
        for trigger in ("stream", "period"):
            self.reconciliations.labels(trigger=trigger)
        for event in WATCHED_LOG_EVENTS:
            self.log_events.labels(event=event)
        for result in ("applied", "refused"):
            self.config_reloads.labels(result=result)

    def declare_channels(self, channels: Iterable[str], retention_s: dict[str, float]) -> None:
        """Give every channel its series (received, age, retention) before its first event."""
        for channel in channels:
            self.events_received.labels(channel=channel)
            self.retention.labels(channel=channel).set(retention_s[channel])

    def declare_alerts(self, names: Iterable[str]) -> None:
        for name in names:
            self.alerts.labels(alert=name)

    def render(self) -> bytes:
        return generate_latest(self.registry)
