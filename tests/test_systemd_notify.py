"""sd_notify datagrams as systemd receives them."""

import socket
import time
from pathlib import Path

import pytest

from sfconnector.systemd import STOP_TIMEOUT_ENV, Notifier, drain_limit, parse_timespan


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    return sock


def test_ready_and_watchdog_reach_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _listen(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000"})
        assert notifier.ready("subscribed")
        assert sock.recv(256) == b"READY=1\nSTATUS=subscribed"
        assert notifier.watchdog()
        assert sock.recv(256) == b"WATCHDOG=1"
        assert notifier.watchdog_interval == 10.0


def test_abstract_namespace_socket_is_supported() -> None:
    name = f"sfconnector-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert sock.recv(64) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None
    assert not notifier.ready()


def test_reloading_carries_the_monotonic_time_of_the_reload(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _listen(path) as sock:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert Notifier({"NOTIFY_SOCKET": str(path)}).reloading("reloading")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = dict(line.split("=", 1) for line in sock.recv(256).decode().splitlines())
    assert fields["RELOADING"] == "1" and fields["STATUS"] == "reloading"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_a_listener_that_stops_reading_never_blocks_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _listen(path):
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        sent = [notifier.watchdog() for _ in range(1000)]  # far beyond the socket's queue
    assert sent[0] and not all(sent)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("1min 30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("infinity", None),
        ("x", None),
    ],
)
def test_systemd_time_spans_are_read_as_seconds(text: str, seconds: float | None) -> None:
    assert parse_timespan(text) == seconds


def test_the_drain_limit_follows_the_units_stop_timeout_or_the_setting() -> None:
    assert drain_limit(None, {}) == (30.0, "default")
    assert drain_limit(12.0, {}) == (12.0, "writer.drain_timeout")
    limit, source = drain_limit(None, {STOP_TIMEOUT_ENV: "90"}, request_timeout=30.0)
    assert limit == 55.0 and source.startswith(STOP_TIMEOUT_ENV)
    assert drain_limit(20.0, {STOP_TIMEOUT_ENV: "90"}, request_timeout=30.0) == (20.0, "writer.drain_timeout")
    # A setting longer than the stop timeout allows is cut to what ends before SIGKILL.
    assert drain_limit(300.0, {STOP_TIMEOUT_ENV: "90"}, request_timeout=30.0)[0] == 55.0
