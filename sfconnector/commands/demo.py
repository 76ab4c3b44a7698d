"""`sfconnector demo`: the whole loop on the embedded emulator, in one command."""

from __future__ import annotations

from pathlib import Path

import click

from sfconnector.commands._common import fail, load_or_exit


@click.command("demo")
@click.option(
    "--config",
    "config_path",
    default=None,
    help="Config to run the daemon on (default: connector.yaml if present, else connector.yaml.example).",
)
@click.option("--keep", is_flag=True, help="Keep the demo's working directory (state, logs, config).")
def demo(config_path: str | None, keep: bool) -> None:
    """Start the emulator and the daemon, submit referrals on every channel, show who got them and why."""
    from sfconnector.demo import ROOT, run_demo

    if config_path is None:
        local = Path("connector.yaml")
        path = local if local.exists() else ROOT / "connector.yaml.example"
    else:
        path = Path(config_path)
    if not path.exists():
        fail(f"no config at {path}")
    load_or_exit(str(path))  # a bad config fails here with file:line:col, before anything starts
    run_demo(path.resolve(), keep=keep)
