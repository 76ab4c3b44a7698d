"""What `validate` checks of the JWT key file before the daemon needs it: there, readable, a PEM private key,
and readable by its owner only (a key others can read is a key others can use to log in as the integration
user)."""

from __future__ import annotations

import stat
from pathlib import Path

PEM_BEGIN = "-----BEGIN "
PEM_PRIVATE = "PRIVATE KEY-----"


def key_file_problems(path: Path) -> list[tuple[str, str]]:
    """(problem, hint) pairs for the key file at `path`; empty when it is fit to sign with."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return [
            (f"the JWT private key {path} does not exist", "a relative path is relative to the config file")
        ]
    except OSError as exc:
        return [
            (f"cannot read the JWT private key {path}: {exc.strerror}", "check the directories' permissions")
        ]
    if not stat.S_ISREG(mode):
        return [(f"the JWT private key {path} is not a file", "point private_key_file at the PEM file")]
    try:
        head = path.read_bytes()[:4096].decode("ascii", errors="replace")
    except OSError as exc:
        return [
            (
                f"cannot read the JWT private key {path}: {exc.strerror}",
                "the daemon's user must be able to read it",
            )
        ]
    problems: list[tuple[str, str]] = []
    if PEM_BEGIN not in head or PEM_PRIVATE not in head:
        problems.append(
            (
                f"{path} is not a PEM private key",
                "it should start with -----BEGIN PRIVATE KEY----- (or RSA/EC)",
            )
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(
            (
                f"the JWT private key {path} can be read by others (mode {stat.S_IMODE(mode):o})",
                f"chmod 600 {path} (or load it with systemd's LoadCredential=)",
            )
        )
    return problems


def setting_position(config_file: Path, key: str) -> tuple[int, int]:
    """Line and column of `key:` in the config file (1, 1 when it is not written there)."""
    try:
        lines = config_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 1, 1
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if stripped.startswith(f"{key}:") and not stripped.startswith("#"):
            return number, len(line) - len(stripped) + 1
    return 1, 1
