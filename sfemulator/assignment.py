"""The org's active lead assignment rule: ordered entries, first match wins.

Salesforce runs it on REST creates and updates unless `Sforce-Auto-Assign: FALSE` is sent (notes §4.1);
that is the behaviour sfconnector overrides on purpose.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

OPERATORS = ("equals", "notEqual", "startsWith", "contains", "notContain", "isNull", "isNotNull")


@dataclass(frozen=True)
class Criterion:
    """`field operator values`; several values mean any of them (Salesforce's comma list)."""

    field: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, record: Mapping[str, Any]) -> bool:
        raw = record.get(self.field)
        value = "" if raw is None else str(raw).lower()
        wanted = [v.lower() for v in self.values]
        if self.operator == "isNull":
            return raw is None
        if self.operator == "isNotNull":
            return raw is not None
        if self.operator == "equals":
            return value in wanted
        if self.operator == "notEqual":
            return value not in wanted
        if self.operator == "startsWith":
            return any(value.startswith(w) for w in wanted)
        if self.operator == "contains":
            return any(w in value for w in wanted)
        if self.operator == "notContain":
            return not any(w in value for w in wanted)
        raise ValueError(f"unknown operator {self.operator!r}")


@dataclass
class RuleEntry:
    """Criteria (all must hold; none = catch-all) and who gets the record.

    One assignee is a user or a queue; several are a round-robin across users.
    """

    criteria: tuple[Criterion, ...]
    assignees: tuple[str, ...]
    _turn: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def matches(self, record: Mapping[str, Any]) -> bool:
        return all(c.matches(record) for c in self.criteria)

    def next_owner(self, is_assignable: Callable[[str], bool]) -> str | None:
        candidates = [a for a in self.assignees if is_assignable(a)]
        if not candidates:
            return None
        if len(self.assignees) == 1:
            return candidates[0]
        return candidates[next(self._turn) % len(candidates)]


@dataclass
class AssignmentRule:
    name: str
    entries: list[RuleEntry]
    default_owner: str | None = None  # Lead Settings' default lead owner when no entry matches

    def choose_owner(self, record: Mapping[str, Any], is_assignable: Callable[[str], bool]) -> str | None:
        """The owner the rule gives this record, or None to leave the owner alone."""
        for entry in self.entries:
            if entry.matches(record):
                owner = entry.next_owner(is_assignable)
                if owner is not None:
                    return owner
        if self.default_owner and is_assignable(self.default_owner):
            return self.default_owner
        return None


def criterion_from_json(raw: Mapping[str, Any]) -> Criterion:
    """`{"field": "Country", "operator": "equals", "value": "Germany, France"}` (value or values)."""
    operator = str(raw.get("operator", "equals"))
    if operator not in OPERATORS:
        raise ValueError(f"assignment criterion: unknown operator {operator!r}; use one of {OPERATORS}")
    if "values" in raw:
        values = tuple(str(v) for v in raw["values"])
    elif "value" in raw:
        values = tuple(v.strip() for v in str(raw["value"]).split(","))
    else:
        values = ()
    return Criterion(field=str(raw["field"]), operator=operator, values=values)
