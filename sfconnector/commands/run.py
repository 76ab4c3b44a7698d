"""`sfconnector run`: the daemon (systemd Type=notify; SIGTERM drains and exits 0)."""

from __future__ import annotations

import asyncio

import click

from sfconnector.commands._common import config_option, connect_or_exit, fail, load_or_exit
from sfconnector.errors import SfconnectorError
from sfconnector.logging import configure_logging, get_logger


@click.command("run")
@config_option
def run(config_path: str) -> None:
    """Run the daemon until SIGTERM/SIGINT: stream, route, write back, checkpoint."""
    config = load_or_exit(config_path)
    fmt = config.logging.format
    configure_logging(config.logging.level, json=None if fmt == "auto" else fmt == "json")
    log = get_logger("sfconnector.run")
    from sfconnector.daemon import Daemon

    tokens, client = connect_or_exit(config)

    async def main() -> None:
        daemon = Daemon(config, tokens=tokens, client=client)
        daemon.install_signal_handlers()
        await daemon.run()

    try:
        asyncio.run(main())
    except SfconnectorError as exc:
        log.error("daemon.fatal", error=str(exc))
        fail(str(exc))
    except KeyboardInterrupt:
        pass
