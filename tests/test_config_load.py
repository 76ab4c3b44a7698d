"""Good configs: what loading produces, how secrets resolve, what is frozen, and the validate command."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfconnector.cli import main
from sfconnector.config import ConfigError, load_config
from sfconnector.rules.model import RoutingAction

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "connector.yaml.example"

MINIMAL = """\
salesforce:
  login_url: https://login.salesforce.com/
  auth:
    method: jwt
    client_id: 3MVG9abc
    username: integration@example.com
    private_key_file: keys/jwt.pem
"""


def write(tmp_path: Path, text: str, name: str = "connector.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_and_names_the_emulator_identity() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.salesforce.login_url == "https://127.0.0.1:8443"
    assert config.salesforce.auth.method == "jwt"
    assert config.salesforce.auth.client_id == "sfconnector-demo"
    assert config.salesforce.auth.username == "integration@sfconnector.test"
    assert config.salesforce.auth.private_key_file == ROOT / "state/tls/jwt-key.pem"
    assert config.salesforce.ca_bundle == ROOT / "state/tls/ca.pem"
    assert [r.name for r in config.routing.rules] == [
        "partner-social-to-desk",
        "enterprise-to-diego",
        "employee-referrals-to-owner",
        "advocate-owner",
    ]
    assert config.routing.fallbacks.inactive_owner == RoutingAction("queue", "Referral Desk")
    assert config.rewards is not None and config.notifications is not None


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert config.salesforce.login_url == "https://login.salesforce.com"  # trailing slash dropped
    assert config.salesforce.api_version == "59.0"
    assert config.salesforce.client_name == "sfconnector"
    assert config.stream.channels == ("/data/LeadChangeEvent", "/event/Referral_Submitted__e")
    assert config.stream.start == "latest"
    assert config.writer.batch_size == 600
    assert config.state.path == tmp_path / "state/sfconnector.db"
    assert config.mapping.advocate.referral_code == "Referral_Code__c"
    assert config.mapping.referral_code.case == "upper"
    assert config.routing.rules == ()
    assert config.routing.fallbacks.unknown_advocate.kind == "keep_standard"
    assert config.attribution.existing_lead.within_days == 30
    assert "gmail.com" in config.attribution.self_referral.free_mail_domains
    assert config.health.host == "127.0.0.1" and config.health.port == 9108
    assert config.salesforce.auth.private_key_file == tmp_path / "keys/jwt.pem"


def test_loaded_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.writer.batch_size = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.routing.fallbacks.no_match = RoutingAction("queue", "X")  # type: ignore[misc]


def test_state_path_defaults_to_systemd_state_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={"STATE_DIRECTORY": "/var/lib/sfconnector"})
    assert config.state.path == Path("/var/lib/sfconnector/sfconnector.db")


def test_paths_expand_environment_variables(tmp_path: Path) -> None:
    text = MINIMAL + "state:\n  path: ${SFCONNECTOR_STATE_DIR}/db.sqlite\n"
    config = load_config(write(tmp_path, text), env={"SFCONNECTOR_STATE_DIR": "/srv/state"})
    assert config.state.path == Path("/srv/state/db.sqlite")


CLIENT_CREDENTIALS = """\
salesforce:
  login_url: https://login.salesforce.com
  auth:
    method: client_credentials
    client_id: 3MVG9abc
    client_secret: {secret}
"""


def test_secret_from_environment_variable_is_resolved_and_hidden(tmp_path: Path) -> None:
    path = write(tmp_path, CLIENT_CREDENTIALS.format(secret="${SF_SECRET}"))
    config = load_config(path, env={"SF_SECRET": "very-secret-value"})
    secret = config.salesforce.auth.client_secret
    assert secret is not None and secret.reveal() == "very-secret-value"
    assert "very-secret-value" not in repr(config)
    assert "very-secret-value" not in str(secret)


def test_secret_from_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    write(tmp_path, "from-a-file\n", "secrets/client-secret")
    config = load_config(
        write(tmp_path, CLIENT_CREDENTIALS.format(secret="file:secrets/client-secret")), env={}
    )
    assert config.salesforce.auth.client_secret is not None
    assert config.salesforce.auth.client_secret.reveal() == "from-a-file"


def test_secret_from_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    write(creds, "from-systemd\n", "client-secret")
    path = write(tmp_path, CLIENT_CREDENTIALS.format(secret="credential:client-secret"))
    config = load_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.salesforce.auth.client_secret is not None
    assert config.salesforce.auth.client_secret.reveal() == "from-systemd"


def test_private_key_file_may_be_a_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    write(creds, "-----BEGIN PRIVATE KEY-----\n", "jwt-key.pem")
    path = write(tmp_path, MINIMAL.replace("keys/jwt.pem", "credential:jwt-key.pem"))
    config = load_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.salesforce.auth.private_key_file == creds / "jwt-key.pem"


def test_missing_secret_file_is_a_problem_at_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, CLIENT_CREDENTIALS.format(secret="file:nope"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    [problem] = caught.value.problems
    assert (problem.line, problem.col) == (6, 20)
    assert problem.message == f"cannot read secret file {tmp_path / 'nope'}: No such file or directory"


def test_api_names_are_matched_case_insensitively_and_canonicalised(tmp_path: Path) -> None:
    text = MINIMAL + (
        "mapping:\n  advocate:\n    object: advocate__c\n    email: EMAIL__C\n"
        "rules:\n  routing:\n    rules:\n      - name: r\n        when: {lead.company: Acme}\n"
        "        then: keep_standard\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.mapping.advocate.object == "Advocate__c"
    assert config.mapping.advocate.email == "Email__c"
    assert config.routing.rules[0].when is not None
    assert config.routing.rules[0].when.subject == "lead.Company"  # type: ignore[union-attr]


def test_additional_fields_make_org_specific_fields_usable(tmp_path: Path) -> None:
    rule = "rules:\n  routing:\n    rules:\n      - name: r\n        when: {lead.Region__c: EMEA}\n        then: keep_standard\n"
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, MINIMAL + rule), env={})
    extra = "mapping:\n  additional_fields:\n    Lead: [Region__c]\n"
    config = load_config(write(tmp_path, MINIMAL + extra + rule), env={})
    assert config.mapping.additional_fields == {"Lead": ("Region__c",)}


def test_sections_can_live_in_their_own_files(tmp_path: Path) -> None:
    write(tmp_path, "rules:\n  - name: everyone\n    then: owner_of_advocate\n", "rules/routing.yaml")
    write(
        tmp_path,
        "routing:\n  file: routing.yaml\nattribution:\n  duplicates: {winner: latest}\n",
        "rules/all.yaml",
    )
    config = load_config(write(tmp_path, MINIMAL + "rules:\n  file: rules/all.yaml\n"), env={})
    assert [r.name for r in config.routing.rules] == ["everyone"]
    assert config.attribution.duplicates.winner == "latest"


def test_reward_problems_are_reported_at_their_position_in_the_file(tmp_path: Path) -> None:
    text = MINIMAL + "rules:\n  rewards:\n    rules:\n      - name: base\n        amout: 100\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    located = [(p.line, p.col, p.message) for p in caught.value.problems]
    assert (12, 9, "unknown key 'amout'") in located


def test_notification_problems_are_reported_at_their_position_in_the_file(tmp_path: Path) -> None:
    text = MINIMAL + "rules:\n  notifications:\n    advocat: {}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert [(p.line, p.col, p.message) for p in caught.value.problems] == [(10, 5, "unknown key 'advocat'")]


def _example_with_key(tmp_path: Path, key: bytes | None = None, mode: int = 0o600) -> Path:
    """The example config and its files, copied into tmp_path, with the JWT key where it names it."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copy(EXAMPLE, tmp_path / "connector.yaml.example")
    (tmp_path / "state" / "tls").mkdir(parents=True)
    if key is not None:
        path = tmp_path / "state" / "tls" / "jwt-key.pem"
        path.write_bytes(key)
        path.chmod(mode)
    return tmp_path / "connector.yaml.example"


def _pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_validate_prints_ok_and_a_summary_for_the_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--config", str(_example_with_key(tmp_path, _pem()))])
    assert result.exit_code == 0, result.output
    channels = len(load_config(EXAMPLE, env={}).stream.channels)
    assert result.stdout.startswith(
        f"config OK: org https://127.0.0.1:8443 (API 59.0, auth jwt), {channels} channel(s), 4 routing rule(s)"
    )


def test_plain_settings_may_come_from_environment_variables(tmp_path: Path) -> None:
    text = MINIMAL.replace("client_id: 3MVG9abc", "client_id: ${SF_CLIENT_ID}")
    config = load_config(write(tmp_path, text), env={"SF_CLIENT_ID": "3MVG9fromenv"})
    assert config.salesforce.auth.client_id == "3MVG9fromenv"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'connector.yaml'}:5:16: environment variable SF_CLIENT_ID is not set "
        "(export SF_CLIENT_ID=... before starting)"
    ]


def test_yaml_merge_keys_share_conditions_between_rules(tmp_path: Path) -> None:
    text = MINIMAL + (
        "rules:\n"
        "  routing:\n"
        "    rules:\n"
        "      - &partner\n"
        "        name: partner-social\n"
        "        when: {advocate.Program__c: Partner, channel: Social}\n"
        "        then: {queue: Referral Desk}\n"
        "      - <<: *partner\n"
        "        name: partner-rest\n"
        "        then: owner_of_advocate\n"
    )
    rules = load_config(write(tmp_path, text), env={}).routing.rules
    assert [(r.name, r.then.kind) for r in rules] == [
        ("partner-social", "queue"),
        ("partner-rest", "owner_of_advocate"),
    ]
    assert rules[0].when == rules[1].when


@pytest.mark.parametrize(
    ("key", "mode", "message"),
    [
        (None, 0o600, "does not exist"),
        (b"not a key at all\n", 0o600, "is not a PEM private key"),
        ("pem", 0o644, "can be read by others (mode 644)"),
    ],
    ids=["missing", "not-pem", "world-readable"],
)
def test_validate_refuses_a_jwt_key_file_that_cannot_sign_safely(
    tmp_path: Path, key: bytes | str | None, mode: int, message: str
) -> None:
    config = _example_with_key(tmp_path, _pem() if key == "pem" else key, mode)  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{config}:30:5: " in result.output and message in result.output


def test_validate_refuses_an_impossible_date_at_its_position(tmp_path: Path) -> None:
    config = _example_with_key(tmp_path, _pem())
    rules = tmp_path / "config" / "rules.yaml"
    text = rules.read_text()
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "from: 2026-12-01" in row)
    rules.write_text(text.replace("from: 2026-12-01", "from: 2027-02-30"))
    result = CliRunner().invoke(main, ["validate", "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{rules}:{line}:13: 2027-02-30 is not a valid date" in result.output
