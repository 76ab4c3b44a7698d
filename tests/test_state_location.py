"""Commands that read the state find it where the daemon keeps it, from a shell too (no $STATE_DIRECTORY
there): state.path, $STATE_DIRECTORY, next to the config, or where the shipped units keep it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfconnector.commands._state import locate_state, unit_state_candidates
from sfconnector.config import Config, load_config

CONFIG = """
salesforce:
  login_url: https://login.salesforce.com
  auth: {method: jwt, client_id: app, username: integration@example.com, private_key_file: key.pem}
"""


def _config(directory: Path, name: str, extra: str = "", env: dict[str, str] | None = None) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key.pem").write_text("not read")
    (directory / name).write_text(CONFIG + extra)
    return load_config(directory / name, env=env or {})


def test_the_template_instance_and_the_plain_unit_are_where_a_shell_looks() -> None:
    assert unit_state_candidates(Path("/etc/sfconnector/acme.yaml"), Path("/var/lib")) == [
        Path("/var/lib/sfconnector-acme/sfconnector.db")
    ]
    assert unit_state_candidates(Path("/etc/sfconnector/connector.yaml"), Path("/var/lib")) == [
        Path("/var/lib/sfconnector-connector/sfconnector.db"),
        Path("/var/lib/sfconnector/sfconnector.db"),
    ]


def test_without_a_state_path_a_shell_finds_the_units_state_directory(tmp_path: Path) -> None:
    root = tmp_path / "var-lib"
    config = _config(tmp_path / "etc", "acme.yaml")
    path, looked = locate_state(config, root)
    assert path == tmp_path / "etc" / "state" / "sfconnector.db" and not path.exists()
    assert looked[-1] == root / "sfconnector-acme" / "sfconnector.db"
    (root / "sfconnector-acme").mkdir(parents=True)
    (root / "sfconnector-acme" / "sfconnector.db").touch()
    assert locate_state(config, root)[0] == root / "sfconnector-acme" / "sfconnector.db"


@pytest.mark.parametrize("how", ["state.path", "STATE_DIRECTORY"])
def test_a_state_named_by_the_config_or_the_environment_is_taken_as_it_is(tmp_path: Path, how: str) -> None:
    root = tmp_path / "var-lib"
    (root / "sfconnector-acme").mkdir(parents=True)
    (root / "sfconnector-acme" / "sfconnector.db").touch()
    wanted = tmp_path / "elsewhere" / "sfconnector.db"
    if how == "state.path":
        config = _config(tmp_path / "etc", "acme.yaml", f"state: {{path: {wanted}}}\n")
    else:
        config = _config(tmp_path / "etc", "acme.yaml", env={"STATE_DIRECTORY": str(wanted.parent)})
    assert locate_state(config, root) == (wanted, [wanted])
