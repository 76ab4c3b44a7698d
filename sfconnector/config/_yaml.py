"""Read a YAML file into plain values that remember where they came from.

Mappings become `LMap` and sequences `LList`; each knows its own position and the position of each key and
value, so every later check can point at `file:line:col`. Duplicate keys are problems, not silent overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sfconnector.errors import ConfigProblem


@dataclass(frozen=True)
class Loc:
    """A 1-based position in a config file."""

    file: str
    line: int
    col: int

    def problem(self, message: str, hint: str | None = None) -> ConfigProblem:
        return ConfigProblem(self.file, self.line, self.col, message, hint)


class LMap(dict[str, Any]):
    """A YAML mapping with the position of itself, its keys and its values."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[str, Loc] = {}
        self.value_locs: dict[str, Loc] = {}

    def loc_of(self, key: str) -> Loc:
        """Where the value of `key` is (or the mapping itself when the key is absent)."""
        return self.value_locs.get(key, self.loc)

    def key_loc(self, key: str) -> Loc:
        return self.key_locs.get(key, self.loc)


class LList(list[Any]):
    """A YAML sequence with the position of itself and of each item."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Loc] = []


# libyaml when PyYAML was built with it: several times faster, same nodes and marks.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _loc(file: str, node: yaml.Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


_MAX_VALUES = 200_000  # far above any real config (the example has a few hundred values)


class _Converter:
    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems
        self.constructor = yaml.SafeLoader("")
        # Aliases make the node graph a DAG or even a cycle (`x: &a [*a]`): a path guard stops cycles and a
        # budget stops exponential expansion ("billion laughs"), each as one problem instead of a crash.
        self._path: set[int] = set()
        self._budget = _MAX_VALUES

    def _merged(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """The node's pairs with YAML merge keys (`<<: *defaults`) expanded; keys written here win."""
        own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        written = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        inherited: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.problems.append(
                        _loc(self.file, source).problem(
                            "<< merges mappings only", "write <<: *anchor_of_a_mapping"
                        )
                    )
                    continue
                if id(source) in self._path or source is node:
                    self.problems.append(
                        _loc(self.file, source).problem(
                            "an alias refers to a node that contains it",
                            "an anchor (&name) cannot be used inside itself",
                        )
                    )
                    continue
                self._path.add(id(source))
                try:
                    merged = self._merged(source)
                finally:
                    self._path.discard(id(source))
                for k, v in merged:
                    if isinstance(k, yaml.ScalarNode) and k.value not in written:
                        written.add(k.value)
                        inherited.append((k, v))
        return own + inherited

    def convert(self, node: yaml.Node) -> Any:
        self._budget -= 1
        if self._budget == -1:
            self.problems.append(
                _loc(self.file, node).problem(
                    f"the file expands to more than {_MAX_VALUES:,} values",
                    "use fewer nested aliases (*name)",
                )
            )
        if self._budget < 0:
            return None
        if id(node) in self._path:
            self.problems.append(
                _loc(self.file, node).problem(
                    "an alias refers to a node that contains it",
                    "an anchor (&name) cannot be used inside itself",
                )
            )
            return None
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self._convert(node)
        self._path.add(id(node))
        try:
            return self._convert(node)
        finally:
            self._path.discard(id(node))

    def _convert(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            result = LMap(_loc(self.file, node))
            for key_node, value_node in self._merged(node):
                if self._budget < 0:
                    break
                key_loc = _loc(self.file, key_node)
                key = self.convert(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    self.problems.append(key_loc.problem("keys must be plain names", "write the key as text"))
                    continue
                if key in result:
                    first = result.key_locs[key]
                    self.problems.append(
                        key_loc.problem(
                            f"duplicate key '{key}'", f"first given at line {first.line}; keep only one"
                        )
                    )
                    continue
                result[key] = self.convert(value_node)
                result.key_locs[key] = key_loc
                result.value_locs[key] = _loc(self.file, value_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = LList(_loc(self.file, node))
            for item in node.value:
                if self._budget < 0:
                    break
                items.append(self.convert(item))
                items.item_locs.append(_loc(self.file, item))
            return items
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problems.append(_loc(self.file, node).problem(f"cannot read this value: {exc}"))
            return None
        except (ValueError, OverflowError) as exc:  # a date YAML recognises that the calendar does not have
            shown = node.value if isinstance(node.value, str) else "this value"
            self.problems.append(
                _loc(self.file, node).problem(
                    f"{shown} is not a valid date ({exc})", "write a real date, YYYY-MM-DD"
                )
            )
            return None


def _decode(file: str, data: bytes, problems: list[ConfigProblem]) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        problems.append(
            ConfigProblem(file, line, col, "the file is not valid UTF-8", "save the file as UTF-8")
        )
        return None


def parse_yaml(file: str, text: str, problems: list[ConfigProblem]) -> Any:
    """The located value of one YAML document, or None after recording why it cannot be read."""
    try:
        try:
            node = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError:
            # The pure-Python parser explains syntax errors better (it names the unexpected token).
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = ", ".join(part for part in (exc.problem, exc.context) if part)
        hint = "check indentation, colons and quotes"
        if "'\\t'" in what:  # PyYAML shows the tab escaped
            what, hint = "a tab character here", "YAML is indented with spaces only"
        problems.append(ConfigProblem(file, line, col, f"YAML syntax error: {what}", hint))
        return None
    except yaml.YAMLError as exc:
        problems.append(ConfigProblem(file, 1, 1, f"YAML syntax error: {exc}"))
        return None
    if node is None:
        problems.append(ConfigProblem(file, 1, 1, "the file is empty", "see connector.yaml.example"))
        return None
    return _Converter(file, problems).convert(node)


def read_yaml(path: Path, shown_as: str, problems: list[ConfigProblem], at: Loc | None = None) -> Any:
    """Read and parse `path`; an unreadable file is a problem at `at` (where it was named) or at 1:1."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = at or Loc(shown_as, 1, 1)
        if at is None:
            hint = "pass --config PATH, or copy connector.yaml.example to connector.yaml"
        else:
            hint = "check the path (relative paths are relative to the file that names them)"
        problems.append(where.problem(f"cannot read {shown_as}: {reason}", hint))
        return None
    text = _decode(shown_as, data, problems)
    if text is None:
        return None
    return parse_yaml(shown_as, text, problems)
