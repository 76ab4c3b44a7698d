"""`sfconnector schema`: the JSON Schema is built from the loader's specs and accepts what the loader accepts.

Checked with a real draft 2020-12 validator (jsonschema), as an editor would check a file.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from test_rules_rewards_properties import reward_sections

from sfconnector.cli import main
from sfconnector.config import config_json_schema
from sfconnector.rules.notifications import PLACEHOLDERS, compile_notifications
from sfconnector.rules.rewards import Problem, compile_rewards

ROOT = Path(__file__).resolve().parents[1]


def as_json(value: Any) -> Any:
    """A YAML value as it reaches an editor's validator: dates are text, numbers are numbers."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> list[str]:
    """Every way `value` violates `schema` (empty: it conforms)."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(as_json(value))
    ]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_schema_command_prints_a_draft_2020_12_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["salesforce"]
    assert schema == config_json_schema()
    Draft202012Validator.check_schema(schema)


def test_example_config_and_the_files_it_names_conform_to_the_schema() -> None:
    schema = config_json_schema()
    assert conforms(_load(ROOT / "connector.yaml.example"), schema, schema) == []
    for section, path in (("mapping", "config/mapping.yaml"), ("rules", "config/rules.yaml")):
        result = CliRunner().invoke(main, ["schema", "--section", section])
        assert result.exit_code == 0
        section_schema = json.loads(result.stdout)
        assert section_schema["title"] == f"sfconnector configuration: {section}"
        Draft202012Validator.check_schema(section_schema)
        assert conforms(_load(ROOT / path), section_schema, section_schema) == []


def test_schema_rejects_what_the_loader_rejects() -> None:
    schema = config_json_schema()
    base = _load(ROOT / "connector.yaml.example")
    for broken in (
        {**base, "loging": {}},
        {**base, "writer": {"batch_size": 6000}},
        {**base, "stream": {"start": "newest"}},
        {**base, "salesforce": {**base["salesforce"], "auth": {"method": "jwt", "client_secret": "s3cr3t"}}},
        {**base, "rules": {"routing": {"rules": [{"name": "r", "then": "owner_of_advocat"}]}}},
        {
            **base,
            "rules": {
                "routing": {"rules": [{"name": "r", "then": "keep_standard", "when": {"chanel": "x"}}]}
            },
        },
    ):
        assert conforms(broken, schema, schema) != [], broken


# ---------------------------------------------------------------------------------------------------------------
# rewards and notifications: the schema and the compilers in sfconnector/rules/ agree

RULES_YAML = _load(ROOT / "config" / "rules.yaml")


def section_schema(name: str) -> dict[str, Any]:
    schema = config_json_schema(name)
    Draft202012Validator.check_schema(schema)
    return schema


def test_rewards_and_notifications_are_described_not_left_open() -> None:
    rules = config_json_schema("rules")
    for name in ("rewards", "notifications"):
        described = rules["properties"][name]["anyOf"][0]["anyOf"][0]
        assert described["type"] == "object" and described["additionalProperties"] is False
        assert described["properties"] and rules["properties"][name]["anyOf"][0]["description"]
    rewards = section_schema("rewards")["anyOf"][0]
    rule = rewards["properties"]["rules"]["anyOf"][0]["items"]
    assert rule["properties"]["cap_applies"]["enum"] == ["after_promotions", "before_promotions"]
    assert "Commission" in rule["properties"]["type"]["enum"]
    assert all(p.get("description") or p.get("anyOf") for p in rule["properties"].values())


def test_the_shipped_rewards_and_notifications_conform() -> None:
    for name in ("rewards", "notifications"):
        assert conforms(RULES_YAML[name], section_schema(name)) == []


GOOD_REWARDS: list[dict[str, Any]] = [
    {"cap_applies": "before_promotions", "rules": [{"name": "r", "percent": "2.5", "max": "1,500"}]},
    {"rules": [{"name": "r", "amount": 10, "when": {"opportunity.Type": {"in": ["New", "Upsell"]}}}]},
    {
        "rules": [
            {"name": "t", "tiers": [{"from": 0, "to": None, "percent": 3}], "cap_applies": "after_promotions"}
        ]
    },
    {
        "rules": [{"name": "r", "amount": 20}],
        "promotions": [{"name": "p", "from": "2027-02-01", "to": "2027-02-14", "add": 15, "rules": "r"}],
    },
    {"clawback": {"within_days": 30, "adjustment_status": "Pending Approval"}, "approval_above": None},
]
BAD_REWARDS: list[dict[str, Any]] = [
    {"rulez": []},
    {"cap_applies": "before"},
    {"hold_days": 5000},
    {"default_type": "Cash"},
    {"rules": [{"amount": 1}]},
    {"rules": [{"name": "a:b", "amount": 1}]},
    {"rules": [{"name": "a", "amount": 1, "percent": 2}]},
    {"rules": [{"name": "a"}]},
    {"rules": [{"name": "a", "amount": -1}]},
    {"rules": [{"name": "a", "percent": 150}]},
    {"rules": [{"name": "a", "amount": 5, "max": 3}]},
    {"rules": [{"name": "a", "amount": 5, "cap_applies": "before_promotions"}]},
    {"rules": [{"name": "a", "percent": 5, "max": 9, "cap_applies": "later"}]},
    {"rules": [{"name": "a", "amount": 1, "type": "Cash"}]},
    {"rules": [{"name": "a", "amount": 1, "continue": "yes"}]},
    {"rules": [{"name": "a", "amount": 1, "when": {"progam": "Partner"}}]},
    {"rules": [{"name": "a", "amount": 1, "when": {"program": {"equals": "A", "in": ["B"]}}}]},
    {"rules": [{"name": "a", "tiers": [{"from": 0, "amount": 1, "percent": 2}]}]},
    {"rules": [{"name": "a", "tiers": [{"from": -1, "amount": 1}]}]},
    {"rules": [{"name": "a", "tiers": []}]},
    {"promotions": [{"name": "p", "from": "Dec 1", "to": "2026-12-01", "add": 2}]},
    {"promotions": [{"name": "p", "from": "2026-12-01", "to": "2026-12-02", "multiply": 2, "add": 1}]},
    {"promotions": [{"name": "p", "from": "2026-12-01", "to": "2026-12-02"}]},
    {"clawback": {"within_days": 90, "adjustment_status": "Paid"}},
    {"clawback": {"days": 90}},
]


@pytest.mark.parametrize("section", GOOD_REWARDS)
def test_rewards_the_compiler_accepts_conform(section: dict[str, Any]) -> None:
    problems: list[Problem] = []
    compile_rewards(section, problems)
    assert problems == []
    assert conforms(section, section_schema("rewards")) == []


@pytest.mark.parametrize("section", BAD_REWARDS)
def test_rewards_the_compiler_rejects_do_not_conform(section: dict[str, Any]) -> None:
    problems: list[Problem] = []
    compile_rewards(section, problems)
    assert problems, section
    assert conforms(section, section_schema("rewards")) != [], section


@settings(max_examples=60, deadline=None)
@given(reward_sections(placements=True))
def test_every_generated_valid_rewards_section_conforms(section: dict[str, Any]) -> None:
    assert conforms(section, section_schema("rewards")) == []


BAD_NOTIFICATIONS: list[dict[str, Any]] = [
    {"advocate": {"recieved": True}},
    {"advocate": "yes"},
    {"rep_tasks": {"lost": True}},
    {"advocate": {"won": {"title": "Hi"}}},
    {"advocate": {"won": {"subject": "Hi {advocate.nme}"}}},
    {"advocate": {"won": {"subject": "You earned {reward.amount}"}}},
    {"advocate": {"won": {"subject": "two\nlines"}}},
    {"advocate": {"won": {"body": "a } b"}}},
    {"advocate": {"won": {"body": ""}}},
    {"rep_tasks": {"received": {"body": "{reward.type}"}}},
]


@pytest.mark.parametrize("section", BAD_NOTIFICATIONS)
def test_notifications_the_compiler_rejects_do_not_conform(section: dict[str, Any]) -> None:
    problems: list[Problem] = []
    compile_notifications(section, problems)
    assert problems, section
    assert conforms(section, section_schema("notifications")) != [], section


def test_notifications_the_compiler_accepts_conform() -> None:
    section = {
        "advocate": {
            "received": False,
            "reward_paid": {
                "body": "Paid {reward.amount} ({reward.type}) on {reward.payable_on}, {{thanks}}"
            },
            "lost": {"subject": "About {referral.name}\n"},
        },
        "rep_tasks": None,
    }
    problems: list[Problem] = []
    compile_notifications(section, problems)
    assert problems == []
    assert conforms(section, section_schema("notifications")) == []


_TEMPLATE_TEXT = st.lists(
    st.sampled_from(["{", "}", "{{", "}}", "a", " ", ".", "\n", *(f"{{{p}}}" for p in sorted(PLACEHOLDERS))]),
    max_size=8,
).map("".join)


@settings(max_examples=300)
@given(_TEMPLATE_TEXT, st.sampled_from(["won", "reward_paid"]), st.sampled_from(["subject", "body"]))
def test_a_template_conforms_exactly_when_it_compiles(text: str, event: str, part: str) -> None:
    """The schema's template patterns and the template compiler agree on every subject and body."""
    section = {"advocate": {event: {part: text}}}
    problems: list[Problem] = []
    compile_notifications(section, problems)
    assert (conforms(section, section_schema("notifications")) == []) is (not problems), problems


@pytest.mark.parametrize(
    ("shipped", "section"),
    [("connector.schema.json", None), ("rules.schema.json", "rules"), ("mapping.schema.json", "mapping")],
)
def test_shipped_schema_files_are_up_to_date(shipped: str, section: str | None) -> None:
    on_disk = json.loads((ROOT / "config" / shipped).read_text(encoding="utf-8"))
    assert on_disk == config_json_schema(section), f"regenerate config/{shipped} with `sfconnector schema`"
