"""The daemon keeps its state file from growing for ever, without forgetting what makes replays no-ops."""

from datetime import timedelta
from pathlib import Path

from sfconnector.clock import system_clock
from sfconnector.config import load_config
from sfconnector.daemon import Daemon
from sfconnector.state import DecidedBatch, RoutingLogRow

CONFIG = """
salesforce:
  login_url: https://login.salesforce.com
  auth: {method: jwt, client_id: app, username: integration@example.com, private_key_file: key.pem}
state: {path: state.db}
"""


def test_history_older_than_the_keep_window_is_pruned_and_recent_history_kept(tmp_path: Path) -> None:
    (tmp_path / "connector.yaml").write_text(CONFIG)
    (tmp_path / "key.pem").write_text("not used: nothing logs in here")
    daemon = Daemon(load_config(tmp_path / "connector.yaml"))
    now = system_clock()

    def row(lead: str, age_days: int) -> RoutingLogRow:
        return RoutingLogRow(lead, None, None, None, "r", "why", now - timedelta(days=age_days))

    daemon.state.commit_batch(
        DecidedBatch(routing_log=[row("00Q000000000001AAA", 90), row("00Q000000000002AAA", 1)])
    )
    daemon._prune()
    assert [r.lead_id for r in daemon.state.routing_log()] == ["00Q000000000002AAA"]
    daemon.state.close()
