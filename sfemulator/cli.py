"""`sfconnector emulator`: run the local Salesforce org in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from pathlib import Path

import click

from sfemulator.control import CONTROL_HELP

_EPILOG = (
    "\b\n"
    + CONTROL_HELP
    + """
\b
Demo identity: connected app sfconnector-demo / demo-secret, user integration@sfconnector.test /
demo-password, JWT signing key DIR/jwt-key.pem. Clients must trust DIR/ca.pem.
"""
)


@click.command("emulator", epilog=_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8443, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--tls-dir",
    default="state/tls",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CA (ca.pem), server certificate and JWT key (jwt-key.pem) are created or reused.",
)
@click.option(
    "--seed", default="demo", show_default=True, help="Org contents: demo, empty, or a JSON seed file."
)
@click.option(
    "--latency-ms", default=0, show_default=True, type=click.IntRange(0), help="Added to every API call."
)
@click.option(
    "--streaming-timeout-ms",
    default=110_000,
    show_default=True,
    type=click.IntRange(1),
    help="How long CometD holds a /meta/connect (advice.timeout).",
)
@click.option(
    "--clock-start",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]),
    help="Run the org's clock from this UTC instant instead of the machine's time (a fixed demo date).",
)
def emulator_command(
    host: str,
    port: int,
    tls_dir: Path,
    seed: str,
    latency_ms: int,
    streaming_timeout_ms: int,
    clock_start: dt.datetime | None,
) -> None:
    """Run a local Salesforce org (REST, OAuth, SOAP login, SOQL, CometD) over HTTPS."""
    from sfemulator.seed import SeedError, resolve_seed
    from sfemulator.server import Emulator

    if seed not in ("demo", "empty"):
        try:
            resolve_seed(seed)
        except SeedError as exc:
            raise click.UsageError(str(exc)) from None
    emulator = Emulator(
        host=host,
        port=port,
        tls_dir=tls_dir,
        seed=seed,
        latency_ms=latency_ms,
        streaming_timeout_ms=streaming_timeout_ms,
        clock_start=clock_start.replace(tzinfo=dt.UTC) if clock_start else None,
    )
    try:
        emulator.prepare()
    except SeedError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot prepare TLS files in {tls_dir}: {exc}") from None
    try:
        asyncio.run(_serve(emulator))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None


async def _serve(emulator: object) -> None:
    from sfemulator.server import Emulator

    assert isinstance(emulator, Emulator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start_async()
    click.echo(f"sfconnector emulator listening on {emulator.base_url} (CA: {emulator.ca_path})", err=False)
    try:
        await stop.wait()
    finally:
        await emulator.stop_async()
