"""`sfconnector run`: the daemon (systemd Type=notify; SIGTERM drains and exits 0, SIGHUP reloads).

Exit status: 0 after a clean stop; 2 for a bad config; 3 for a state file this daemon must not use as it
stands (another org's, or a newer schema); 1 for anything else. The units set RestartPreventExitStatus=2 3:
restarting cannot fix what a person must.
"""

from __future__ import annotations

import asyncio

import click

from sfconnector.clock import clock_starting_at, parse_instant, system_clock
from sfconnector.commands._common import config_option, connect_or_exit, fail, load_or_exit
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging, get_logger
from sfconnector.state import StateSetupError

EXIT_STATE = 3


@click.command("run")
@config_option
@click.option(
    "--clock-start",
    hidden=True,  # for the demo and tests only: an org on a fixed date needs a daemon on the same one
    help="Run the local clock from this ISO 8601 instant (e.g. 2026-12-07T15:00:00Z) at real speed.",
)
def run(config_path: str, clock_start: str | None) -> None:
    """Run the daemon until SIGTERM/SIGINT: stream, route, write back, checkpoint; SIGHUP reloads the config."""
    clock = system_clock
    if clock_start:
        try:
            clock = clock_starting_at(parse_instant(clock_start))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--clock-start") from None
    config = load_or_exit(config_path)
    fmt = config.logging.format
    configure_logging(config.logging.level, json=None if fmt == "auto" else fmt == "json")
    log = get_logger("sfconnector.run")
    from sfconnector.daemon import Daemon

    tokens, client = connect_or_exit(config, clock)

    async def main() -> None:
        daemon = Daemon(config, tokens=tokens, client=client, clock=clock)
        daemon.install_signal_handlers()
        await daemon.run()

    try:
        asyncio.run(main())
    except StateSetupError as exc:
        log.error("daemon.fatal", error=str(exc), exit_status=EXIT_STATE)
        fail(str(exc), EXIT_STATE)
    except SfconnectorError as exc:
        log.error("daemon.fatal", error=str(exc))
        fail(str(exc))
    except KeyboardInterrupt:
        pass
