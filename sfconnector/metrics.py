"""Prometheus metrics of the daemon, on a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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
        self.outbox_depth = Gauge("sfconnector_outbox_depth", "Outbox entries not yet written", registry=r)
        self.stream_connected = Gauge(
            "sfconnector_stream_connected", "1 while subscribed to Salesforce streaming", registry=r
        )
        self.checkpoint = Gauge(
            "sfconnector_checkpoint_replay_id", "Last processed replay id", ["channel"], registry=r
        )
        self.api_usage = Gauge(
            "sfconnector_api_usage_ratio", "Share of the org's daily API allocation used", registry=r
        )
        self.reconciliations = Counter(
            "sfconnector_reconciliations", "Reconciliation sweeps run", ["trigger"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
