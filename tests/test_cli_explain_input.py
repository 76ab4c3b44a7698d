"""`sfconnector explain --lead` with something that is not a record id (a typo, a pasted name, a quote) is
refused with a one-line error before anything reaches Salesforce, not sent on as SOQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_harness import write_config

from sfconnector.cli import main
from sfemulator.server import Emulator


@pytest.mark.parametrize("lead_id", ["nonsense", "00Q5g00000", "00Q' OR Name != '"])
def test_explain_refuses_a_lead_id_that_is_not_a_record_id(
    emulator: Emulator, tmp_path: Path, lead_id: str
) -> None:
    config = write_config(tmp_path, emulator)
    result = CliRunner().invoke(main, ["explain", "--lead", lead_id, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "is not a Salesforce record id" in result.output
    assert "INVALID_QUERY" not in result.output
