"""What SIGHUP may change in a running daemon, and what it refuses until a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfconnector.config import Config, load_config
from sfconnector.reload import changed_sections, needs_restart

BASE = """
salesforce:
  login_url: https://login.salesforce.com
  auth: {method: jwt, client_id: app, username: integration@example.com, private_key_file: key.pem}
state: {path: state.db}
stream:
  channels: [/data/LeadChangeEvent]
  batch: {max_events: 200}
rules:
  routing:
    rules:
      - {name: to-owner, then: owner_of_advocate}
health: {listen: "127.0.0.1:9108"}
"""


def _config(tmp_path: Path, text: str, name: str) -> Config:
    (tmp_path / "key.pem").write_text("not read")
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    ("old", "new", "section"),
    [
        (
            "{name: to-owner, then: owner_of_advocate}",
            "{name: to-desk, then: keep_standard}",
            "rules.routing",
        ),
        ("max_events: 200", "max_events: 50", "stream.batch"),
        ('listen: "127.0.0.1:9108"', 'listen: "127.0.0.1:9108", unhealthy_after: 5m', "health"),
    ],
)
def test_rules_batching_and_health_thresholds_are_taken_without_a_restart(
    tmp_path: Path, old: str, new: str, section: str
) -> None:
    before = _config(tmp_path, BASE, "a.yaml")
    after = _config(tmp_path, BASE.replace(old, new), "b.yaml")
    assert needs_restart(before, after) == []
    assert changed_sections(before, after) == [section]


@pytest.mark.parametrize(
    ("old", "new", "setting"),
    [
        ("login.salesforce.com", "test.salesforce.com", "salesforce"),
        ("client_id: app", "client_id: other", "salesforce"),
        ("state.db", "other.db", "state.path"),
        (
            "[/data/LeadChangeEvent]",
            "[/data/LeadChangeEvent, /data/OpportunityChangeEvent]",
            "stream.channels",
        ),
        ('listen: "127.0.0.1:9108"', 'listen: "127.0.0.1:9109"', "health.listen"),
    ],
)
def test_the_org_the_state_the_channels_and_the_listener_need_a_restart(
    tmp_path: Path, old: str, new: str, setting: str
) -> None:
    before = _config(tmp_path, BASE, "a.yaml")
    after = _config(tmp_path, BASE.replace(old, new), "b.yaml")
    assert needs_restart(before, after) == [setting]


def test_the_same_file_read_twice_changes_nothing(tmp_path: Path) -> None:
    before = _config(tmp_path, BASE, "a.yaml")
    again = load_config(tmp_path / "a.yaml")
    assert needs_restart(before, again) == [] and changed_sections(before, again) == []
