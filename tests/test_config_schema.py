"""`sfconnector schema`: the JSON Schema is built from the loader's specs and accepts what the loader accepts.

jsonschema is not a dependency; `conforms` below checks the subset of draft 2020-12 the schema uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sfconnector.cli import main
from sfconnector.config import config_json_schema

ROOT = Path(__file__).resolve().parents[1]
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def _is(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> list[str]:
    """Every way `value` violates `schema` (empty: it conforms)."""
    if "$ref" in schema:
        return conforms(value, root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root)
    errors: list[str] = []
    if "anyOf" in schema and all(conforms(value, option, root) for option in schema["anyOf"]):
        errors.append(f"{value!r} matches no alternative")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, t) for t in types):
            return [f"{value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{value!r} too short")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append("too few items")
        for item in value:
            errors += conforms(item, schema.get("items", {}), root)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"missing {key}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += conforms(item, properties[key], root)
                continue
            patterns = [s for p, s in schema.get("patternProperties", {}).items() if re.search(p, key)]
            if patterns:
                errors += conforms(item, patterns[0], root)
            elif schema.get("additionalProperties") is False:
                errors.append(f"unknown key {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += conforms(item, schema["additionalProperties"], root)
    return errors


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_schema_command_prints_a_draft_2020_12_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["salesforce"]
    assert schema == config_json_schema()


def test_example_config_and_the_files_it_names_conform_to_the_schema() -> None:
    schema = config_json_schema()
    assert conforms(_load(ROOT / "connector.yaml.example"), schema, schema) == []
    for section, path in (("mapping", "config/mapping.yaml"), ("rules", "config/rules.yaml")):
        result = CliRunner().invoke(main, ["schema", "--section", section])
        assert result.exit_code == 0
        section_schema = json.loads(result.stdout)
        assert section_schema["title"] == f"sfconnector configuration: {section}"
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


@pytest.mark.parametrize(
    ("shipped", "section"),
    [("connector.schema.json", None), ("rules.schema.json", "rules"), ("mapping.schema.json", "mapping")],
)
def test_shipped_schema_files_are_up_to_date(shipped: str, section: str | None) -> None:
    on_disk = json.loads((ROOT / "config" / shipped).read_text(encoding="utf-8"))
    assert on_disk == config_json_schema(section), f"regenerate config/{shipped} with `sfconnector schema`"
