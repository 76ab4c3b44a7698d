"""`sfconnector check`, the online preflight, against the emulator."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner
from daemon_harness import ROOT, write_config

from sfconnector.cli import main
from sfemulator.server import Emulator


def test_check_passes_on_a_healthy_org(emulator_reset: Emulator, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(write_config(tmp_path, emulator_reset))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok    login as integration@sfconnector.test")
    assert any(line.startswith("ok    mapped objects and fields") for line in lines)
    assert any(line.startswith("ok    subscribe to") for line in lines)
    assert any("daily requests left" in line for line in lines)


def test_check_names_fields_the_org_lacks_and_fails(emulator_reset: Emulator, tmp_path: Path) -> None:
    mapping = yaml.safe_load((ROOT / "config" / "mapping.yaml").read_text())
    mapping["additional_fields"] = {"Lead": ["Referal_Source__c"]}  # declared by the admin, absent in the org
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    config = write_config(tmp_path, emulator_reset, mapping__file=str(tmp_path / "mapping.yaml"))
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert "FAIL  mapped objects and fields" in result.output
    assert "Lead.Referal_Source__c does not exist" in result.output


def test_check_reports_a_refused_login_without_a_traceback(emulator_reset: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emulator_reset, salesforce__auth__username="nobody@sfconnector.test")
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith("FAIL  login to")
    assert "Traceback" not in result.output
