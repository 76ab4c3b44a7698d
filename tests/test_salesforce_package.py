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


# -- the app: every piece the package adds is converted, and each refers to things that exist ------------

DEFAULT = PROJECT / "force-app" / "main" / "default"
PROGRAM = ("Advocate__c", "Referral__c", "Reward__c")


def test_every_kind_of_component_the_package_adds_is_converted(converted: dict[str, Any]) -> None:
    assert members(converted, "PermissionSet") == {
        "sfconnector_Integration",
        "sfconnector_Rep",
        "sfconnector_Finance",
        "sfconnector_Admin",
    }
    assert members(converted, "CustomTab") == set(PROGRAM)
    assert members(converted, "CustomApplication") == {"sfconnector_Referrals"}
    assert members(converted, "ListView") == {
        "Referral__c.Open_Referrals",
        "Reward__c.Pending_Rewards",
        "Reward__c.Rewards_To_Pay",
        "Advocate__c.Active_Advocates",
    }
    assert members(converted, "Layout") == {f"{o}-{o[:-3]} Layout" for o in PROGRAM}
    assert members(converted, "FlexiPage") == {"sfconnector_Referral_Lead"}
    assert members(converted, "PlatformEventChannelMember") == {
        "ChangeEvents_LeadChangeEvent",
        "ChangeEvents_OpportunityChangeEvent",
        "ChangeEvents_Advocate_ChangeEvent",
        "ChangeEvents_Reward_ChangeEvent",
    }
    assert members(converted, "SharingRules") == {"Reward__c"}
    assert members(converted, "SharingCriteriaRule") == {"Reward__c.sfconnector_Finance_Rewards"}
    assert members(converted, "Group") == {"sfconnector_Finance"}
    assert "CustomField" in {c["type"] for c in converted["components"]}


def test_change_data_capture_is_enabled_for_every_change_event_the_example_subscribes_to() -> None:
    """The daemon's CDC channels and the deployed selection agree (enabling CDC is part of the deploy)."""
    import yaml

    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text(encoding="utf-8"))
    subscribed = {c.removeprefix("/data/") for c in config["stream"]["channels"] if c.startswith("/data/")}
    selected = set()
    for path in (DEFAULT / "platformEventChannelMembers").glob("*.platformEventChannelMember-meta.xml"):
        member = xml(path)
        assert text(member, "eventChannel") == "ChangeEvents"
        entity = text(member, "selectedEntity")
        assert path.name.split(".")[0] == "ChangeEvents_" + entity.replace("__", "_")  # Salesforce's naming
        selected.add(entity)
    assert selected == subscribed


def object_fields(obj: str) -> set[str]:
    from sfemulator.schema import build_schema

    found = build_schema().get(obj)
    assert found is not None, obj
    return set(found.fields)


def picklist(obj: str, name: str) -> list[str]:
    return [
        str(v.text)
        for v in xml(OBJECTS / obj / "fields" / f"{name}.field-meta.xml").iterfind(
            ".//md:value/md:fullName", NS
        )
    ]


def test_list_views_show_and_filter_real_fields_and_values() -> None:
    for path in OBJECTS.glob("*/listViews/*.listView-meta.xml"):
        obj, view = path.parent.parent.name, xml(path)
        fields = object_fields(obj)
        for column in view.iterfind("md:columns", NS):
            assert column.text == "NAME" or column.text in fields, f"{path.name}: {column.text}"
        for flt in view.iterfind("md:filters", NS):
            name, value = text(flt, "field"), text(flt, "value")
            assert name in fields, f"{path.name}: {name}"
            if name.endswith("__c") and picklist(obj, name):
                assert set(value.split(",")) <= set(picklist(obj, name)), f"{path.name}: {value}"


def test_layouts_place_real_fields_and_related_lists_of_real_lookups() -> None:
    for path in (DEFAULT / "layouts").glob("*.layout-meta.xml"):
        obj, layout = path.name.split("-")[0], xml(path)
        fields = object_fields(obj)
        for item in layout.iterfind(".//md:layoutItems", NS):
            assert text(item, "field") in fields, f"{path.name}: {text(item, 'field')}"
        for related in layout.iterfind("md:relatedLists", NS):
            child, lookup = text(related, "relatedList").split(".")
            field = xml(OBJECTS / child / "fields" / f"{lookup}.field-meta.xml")
            assert text(field, "referenceTo") == obj, f"{path.name}: {child}.{lookup}"
    advocate = xml(DEFAULT / "layouts" / "Advocate__c-Advocate Layout.layout-meta.xml")
    lists = {text(r, "relatedList") for r in advocate.iterfind("md:relatedLists", NS)}
    assert {
        "Referral__c.Advocate__c",
        "Reward__c.Advocate__c",
    } <= lists  # the advocate's referrals and rewards


def test_the_lead_page_shows_the_advocate_and_the_referrals_and_is_the_apps_lead_page() -> None:
    page = xml(DEFAULT / "flexipages" / "sfconnector_Referral_Lead.flexipage-meta.xml")
    assert (text(page, "type"), text(page, "sobjectType")) == ("RecordPage", "Lead")
    shown = {str(f.text).removeprefix("Record.") for f in page.iterfind(".//md:fieldItem", NS)}
    assert "Advocate__c" in shown and shown <= object_fields("Lead")
    regions = {text(r, "name") for r in page.iterfind("md:flexiPageRegions", NS)}
    props = {
        text(p, "name"): text(p, "value")
        for p in page.iterfind(".//md:componentInstanceProperties", NS)
        if text(p, "name") in ("relatedListApiName", "parentFieldApiName")
    }
    lead_lookup = xml(OBJECTS / "Referral__c" / "fields" / "Lead__c.field-meta.xml")
    assert props == {
        "relatedListApiName": text(lead_lookup, "relationshipName") + "__r",
        "parentFieldApiName": "Lead.Id",
    }
    for p in page.iterfind(".//md:componentInstanceProperties", NS):  # facets named by components exist
        if text(p, "name") in ("body", "tabs", "columns"):
            assert text(p, "value") in regions
    app = xml(DEFAULT / "applications" / "sfconnector_Referrals.app-meta.xml")
    (override,) = app.findall("md:actionOverrides", NS)
    assert (text(override, "content"), text(override, "pageOrSobjectType")) == (
        "sfconnector_Referral_Lead",
        "Lead",
    )


def test_the_app_and_the_permission_sets_name_tabs_that_exist() -> None:
    tabs = {p.name.split(".")[0] for p in (DEFAULT / "tabs").glob("*.tab-meta.xml")}
    assert tabs == set(PROGRAM)
    app = xml(DEFAULT / "applications" / "sfconnector_Referrals.app-meta.xml")
    custom = {str(t.text) for t in app.iterfind("md:tabs", NS) if not str(t.text).startswith("standard-")}
    assert custom == tabs and text(app, "uiType") == "Lightning"
    for path in (DEFAULT / "permissionsets").glob("*.permissionset-meta.xml"):
        ps = xml(path)
        assert {str(t.text) for t in ps.iterfind("md:tabSettings/md:tab", NS)} <= tabs
        assert {str(a.text) for a in ps.iterfind("md:applicationVisibilities/md:application", NS)} <= {
            "sfconnector_Referrals"
        }


# -- the guides say how to deploy it ------------------------------------------------------------------------


def test_the_guides_deploy_from_the_sfdx_project_and_link_the_org_setup_guide() -> None:
    """`sf project deploy` resolves --source-dir against sfdx-project.json, which lives in salesforce/."""
    import re

    guides = {
        p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    }
    for path, body in guides.items():
        for dirs in re.findall(r"sf project deploy \w+ --source-dir (\S+)", body):
            assert dirs == "force-app", f"{path.name}: --source-dir {dirs}"
            assert (PROJECT / dirs).is_dir()
    for name in ("README.md", "operations.md", "admin.md"):
        path = ROOT / name if name == "README.md" else ROOT / "docs" / name
        assert "docs/org-setup.md" in guides[path], name
    setup = guides[ROOT / "docs" / "org-setup.md"]
    assert "cd salesforce" in setup
    for ps in ("sfconnector_Integration", "sfconnector_Rep", "sfconnector_Finance", "sfconnector_Admin"):
        assert f"--name {ps}" in setup
