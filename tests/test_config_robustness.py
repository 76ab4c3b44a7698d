"""Whatever an admin writes, loading ends in a frozen Config or a ConfigError: never another exception."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sfconnector.config import ConfigError, load_config
from sfconnector.mapping import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog()
DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Odd values people (and editors) produce: empty, wrong scalar types, wrong containers, includes of nothing.
ODD: list[Any] = [None, 0, -1, "", "x y", True, 2.5, [], {}, [None], {"file": "nowhere.yaml"}, {"x": 1}]


def inline_example() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "connector.yaml.example").read_text(encoding="utf-8"))
    config["mapping"] = yaml.safe_load((ROOT / "config/mapping.yaml").read_text(encoding="utf-8"))
    config["rules"] = yaml.safe_load((ROOT / "config/rules.yaml").read_text(encoding="utf-8"))
    config["salesforce"]["ca_bundle"] = str(ROOT / "state/tls/ca.pem")
    return config


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(config: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    node = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return changed


BASE = inline_example()
CASES = [(path, ODD[(i + shift) % len(ODD)]) for i, path in enumerate(paths(BASE)) for shift in (0,)]


def test_the_inlined_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    assert load_config(path, env={}, catalog=CATALOG).routing.rules


def test_every_section_replaced_by_an_odd_value_gives_a_config_or_a_config_error(tmp_path: Path) -> None:
    assert len(CASES) > 100
    path = tmp_path / "c.yaml"
    for where, value in CASES:
        path.write_text(yaml.dump(replaced(BASE, where, value), Dumper=DUMPER), encoding="utf-8")
        try:
            load_config(path, env={}, catalog=CATALOG)
        except ConfigError as exc:
            assert exc.problems, (where, value)
            assert all(p.line >= 1 and p.col >= 1 for p in exc.problems), (where, value)


@pytest.mark.parametrize(
    "text", ["[", "a: [b", "{", "key: 'open", "- - -", "!!python/object:os.system x", "@x"]
)
def test_broken_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, env={}, catalog=CATALOG)
