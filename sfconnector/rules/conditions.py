"""Compiled `when:` conditions and their evaluation: plain data in, (matched, why) out.

A condition is a tree of `Compare`, `Not`, `AllOf` and `AnyOf`. Subjects are `channel`, `lead.<Field>` or
`advocate.<Field>` with canonical API names (the loader checks them against the known fields). Regexes are
compiled at load time. Text compares case-insensitively, as SOQL does; `matches` is a regex search and is
case-sensitive unless the pattern says `(?i)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

Op = Literal["equals", "not_equals", "in", "exists", "matches", "lt", "le", "gt", "ge"]
COMPARISONS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "lt": ("<", lambda a, b: a < b),
    "le": ("≤", lambda a, b: a <= b),
    "gt": (">", lambda a, b: a > b),
    "ge": ("≥", lambda a, b: a >= b),
}
OPS: tuple[str, ...] = ("equals", "not_equals", "in", "exists", "matches", "lt", "le", "gt", "ge")


@dataclass(frozen=True)
class Compare:
    """`subject op operand`; `operand` is a tuple for `in`, a compiled pattern for `matches`, a bool for `exists`."""

    subject: str
    op: Op
    operand: Any


@dataclass(frozen=True)
class Not:
    inner: Condition


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


Condition = Compare | Not | AllOf | AnyOf
Lookup = Callable[[str], Any]


def _show(value: Any) -> str:
    if value is None or value == "":
        return "empty"
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any] | None:
    """Both sides in one ordered type, or None when they cannot be compared (a non-match, not an error)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return None
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return actual, expected
    if isinstance(expected, datetime | date) or isinstance(actual, datetime | date):
        return str(actual)[: len(str(expected))], str(expected)  # ISO text orders like the date it encodes
    if isinstance(actual, str) and isinstance(expected, str):
        return actual, expected
    if isinstance(actual, str) and isinstance(expected, int | float):
        try:
            return float(actual), expected
        except ValueError:
            return None
    return None


def _compare(cond: Compare, lookup: Lookup) -> tuple[bool, str]:
    value = lookup(cond.subject)
    shown = f"{cond.subject} is {_show(value)}"
    if cond.op == "exists":
        present = value is not None and value != ""
        return present == cond.operand, shown
    if cond.op in ("equals", "not_equals"):
        same = _same(value, cond.operand)
        if cond.op == "equals":
            return same, shown if same else f"{shown}, not {_show(cond.operand)}"
        return not same, shown
    if cond.op == "in":
        found = any(_same(value, option) for option in cond.operand)
        return found, shown if found else f"{shown}, not one of {_show(cond.operand)}"
    if cond.op == "matches":
        pattern: re.Pattern[str] = cond.operand
        found = isinstance(value, str) and pattern.search(value) is not None
        return found, f"{shown}, {'matching' if found else 'not matching'} {_show(pattern)}"
    symbol, test = COMPARISONS[cond.op]
    pair = _comparable(value, cond.operand)
    if pair is None:
        return False, f"{shown}, not comparable with {_show(cond.operand)}"
    ok = test(*pair)
    return ok, f"{shown}, {'' if ok else 'not '}{symbol} {_show(cond.operand)}"


def evaluate(cond: Condition, lookup: Lookup) -> tuple[bool, str]:
    """Whether the condition holds for the values `lookup` gives, and one human phrase saying why."""
    if isinstance(cond, Compare):
        return _compare(cond, lookup)
    if isinstance(cond, Not):
        matched, why = evaluate(cond.inner, lookup)
        return not matched, why
    if isinstance(cond, AllOf):
        whys = []
        for item in cond.items:
            matched, why = evaluate(item, lookup)
            if not matched:
                return False, why
            whys.append(why)
        return True, "; ".join(whys)
    whys = []
    for item in cond.items:
        matched, why = evaluate(item, lookup)
        if matched:
            return True, why
        whys.append(why)
    return False, "none of: " + "; ".join(whys)


def subjects(cond: Condition) -> set[str]:
    """Every subject a condition reads (the pipeline fetches these fields)."""
    if isinstance(cond, Compare):
        return {cond.subject}
    if isinstance(cond, Not):
        return subjects(cond.inner)
    return set().union(*(subjects(item) for item in cond.items)) if cond.items else set()
