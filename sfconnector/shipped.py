"""The files sfconnector ships and reads at run time: the Salesforce schema (salesforce/), the example config
and its mapping and rules (config/), the systemd units and the JSON Schemas.

In a source checkout they are the repository's own files; in an installed wheel they are package data under
`sfconnector/_shipped/`, copied there by the build (setup.py) with the same layout, so the example config's
relative `file:` paths resolve the same way in both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# What the build copies into the wheel, relative to the repository root (files or whole directories).
SHIPPED = (
    "connector.yaml.example",
    "config",
    "salesforce/sfdx-project.json",
    "salesforce/force-app",
)
PACKAGED_DIR = "_shipped"


def shipped_root() -> Path:
    """The directory that holds the shipped files with the repository's layout."""
    packaged = Path(str(resources.files("sfconnector"))) / PACKAGED_DIR
    if (packaged / "connector.yaml.example").is_file():
        return packaged
    return Path(__file__).resolve().parents[1]  # a source checkout (an editable install included)


def shipped(*parts: str) -> Path:
    """A shipped file or directory, e.g. `shipped("config", "rules.yaml")`."""
    return shipped_root().joinpath(*parts)
