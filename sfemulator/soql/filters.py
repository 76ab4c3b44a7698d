"""WHERE and HAVING compiled once per query into plain closures over a record.

Salesforce semantics kept here: text compares case-insensitively; ids compare on their 18-character form
(15-character literals accepted); a literal must suit the field's type; nulls are ordinary values (so
`Field != 'x'` is true for a null field, `<`/`>` never are).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from sfemulator.ids import to18
from sfemulator.soql.binding import Getter, Record
from sfemulator.soql.dates import day_range, iso_bound
from sfemulator.soql.errors import Position, SoqlError, soql_error
from sfemulator.soql.literals import LikePattern, format_datetime
from sfemulator.soql.query import (
    Aggregate,
    And,
    Comparison,
    Condition,
    FieldPath,
    Not,
    Or,
    RelativeDate,
    Value,
)
from sfemulator.soql.source import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldInfo

Predicate = Callable[[Record], bool]
Resolver = Callable[[FieldPath | Aggregate], tuple[Getter, FieldInfo]]

_ID_SHAPE = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")
# The type names Salesforce uses in "must be of type ..." messages.
_TYPE_WORDS = {"int": "integer", "datetime": "dateTime", "reference": "id"}


def _true(_: Record) -> bool:
    return True


class FilterCompiler:
    """Compiles conditions for one query; `resolve` maps an operand to its getter and field type."""

    def __init__(self, text: str, resolve: Resolver, today: dt.date) -> None:
        self.text = text
        self.resolve = resolve
        self.today = today

    def compile(self, condition: Condition | None) -> Predicate:
        if condition is None:
            return _true
        if isinstance(condition, And):
            parts = [self.compile(c) for c in condition.items]
            return lambda r: all(p(r) for p in parts)
        if isinstance(condition, Or):
            parts = [self.compile(c) for c in condition.items]
            return lambda r: any(p(r) for p in parts)
        if isinstance(condition, Not):
            inner = self.compile(condition.item)
            return lambda r: not inner(r)
        return self.comparison(condition)

    # --- one comparison ------------------------------------------------------------------------------

    def comparison(self, cmp: Comparison) -> Predicate:
        get, field = self.resolve(cmp.field)
        if cmp.op == "LIKE":
            assert isinstance(cmp.value, Value)
            return self.like(get, field, cmp.value)
        if cmp.op in ("IN", "NOT IN"):
            assert isinstance(cmp.value, tuple)
            matches = self.membership(get, field, cmp.value)
            return matches if cmp.op == "IN" else (lambda r: not matches(r))
        assert isinstance(cmp.value, Value)
        return self.compare(get, field, cmp.op, cmp.value)

    def compare(self, get: Getter, field: FieldInfo, op: str, value: Value) -> Predicate:
        if value.kind == "null":
            if op == "=":
                return lambda r: get(r) is None
            if op == "!=":
                return lambda r: get(r) is not None
            return lambda r: False
        if value.kind == "date_literal":
            return self.date_range(get, field, op, value)
        literal = self.coerce(field, value)
        norm = _normaliser(field)
        if norm is not None:
            lowered = norm(literal)
            if lowered == "":
                # Salesforce stores an empty text value as null, so '' and null filter alike.
                return self.compare(get, field, op, Value("null", None, value.pos, value.text))
            return _text_ordered(get, op, lowered)
        if field.type in ID_TYPES and literal == "":
            return self.compare(get, field, op, Value("null", None, value.pos, value.text))
        return _ordered(get, op, literal)

    def like(self, get: Getter, field: FieldInfo, value: Value) -> Predicate:
        if field.type not in TEXT_TYPES and field.type not in ID_TYPES:
            raise self.error(
                "INVALID_FIELD", value.pos, f"invalid operator on {field.type} field: {field.name}"
            )
        assert isinstance(value.value, LikePattern)
        matches = value.value.matches

        def like(r: Record) -> bool:
            v = get(r)
            return v is not None and matches(v.lower())

        return like

    def membership(self, get: Getter, field: FieldInfo, values: tuple[Value, ...]) -> Predicate:
        if any(v.kind == "date_literal" for v in values):
            options = [self.compare(get, field, "=", v) for v in values]
            return lambda r: any(p(r) for p in options)
        norm = _normaliser(field)
        wanted = {None if v.kind == "null" else self.coerce(field, v) for v in values}
        if field.type in ID_TYPES and "" in wanted:
            wanted = (wanted - {""}) | {None}
        if norm is not None:
            wanted = {None if w is None or norm(w) == "" else norm(w) for w in wanted}
            return lambda r: _apply(norm, get(r)) in wanted
        return lambda r: get(r) in wanted

    def date_range(self, get: Getter, field: FieldInfo, op: str, value: Value) -> Predicate:
        if field.type not in ("date", "datetime"):
            raise self.type_error(field, value)
        relative = value.value
        assert isinstance(relative, RelativeDate)
        start, end = day_range(relative.name, relative.n, self.today)
        lo = iso_bound(start, datetime=field.type == "datetime")
        hi = iso_bound(end, datetime=field.type == "datetime")

        def inside(r: Record) -> bool:
            v = get(r)
            return v is not None and lo <= v < hi

        if op == "=":
            return inside
        if op == "!=":
            return lambda r: not inside(r)
        bound, cmp = {"<": (lo, "<"), "<=": (hi, "<"), ">": (hi, ">="), ">=": (lo, ">=")}[op]
        return _ordered(get, cmp, bound)

    # --- literals against field types ----------------------------------------------------------------

    def coerce(self, field: FieldInfo, value: Value) -> Any:
        """The literal in the stored representation of the field's type, or Salesforce's type error."""
        kind, ftype = value.kind, field.type
        if ftype in TEXT_TYPES and kind == "string":
            return value.value
        if ftype in ID_TYPES and kind == "string":
            assert isinstance(value.value, str)
            if value.value == "":
                return ""
            if not _ID_SHAPE.fullmatch(value.value):
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR", value.pos, f"invalid ID field: {value.value}"
                )
            return to18(value.value)
        if ftype in NUMBER_TYPES and kind == "number":
            return value.value
        if ftype == "boolean" and kind == "boolean":
            return value.value
        if ftype == "date" and kind == "date":
            assert isinstance(value.value, dt.date)
            return value.value.isoformat()
        if ftype == "datetime" and kind == "datetime":
            assert isinstance(value.value, dt.datetime)
            return format_datetime(value.value)
        raise self.type_error(field, value)

    def type_error(self, field: FieldInfo, value: Value) -> SoqlError:
        # [UNCONFIRMED] errorCode; the wording is Salesforce's.
        quoted = field.type in TEXT_TYPES or field.type in ID_TYPES
        word = _TYPE_WORDS.get(field.type, "string" if field.type in TEXT_TYPES else field.type)
        if field.type in ("currency", "percent"):
            word = "double"
        detail = (
            f"value of filter criterion for field '{field.name}' must be of type {word} and should "
            f"{'' if quoted else 'not '}be enclosed in quotes"
        )
        return self.error("INVALID_FIELD", value.pos, detail)

    def error(self, code: str, pos: Position, detail: str) -> SoqlError:
        return soql_error(code, self.text, pos, detail)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _normaliser(field: FieldInfo) -> Callable[[Any], Any] | None:
    """How values of this type are made comparable: text is lower-cased; others compare as stored."""
    return _lower if field.type in TEXT_TYPES else None


def _apply(norm: Callable[[Any], Any], value: Any) -> Any:
    if value is None or value == "":
        return None
    return norm(value)


def _text_ordered(get: Getter, op: str, lowered: str) -> Predicate:
    """Case-insensitive `get(r) op lowered`; spelled out per operator because it runs once per record."""
    if op == "=":
        return lambda r: (v := get(r)) is not None and v.lower() == lowered
    if op == "!=":
        return lambda r: (v := get(r)) is None or v.lower() != lowered
    if op == "<":
        return lambda r: (v := get(r)) is not None and v != "" and v.lower() < lowered
    if op == "<=":
        return lambda r: (v := get(r)) is not None and v != "" and v.lower() <= lowered
    if op == ">":
        return lambda r: (v := get(r)) is not None and v != "" and v.lower() > lowered
    return lambda r: (v := get(r)) is not None and v != "" and v.lower() >= lowered


def _ordered(get: Getter, op: str, literal: Any) -> Predicate:
    """`get(r) op literal` with SOQL's null rule; one closure per operator keeps the per-row cost low."""
    if op == "=":
        return lambda r: get(r) == literal
    if op == "!=":
        return lambda r: get(r) != literal
    if op == "<":
        return lambda r: (v := get(r)) is not None and v < literal
    if op == "<=":
        return lambda r: (v := get(r)) is not None and v <= literal
    if op == ">":
        return lambda r: (v := get(r)) is not None and v > literal
    return lambda r: (v := get(r)) is not None and v >= literal
