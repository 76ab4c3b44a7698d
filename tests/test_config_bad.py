"""Bad configs: each file in tests/bad_configs names, in `# expect:` lines, exactly what validate must print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfconnector.cli import main

BAD = Path(__file__).parent / "bad_configs"
CASES = sorted(p.name for p in BAD.glob("*.yaml"))
# Variables the bad configs rely on being absent.
UNSET = {
    "SFCONNECTOR_TEST_UNSET_SECRET": None,
    "SFCONNECTOR_TEST_UNSET_LOGIN_URL": None,
    "CREDENTIALS_DIRECTORY": None,
}


def expected_lines(name: str) -> list[str]:
    text = (BAD / name).read_bytes().decode("latin-1")
    return [line.removeprefix("# expect: ") for line in text.splitlines() if line.startswith("# expect: ")]


def test_the_suite_has_at_least_twenty_bad_configs_each_with_expectations() -> None:
    assert len(CASES) >= 20
    for name in CASES:
        assert expected_lines(name), f"{name} has no '# expect:' line"


@pytest.mark.parametrize("name", CASES)
def test_bad_config_prints_every_problem_at_its_position_and_exits_2(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BAD)
    result = CliRunner().invoke(main, ["validate", "--config", name], env=UNSET)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    printed = result.stderr.splitlines()
    expected = expected_lines(name)
    assert printed[:-1] == expected
    assert printed[-1] == f"config invalid: {len(expected)} problem{'s' if len(expected) != 1 else ''}"
    assert "Traceback" not in result.output


def test_validate_as_a_real_process_exits_2_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "sfconnector"),
            "validate",
            "--config",
            "27_many_problems_at_once.yaml",
        ],
        cwd=BAD,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.splitlines()[:-1] == expected_lines("27_many_problems_at_once.yaml")


def test_missing_config_file_is_reported_with_a_hint_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "connector.yaml"
    result = CliRunner().invoke(main, ["validate", "--config", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{missing}:1:1: cannot read {missing}: No such file or directory "
        "(pass --config PATH, or copy connector.yaml.example to connector.yaml)"
    )


def test_unreadable_config_file_is_reported_not_a_traceback(tmp_path: Path) -> None:
    directory = tmp_path / "connector.yaml"
    directory.mkdir()  # reading a directory fails on every platform, even as root
    result = CliRunner().invoke(main, ["validate", "--config", str(directory)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{directory}:1:1: cannot read {directory}: Is a directory")
