"""A config whose JWT key file cannot be read is a config problem for every command that logs in: the
file:line message with a hint naming the setting, exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sfconnector.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text())
    config["salesforce"]["ca_bundle"] = None
    config["salesforce"]["auth"]["private_key_file"] = str(tmp_path / "missing-key.pem")
    config["state"]["path"] = str(tmp_path / "state.db")
    config["mapping"]["file"] = str(ROOT / "config" / "mapping.yaml")
    config["rules"]["file"] = str(ROOT / "config" / "rules.yaml")
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["run"],
        ["explain", "--lead", "00Q5g0000000001EAA"],
        ["report"],
        ["reconcile", "--since", "7d"],
    ],
    ids=lambda args: args[0],
)
def test_an_unreadable_jwt_key_is_a_config_error_with_exit_2(config_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--config", str(config_path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"{config_path}:" in result.output
    assert "cannot read the JWT private key" in result.output
    assert "salesforce.auth.private_key_file" in result.output
