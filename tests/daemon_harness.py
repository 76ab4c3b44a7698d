"""Start `sfconnector run` as a separate process against the test emulator, and poll for results.

The daemon is a real subprocess with its own config file, state file and log, exactly as IT runs it; tests
observe only what Salesforce (the emulator) shows, through its REST API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from sfemulator.server import Emulator

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def example_rules_without_promotions() -> dict[str, Any]:
    """config/rules.yaml as shipped, less its promotions: those carry real dates (an admin's December
    double), so a test that expects an amount would change with the calendar. Tests of promotions give
    their own windows, around the org's clock."""
    rules: dict[str, Any] = yaml.safe_load((ROOT / "config" / "rules.yaml").read_text())
    rules.get("rewards", {}).pop("promotions", None)
    return rules


def write_config(directory: Path, emulator: Emulator, **overrides: Any) -> Path:
    """connector.yaml.example, pointed at the emulator, with its files made absolute; its rules are the
    example's without the dated promotions (`example_rules_without_promotions`)."""
    directory.mkdir(parents=True, exist_ok=True)
    rules_file = directory / "example-rules.yaml"
    rules_file.write_text(yaml.safe_dump(example_rules_without_promotions(), sort_keys=False))
    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text())
    config["salesforce"]["login_url"] = emulator.base_url
    config["salesforce"]["ca_bundle"] = str(emulator.ca_path)
    config["salesforce"]["auth"]["private_key_file"] = str(Path(emulator.tls_dir) / "jwt-key.pem")
    config["state"]["path"] = str(directory / "state.db")
    config["mapping"]["file"] = str(ROOT / "config" / "mapping.yaml")
    config["rules"]["file"] = str(rules_file)
    config["health"]["listen"] = f"127.0.0.1:{free_port()}"
    config["stream"]["batch"]["max_wait_ms"] = 50
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = directory / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def wait_for(check: Callable[[], T | None], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # polling interval, not a wait for the thing itself
        delay = min(delay * 1.5, 0.25)


class DaemonProcess:
    """`sfconnector run --config PATH` in a subprocess, logging to a file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.health_url = "http://" + yaml.safe_load(config_path.read_text())["health"]["listen"] + "/healthz"

    def start(self, *, wait_ready: bool = True, env: dict[str, str] | None = None) -> DaemonProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sfconnector", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.config_path.parent,
            )
        if wait_ready:
            wait_for(self._healthy, timeout=30, what=f"daemon to subscribe (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
        try:
            return requests.get(self.health_url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL: the crash no code of ours can intercept."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class NotifySocket:
    """The datagram socket systemd listens on ($NOTIFY_SOCKET): every sd_notify message the daemon sends, in
    order. A thread reads it all the time, as systemd does (an unread socket fills up after ten datagrams)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self.messages: list[str] = []
        self._read = 0  # messages before this index were looked at by wait_for or drain
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                self.messages.append(data.decode())
                self._changed.notify_all()

    def wait_for(
        self, check: Callable[[str], bool], *, timeout: float = 30.0, what: str = "a message"
    ) -> str:
        """The first message not looked at yet that satisfies `check` (those before it count as looked at)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._read < len(self.messages):
                    message = self.messages[self._read]
                    self._read += 1
                    if check(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; last: {self.messages[-10:]}"
                    )
                self._changed.wait(left)

    def drain(self) -> list[str]:
        """The messages not looked at yet; they count as looked at from now on."""
        with self._changed:
            got, self._read = self.messages[self._read :], len(self.messages)
            return got

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        self._sock.close()


def notify_fields(message: str) -> dict[str, str]:
    """`READY=1\nSTATUS=...` -> {"READY": "1", "STATUS": "..."}."""
    return dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
