"""The parsed form of a SOQL query: syntax only, not yet checked against a schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal as Kind

from sfemulator.soql.errors import Position
from sfemulator.soql.literals import LikePattern

ValueKind = Kind["string", "like", "number", "boolean", "null", "date", "datetime", "date_literal"]


@dataclass(frozen=True)
class RelativeDate:
    """A date literal such as TODAY or LAST_N_DAYS:7 (`n` is None for the fixed ones)."""

    name: str
    n: int | None = None


@dataclass(frozen=True)
class Value:
    """A literal in a WHERE or HAVING clause.

    `value` by kind: string -> str (escapes decoded); like -> LikePattern (a linear-time matcher); number -> int | float; boolean -> bool; null -> None; date -> datetime.date;
    datetime -> aware datetime.datetime; date_literal -> RelativeDate.
    """

    kind: ValueKind
    value: str | int | float | bool | dt.date | dt.datetime | RelativeDate | LikePattern | None
    pos: Position
    text: str


@dataclass(frozen=True)
class FieldPath:
    """`Name` or `Owner.IsActive`, as written (case kept; resolved case-insensitively later)."""

    parts: tuple[str, ...]
    pos: Position
    alias: str | None = None  # only grouped fields of an aggregate query may carry one
    alias_pos: Position | None = None

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Aggregate:
    """COUNT(f), COUNT_DISTINCT(f), SUM(f), AVG(f), MIN(f) or MAX(f); `field` is None only for COUNT()."""

    function: str
    field: FieldPath | None
    pos: Position
    alias: str | None = None


SelectItem = FieldPath | Aggregate


@dataclass(frozen=True)
class Comparison:
    """`field op value`; op is one of = != < <= > >= LIKE IN NOT IN (`<>` is read as `!=`)."""

    field: FieldPath | Aggregate
    op: str
    value: Value | tuple[Value, ...]
    pos: Position


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key; Salesforce puts nulls first ascending and last descending unless told."""

    key: FieldPath | Aggregate
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A whole SELECT. `count_only` is `SELECT COUNT()`; `text` is kept for caret blocks in execute."""

    text: str
    select: tuple[SelectItem, ...]
    count_only: bool
    sobject: str
    sobject_pos: Position
    where: Condition | None = None
    group_by: tuple[FieldPath, ...] = ()
    having: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    offset_pos: Position | None = None
