"""`sfconnector init DIR`: a starter config, its mapping and rules, and the systemd units, for a new org.

Written from the files the package ships (sfconnector/shipped.py), so what `init` writes is what the tests
and the demo run: the example config with its emulator settings replaced by a real org's placeholders.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click

from sfconnector.shipped import shipped

# Shipped file -> where init writes it, relative to DIR.
FILES = {
    "config/mapping.yaml": "config/mapping.yaml",
    "config/rules.yaml": "config/rules.yaml",
    "config/connector.schema.json": "config/connector.schema.json",
    "config/mapping.schema.json": "config/mapping.schema.json",
    "config/rules.schema.json": "config/rules.schema.json",
    "config/sfconnector.service": "systemd/sfconnector.service",
    "config/sfconnector@.service": "systemd/sfconnector@.service",
}
CONFIG = "connector.yaml"

HEADER = """\
# Written by `sfconnector init` for a new org. Next steps (docs/org-setup.md, docs/operations.md):
#   1. Fill in login_url, client_id and username below; put the JWT key where private_key_file says.
#   2. sfconnector validate --config {config}
#   3. sfconnector check --config {config}     (logs in and checks the org's objects, fields and channels)
#   4. Install systemd/sfconnector.service (or sfconnector@.service for one instance per org).
"""


def starter_config(example: str, login_url: str, client_id: str, username: str) -> str:
    """The shipped example pointed at a real org instead of the emulator."""
    text = re.sub(r"(?m)^(\s*login_url:).*$", rf"\g<1> {login_url}", example, count=1)
    text = re.sub(r"(?m)^(\s*)ca_bundle:.*$", r"\g<1># ca_bundle: /path/to/extra-ca.pem", text, count=1)
    text = re.sub(r"(?m)^(\s*client_id:)\s*\S+", rf"\g<1> {client_id}", text, count=1)
    text = re.sub(r"(?m)^(\s*username:)\s*\S+", rf"\g<1> {username}", text, count=1)
    text = re.sub(r"(?m)^(\s*private_key_file:)\s*\S+", r"\g<1> credential:jwt-key.pem", text, count=1)
    # Under systemd the state lives in $STATE_DIRECTORY; the default finds it.
    text = re.sub(
        r"(?m)^(\s*)path: state/sfconnector\.db", r"\g<1># path: state/sfconnector.db", text, count=1
    )
    return text


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--login-url", default="https://login.salesforce.com", show_default=True, help="The org's login URL."
)
@click.option("--client-id", default="CHANGE-ME-consumer-key", help="The connected app's consumer key.")
@click.option("--username", default="integration@example.com", help="The integration user's username.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, login_url: str, client_id: str, username: str, force: bool) -> None:
    """Write a commented starter config, its mapping and rules files and the systemd units into DIRECTORY."""
    targets = [directory / CONFIG, *(directory / t for t in FILES.values())]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        names = ", ".join(str(t) for t in existing)
        raise click.ClickException(f"would overwrite {names} (pass --force to replace them)")
    try:
        for source, target in FILES.items():
            path = directory / target
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shipped(*source.split("/")), path)
        example = shipped("connector.yaml.example").read_text(encoding="utf-8")
        config = directory / CONFIG
        first, _, rest = starter_config(example, login_url, client_id, username).partition("\n")
        # The schema line stays first: editors read it there.
        config.write_text(f"{first}\n{HEADER.format(config=config)}{rest}", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write into {directory}: {exc.strerror or exc}") from None
    click.echo(f"wrote {config} and {len(FILES)} more files under {directory}")
    click.echo(f"next: edit {config}, then `sfconnector validate --config {config}`")
