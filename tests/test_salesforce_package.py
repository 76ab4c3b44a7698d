"""salesforce/ converts to Metadata API format with Salesforce's own source-deploy-retrieve library.

`sf project deploy start` runs the same conversion (SDR, pinned in salesforce/.tools/package-lock.json and
installed by `make salesforce-tools`) before it uploads anything: a file SDR refuses, or one it silently
leaves out, would never reach the org.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "salesforce"
TOOLS = PROJECT / ".tools"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The conversion's report: every component with its type, the files written, source files unclaimed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Salesforce package test needs Node.js 20 or later")
    if not (TOOLS / "node_modules" / "@salesforce" / "source-deploy-retrieve").is_dir():
        pytest.fail("source-deploy-retrieve is not installed: run `make salesforce-tools` (make test does)")
    out = tmp_path_factory.mktemp("mdapi")
    result = subprocess.run(
        [node, str(TOOLS / "convert.cjs"), str(PROJECT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    report["dir"] = out
    return report


def members(report: dict[str, Any], type_name: str) -> set[str]:
    return {c["fullName"] for c in report["components"] if c["type"] == type_name}


def test_every_source_file_is_part_of_a_component(converted: dict[str, Any]) -> None:
    """A file SDR cannot place would be left out of the deploy without a word."""
    assert converted["unclaimed"] == []


def test_the_package_manifest_uses_the_project_api_version(converted: dict[str, Any]) -> None:
    project = json.loads((PROJECT / "sfdx-project.json").read_text(encoding="utf-8"))
    manifest = (converted["dir"] / "package.xml").read_text(encoding="utf-8")
    assert f"<version>{project['sourceApiVersion']}</version>" in manifest


def test_the_default_schema_is_converted(converted: dict[str, Any]) -> None:
    assert {"Advocate__c", "Referral__c", "Reward__c", "Referral_Submitted__e"} <= members(
        converted, "CustomObject"
    )
    types = Counter(c["type"] for c in converted["components"])
    assert types["CustomField"] >= 41


# -- the schema as the connector and the emulator read it --------------------------------------------------

OBJECTS = PROJECT / "force-app" / "main" / "default" / "objects"


def test_custom_activity_fields_live_on_activity_and_show_on_task() -> None:
    """Salesforce keeps custom Task and Event fields under Activity; the code sees them on Task."""
    from sfconnector.mapping import load_catalog
    from sfemulator.schema import build_schema

    assert not (OBJECTS / "Task").exists() and not (OBJECTS / "Event").exists()
    assert (OBJECTS / "Activity" / "fields" / "External_Key__c.field-meta.xml").is_file()
    assert load_catalog().field("Task", "External_Key__c") is not None
    task = build_schema().get("Task")
    assert task is not None and "External_Key__c" in task.fields
    assert members_from_source("Activity") == {"External_Key__c"}


def members_from_source(obj: str) -> set[str]:
    return {p.name.split(".")[0] for p in (OBJECTS / obj / "fields").glob("*.field-meta.xml")}
