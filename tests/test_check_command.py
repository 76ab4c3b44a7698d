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


def test_a_misspelt_queue_or_an_inactive_user_in_the_rules_fails_check_at_its_position(
    emulator_reset: Emulator, tmp_path: Path
) -> None:
    rules = yaml.safe_load((ROOT / "config" / "rules.yaml").read_text())
    rules["routing"]["rules"][0]["then"] = {"queue": "Referal Desk"}  # the org has "Referral Desk"
    rules["routing"]["rules"][1]["then"] = {"user": "erin.walsh@sfconnector.test"}  # left the company
    rules["routing"]["rules"][2]["then"] = {"user": "nobody.here@sfconnector.test"}
    rules_file = tmp_path / "my-rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    text = rules_file.read_text().splitlines()
    config = write_config(tmp_path, emulator_reset, rules__file=str(rules_file))
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "FAIL  routing targets the rules name" in result.output

    def at(target: str) -> str:
        line = next(n for n, row in enumerate(text, 1) if target in row)
        return f"{rules_file}:{line}:"

    assert f"{at('Referal Desk')}" in result.output
    assert "queue 'Referal Desk' does not exist in the org (did you mean 'Referral Desk'?)" in result.output
    assert f"{at('erin.walsh')}" in result.output and "is inactive" in result.output
    assert "user 'nobody.here@sfconnector.test' does not exist in the org" in result.output
