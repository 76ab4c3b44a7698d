"""salesforce/ converts to Metadata API format with Salesforce's own source-deploy-retrieve library.

`sf project deploy start` runs the same conversion (SDR, pinned in salesforce/.tools/package-lock.json and
installed by `make salesforce-tools`) before it uploads anything: a file SDR refuses, or one it silently
leaves out, would never reach the org.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
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


NS = {"md": "http://soap.sforce.com/2006/04/metadata"}


def field_files() -> list[Path]:
    return sorted(OBJECTS.glob("*/fields/*.field-meta.xml"))


def xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def text(el: ET.Element, tag: str) -> str:
    found = el.find(f"md:{tag}", NS)
    return (found.text or "").strip() if found is not None else ""


@pytest.mark.parametrize(
    "path", field_files(), ids=lambda p: f"{p.parent.parent.name}.{p.stem.split('.')[0]}"
)
def test_every_field_says_what_it_is_for(path: Path) -> None:
    """Admins read the description, users the help text (Salesforce's limits: 1,000 and 510 characters)."""
    field = xml(path)
    assert 0 < len(text(field, "description")) <= 1000
    assert 0 < len(text(field, "inlineHelpText")) <= 510


def test_related_lists_on_parents_are_named_for_their_records() -> None:
    """A lookup's relationship label titles the related list on the parent (the Advocate's Rewards...)."""
    for obj in ("Referral__c", "Reward__c"):
        plural = text(xml(OBJECTS / obj / f"{obj}.object-meta.xml"), "pluralLabel")
        for path in (OBJECTS / obj / "fields").glob("*.field-meta.xml"):
            field = xml(path)
            if text(field, "type") == "Lookup" and text(field, "referenceTo") != "User":
                assert text(field, "relationshipLabel") == plural, path.name


def test_rewards_are_private_and_every_status_is_shared_with_finance() -> None:
    reward = xml(OBJECTS / "Reward__c" / "Reward__c.object-meta.xml")
    assert (text(reward, "sharingModel"), text(reward, "externalSharingModel")) == ("Private", "Private")
    assert text(xml(OBJECTS / "Referral__c" / "Referral__c.object-meta.xml"), "sharingModel") == "Read"
    rules = xml(
        PROJECT / "force-app" / "main" / "default" / "sharingRules" / "Reward__c.sharingRules-meta.xml"
    )
    (rule,) = rules.findall("md:sharingCriteriaRules", NS)
    assert text(rule, "accessLevel") == "Edit"
    assert rule.find("md:sharedTo/md:group", NS).text == "sfconnector_Finance"  # type: ignore[union-attr]
    (item,) = rule.findall("md:criteriaItems", NS)
    status = xml(OBJECTS / "Reward__c" / "fields" / "Status__c.field-meta.xml")
    statuses = [v.text for v in status.findall(".//md:value/md:fullName", NS)]
    assert (text(item, "field"), text(item, "operation")) == ("Status__c", "equals")
    assert text(item, "value").split(",") == statuses  # no reward escapes finance, whatever its status
    assert (
        PROJECT / "force-app" / "main" / "default" / "groups" / "sfconnector_Finance.group-meta.xml"
    ).is_file()
