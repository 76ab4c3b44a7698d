"""Where the commands that read the state (status, deadletters, state backup) find it, the same as the daemon.

The daemon keeps its state at `state.path`, else `$STATE_DIRECTORY/sfconnector.db` (systemd's
StateDirectory=), else `state/sfconnector.db` next to the config. A shell has no $STATE_DIRECTORY, so when the
config names no path and the local default does not exist, these commands look where the shipped units keep
it:

- `sfconnector@NAME.service` (config `/etc/sfconnector/NAME.yaml`): `/var/lib/sfconnector-NAME/sfconnector.db`
- `sfconnector.service` (config `connector.yaml`): `/var/lib/sfconnector/sfconnector.db`

`--state PATH` (a file, or the directory holding `sfconnector.db`) overrides all that, and needs no config:
`status`, `deadletters list|drop` and `state backup` then read nothing else, no secret included.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sfconnector.commands._common import fail, load_or_exit
from sfconnector.config import Config

F = TypeVar("F", bound=Callable[..., Any])

STATE_FILE = "sfconnector.db"
SYSTEMD_STATE_ROOT = Path("/var/lib")


def state_option(fn: F) -> F:
    return click.option(
        "--state",
        "state_opt",
        type=click.Path(path_type=Path),
        default=None,
        help="The state file, or its directory (default: where the daemon of --config keeps it).",
    )(fn)


def config_given() -> bool:
    """Whether --config was on the command line (not its default)."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source("config_path")
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def unit_state_candidates(config_file: Path, root: Path = SYSTEMD_STATE_ROOT) -> list[Path]:
    """Where the shipped units keep the state of the daemon running on `config_file`."""
    name = config_file.name.removesuffix(".yaml").removesuffix(".yml")
    found = [root / f"sfconnector-{name}" / STATE_FILE]
    if name == "connector":
        found.append(root / "sfconnector" / STATE_FILE)
    return found


def _local_default(config: Config) -> Path:
    return Path(os.path.abspath(Path(config.source).parent / "state" / STATE_FILE))


def locate_state(config: Config, root: Path = SYSTEMD_STATE_ROOT) -> tuple[Path, list[Path]]:
    """The state file of `config` and the places looked at (the first is where the daemon would create it)."""
    configured = config.state.path
    if configured.exists() or Path(os.path.abspath(configured)) != _local_default(config):
        return configured, [configured]
    looked = [configured]
    for candidate in unit_state_candidates(Path(config.source), root):
        looked.append(candidate)
        if candidate.exists():
            return candidate, looked
    return configured, looked


def state_file(
    config_path: str, state_opt: Path | None, *, want_config: bool = False
) -> tuple[Path, Config | None]:
    """The state file to open, and the config when it was needed or asked for (else None)."""
    if state_opt is not None:
        path = state_opt / STATE_FILE if state_opt.is_dir() else state_opt
        if not path.exists():
            fail(f"no state at {path}")
        config = load_or_exit(config_path) if want_config or config_given() else None
        return path, config
    config = load_or_exit(config_path)
    path, looked = locate_state(config)
    if not path.exists():
        places = ", ".join(str(p) for p in looked)
        fail(
            f"no state at {places}: the daemon has not run with this config yet, or keeps its state "
            "elsewhere (pass --state PATH)"
        )
    return path, config
