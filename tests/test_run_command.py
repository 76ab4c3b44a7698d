"""`sfconnector run` refuses a bad config the way `validate` does: every problem with its position, exit 2."""

import subprocess
import sys
from pathlib import Path


def test_run_on_a_bad_config_exits_2_with_positions_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(
        "salesforce:\n"
        "  login_url: https://login.salesforce.com\n"
        "  auth:\n"
        "    method: client_credentials\n"
        "    client_id: abc\n"
        "    client_secret: hunter2\n"
        "stream:\n"
        "  chanels: [/data/LeadChangeEvent]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sfconnector", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{config}:6:20:" in result.stderr  # the literal secret
    assert f"{config}:8:3:" in result.stderr  # the misspelt key
    assert "hunter2" not in result.stderr + result.stdout
