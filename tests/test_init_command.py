"""`sfconnector init DIR`: a starter config for a new org that validates once its key is in place, and never
overwrites what an admin already wrote."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfconnector.cli import main


def _key(directory: Path) -> Path:
    directory.mkdir()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "jwt-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return directory


def test_init_writes_a_config_for_a_real_org_that_validates(tmp_path: Path) -> None:
    org = tmp_path / "acme"
    result = CliRunner().invoke(
        main,
        ["init", str(org), "--login-url", "https://acme.my.salesforce.com", "--username", "sfc@acme.example"],
    )
    assert result.exit_code == 0, result.output
    config = (org / "connector.yaml").read_text()
    assert config.startswith("# yaml-language-server: $schema=config/connector.schema.json\n")
    assert "login_url: https://acme.my.salesforce.com" in config
    assert "username: sfc@acme.example" in config
    assert "private_key_file: credential:jwt-key.pem" in config
    assert "127.0.0.1" not in config.split("salesforce:", 1)[1].split("state:", 1)[0]
    for unit in ("sfconnector.service", "sfconnector@.service"):
        assert (org / "systemd" / unit).is_file()
    validated = CliRunner().invoke(
        main,
        ["validate", "--config", str(org / "connector.yaml"), "--credentials-dir", str(_key(tmp_path / "c"))],
    )
    assert validated.exit_code == 0, validated.output


def test_init_refuses_to_overwrite_an_existing_config_unless_forced(tmp_path: Path) -> None:
    org = tmp_path / "acme"
    org.mkdir()
    (org / "connector.yaml").write_text("# mine\n")
    refused = CliRunner().invoke(main, ["init", str(org)])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert (org / "connector.yaml").read_text() == "# mine\n"
    forced = CliRunner().invoke(main, ["init", str(org), "--force"])
    assert forced.exit_code == 0 and "login_url:" in (org / "connector.yaml").read_text()
