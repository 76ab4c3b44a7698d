"""Log alerts with stable names: when each is raised and cleared, logged once each way, and the gauge that
says which stand; the checkpoint-age alert on a daemon whose state says it was away for days."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from sfconnector import alerts
from sfconnector.alerts import Alerts, api_left_share, checkpoints_too_old, retention_seconds
from sfconnector.clock import ManualClock
from sfconnector.config import load_config
from sfconnector.daemon import Daemon
from sfconnector.logging import add_event_listener, configure_logging
from sfconnector.metrics import Metrics
from sfconnector.state import DecidedBatch, StateStore

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOUR = 3600.0
CONFIG = """
salesforce:
  login_url: https://login.salesforce.com
  auth: {method: jwt, client_id: app, username: integration@example.com, private_key_file: key.pem}
state: {path: state.db}
stream:
  channels: [/data/LeadChangeEvent, /event/Referral_Submitted__e]
health: {enabled: false}
"""


def _gauge(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value("sfconnector_alert_active", {"alert": name})
    assert value is not None
    return value


def test_change_events_and_platform_events_are_retained_72_hours_pushtopics_24() -> None:
    assert retention_seconds("/data/LeadChangeEvent") == 72 * HOUR
    assert retention_seconds("/event/Referral_Submitted__e") == 72 * HOUR
    assert retention_seconds("/topic/NewLeads") == 24 * HOUR


def test_a_checkpoint_past_half_the_retention_is_an_alert_unless_the_channel_is_caught_up() -> None:
    retention = {"/data/LeadChangeEvent": 72 * HOUR, "/data/Reward__ChangeEvent": 72 * HOUR}
    ages = {"/data/LeadChangeEvent": 40 * HOUR, "/data/Reward__ChangeEvent": 10 * HOUR}
    assert checkpoints_too_old(ages, retention, caught_up=False) == {"/data/LeadChangeEvent": 40 / 72}
    assert checkpoints_too_old(ages, retention, caught_up=True) == {}  # quiet, not behind


def test_the_share_of_the_api_allocation_left() -> None:
    assert api_left_share(8_500, 10_000) == 0.15
    assert api_left_share(12_000, 10_000) == 0.0
    assert api_left_share(5, 0) == 1.0


def test_an_alert_is_logged_once_when_raised_and_once_when_cleared_and_its_gauge_follows() -> None:
    metrics = Metrics()
    standing = Alerts(metrics)
    assert _gauge(metrics, alerts.CHECKPOINT_AGE) == 0
    with structlog.testing.capture_logs() as logs:
        assert standing.raise_(alerts.CHECKPOINT_AGE, "/data/LeadChangeEvent", age_s=1)
        assert not standing.raise_(alerts.CHECKPOINT_AGE, "/data/LeadChangeEvent", age_s=2)
        standing.raise_(alerts.CHECKPOINT_AGE, "/event/Referral_Submitted__e")
        assert _gauge(metrics, alerts.CHECKPOINT_AGE) == 1
        assert standing.clear(alerts.CHECKPOINT_AGE, "/data/LeadChangeEvent")
        assert _gauge(metrics, alerts.CHECKPOINT_AGE) == 1  # the other channel still stands
        standing.clear_all(alerts.CHECKPOINT_AGE)
        assert not standing.clear(alerts.CHECKPOINT_AGE, "/data/LeadChangeEvent")
    assert _gauge(metrics, alerts.CHECKPOINT_AGE) == 0
    assert [(e["event"], e.get("subject")) for e in logs] == [
        ("alert.checkpoint_age", "/data/LeadChangeEvent"),
        ("alert.checkpoint_age", "/event/Referral_Submitted__e"),
        ("alert.cleared", "/data/LeadChangeEvent"),
        ("alert.cleared", "/event/Referral_Submitted__e"),
    ]
    assert logs[0]["log_level"] == "warning"


def test_a_daemon_back_after_two_days_away_alerts_on_its_checkpoints_age(tmp_path: Path) -> None:
    (tmp_path / "connector.yaml").write_text(CONFIG)
    (tmp_path / "key.pem").write_text("not used: nothing logs in here")
    away = T0 - timedelta(hours=40)
    with StateStore.open(tmp_path / "state.db", clock=ManualClock(away)) as state:
        state.commit_batch(DecidedBatch(checkpoints={"/data/LeadChangeEvent": 41}))
        state.record_readings({"last_event:/data/LeadChangeEvent": away.isoformat()})
    daemon = Daemon(load_config(tmp_path / "connector.yaml"), clock=ManualClock(T0))
    try:
        with structlog.testing.capture_logs() as logs:
            asyncio.run(daemon._observe())
    finally:
        daemon.state.close()
    raised = [e for e in logs if e["event"] == "alert.checkpoint_age"]
    assert [e["subject"] for e in raised] == ["/data/LeadChangeEvent"]
    assert raised[0]["age_s"] == 40 * 3600 and raised[0]["retention_s"] == 72 * 3600
    age = daemon.metrics.registry.get_sample_value(
        "sfconnector_checkpoint_age_seconds", {"channel": "/data/LeadChangeEvent"}
    )
    assert age == 40 * 3600


def test_warnings_are_counted_by_stable_event_name_and_a_missing_routing_target_raises_its_alert(
    tmp_path: Path,
) -> None:
    (tmp_path / "connector.yaml").write_text(CONFIG)
    (tmp_path / "key.pem").write_text("not used: nothing logs in here")
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", json=True, stream=io.StringIO())
    daemon = Daemon(load_config(tmp_path / "connector.yaml"), clock=ManualClock(T0))
    stop = add_event_listener(daemon._on_log_event)
    try:
        log = structlog.get_logger("test")
        log.warning("routing.target_missing", target="queue Referral Dsk")
        log.warning("routing.target_missing", target="queue Referral Dsk")
        log.info("routing.decided")  # not a warning: not counted
        logging.getLogger("urllib3").warning("Connection pool is full, discarding connection: %s", "x")
        asyncio.run(daemon._observe())
    finally:
        stop()
        daemon.state.close()
        structlog.configure(**saved)
        root.handlers[:], root.level = handlers, level
    counted = daemon.metrics.registry.get_sample_value
    assert counted("sfconnector_log_events_total", {"event": "routing.target_missing"}) == 2
    assert counted("sfconnector_log_events_total", {"event": "routing.decided"}) is None
    assert _gauge(daemon.metrics, alerts.ROUTING_TARGET_MISSING) == 1
    families = {m.name for m in daemon.metrics.registry.collect()}
    assert "sfconnector_log_events" in families
    labels = {s.labels.get("event") for m in daemon.metrics.registry.collect() for s in m.samples}
    assert not any(label and " " in label for label in labels)  # free text never becomes a label
