"""Aggregate queries: GROUP BY, COUNT/COUNT_DISTINCT/SUM/AVG/MIN/MAX, HAVING, ORDER BY on groups.

Rows are `{"attributes": {"type": "AggregateResult"}, <grouped field>: v, "expr0": n, <alias>: m}`; an
aggregated column without an alias is named exprN, N counting only the unaliased aggregates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

from sfemulator.soql.binding import Binder, BoundField, Getter, Record
from sfemulator.soql.errors import soql_error
from sfemulator.soql.filters import FilterCompiler
from sfemulator.soql.ordering import sort_key
from sfemulator.soql.query import Aggregate, And, Comparison, Condition, FieldPath, Not, Or, Query
from sfemulator.soql.source import NUMBER_TYPES, TEXT_TYPES, FieldInfo

_NUMERIC_ONLY = frozenset({"SUM", "AVG"})
_ORDERABLE = NUMBER_TYPES | TEXT_TYPES | {"date", "datetime", "id", "reference"}
AggKey = tuple[str, str]  # (function, lower-case field label)


def _label(bound: BoundField) -> str:
    return (f"{bound.relationship}.{bound.key}" if bound.relationship else bound.key).lower()


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _Plan:
    """The grouped fields and the distinct aggregate expressions a query needs."""

    def __init__(self, query: Query, binder: Binder) -> None:
        self.query = query
        self.binder = binder
        self.groups = [binder.bind(p) for p in query.group_by]
        self.group_index = {_label(b): i for i, b in enumerate(self.groups)}
        self.aggs: dict[AggKey, tuple[Aggregate, BoundField | None]] = {}

    def agg_key(self, agg: Aggregate) -> AggKey:
        if agg.field is None:
            return (agg.function, "")
        bound = self.binder.bind(agg.field)
        key = (agg.function, _label(bound))
        if key not in self.aggs:
            self._check(agg, bound)
            self.aggs[key] = (agg, bound)
        return key

    def _check(self, agg: Aggregate, bound: BoundField) -> None:
        ftype = bound.field.type
        if (agg.function in _NUMERIC_ONLY and ftype not in NUMBER_TYPES) or (
            agg.function in ("MIN", "MAX") and ftype not in _ORDERABLE
        ):
            raise soql_error(
                "MALFORMED_QUERY",
                self.query.text,
                agg.pos,
                f"field {bound.field.name} does not support aggregate operator {agg.function}",
            )

    def group_position(self, path: FieldPath) -> int:
        bound = self.binder.bind(path)
        index = self.group_index.get(_label(bound))
        if index is None:
            raise soql_error(
                "MALFORMED_QUERY",
                self.query.text,
                path.pos,
                f"Field must be grouped or aggregated: {path.text}",
            )
        return index

    def agg_field(self, key: AggKey) -> FieldInfo:
        agg, bound = self.aggs[key]
        if agg.function in ("COUNT", "COUNT_DISTINCT"):
            return FieldInfo(key[1], "int")
        if agg.function == "AVG" or bound is None:
            return FieldInfo(key[1], "double")
        return bound.field


def _compute(function: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if function == "COUNT":
        return len(present)
    if function == "COUNT_DISTINCT":
        return len({_fold(v) for v in present})
    if not present:
        return None
    if function == "SUM":
        return sum(present)
    if function == "AVG":
        return sum(present) / len(present)
    if function == "MIN":
        return min(present, key=_fold)
    return max(present, key=_fold)


def _operands(condition: Condition | None) -> Iterable[FieldPath | Aggregate]:
    if condition is None:
        return
    if isinstance(condition, Comparison):
        yield condition.field
    elif isinstance(condition, Not):
        yield from _operands(condition.item)
    elif isinstance(condition, And | Or):
        for item in condition.items:
            yield from _operands(item)


def run_aggregate(
    query: Query, binder: Binder, records: list[Record], today: dt.date
) -> list[dict[str, Any]]:
    """All AggregateResult rows of the query, HAVING applied and ORDER BY sorted (not yet paged)."""
    plan = _Plan(query, binder)
    columns: list[tuple[str, Callable[[dict[Any, Any]], Any]]] = []
    unaliased = 0
    for item in query.select:
        if isinstance(item, FieldPath):
            index = plan.group_position(item)
            columns.append((item.alias or plan.groups[index].key, itemgetter(index)))
            continue
        agg_key = plan.agg_key(item)
        name = item.alias
        if name is None:
            name, unaliased = f"expr{unaliased}", unaliased + 1
        columns.append((name, itemgetter(agg_key)))
    for operand in [*_operands(query.having), *(o.key for o in query.order_by)]:
        if isinstance(operand, Aggregate):
            plan.agg_key(operand)
        else:
            plan.group_position(operand)

    contexts = _group(plan, records)

    def resolve(operand: FieldPath | Aggregate) -> tuple[Getter, FieldInfo]:
        if isinstance(operand, Aggregate):
            key = plan.agg_key(operand)
            return (lambda ctx: ctx[key]), plan.agg_field(key)
        index = plan.group_position(operand)
        return (lambda ctx: ctx[index]), plan.groups[index].field

    having = FilterCompiler(query.text, resolve, today).compile(query.having)
    contexts = [c for c in contexts if having(c)]
    for order in reversed(query.order_by):
        get, field = resolve(order.key)
        contexts.sort(key=sort_key(get, field, order), reverse=order.descending)
    return [
        {"attributes": {"type": "AggregateResult"}, **{name: value(ctx) for name, value in columns}}
        for ctx in contexts
    ]


def _present(_: Record) -> bool:
    return True


def _group(plan: _Plan, records: list[Record]) -> list[dict[Any, Any]]:
    """One context per group: group values by position, aggregate values by AggKey."""
    getters = [b.get for b in plan.groups]
    agg_items = list(plan.aggs.items())
    agg_getters = [bound.get if bound is not None else _present for _, (_, bound) in agg_items]
    buckets: dict[tuple[Any, ...], tuple[list[Any], list[list[Any]]]] = {}
    counts: dict[tuple[Any, ...], int] = {}
    for record in records:
        values = [g(record) for g in getters]
        key = tuple([_fold(v) for v in values])
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = (values, [[] for _ in agg_items])
            counts[key] = 0
        counts[key] += 1
        for slot, get in zip(bucket[1], agg_getters, strict=True):
            slot.append(get(record))
    if not plan.groups and not buckets:
        buckets[()] = ([], [[] for _ in agg_items])
        counts[()] = 0
    contexts = []
    for key, (values, slots) in buckets.items():
        ctx: dict[Any, Any] = dict(enumerate(values))
        for (agg_key, (agg, _)), slot in zip(agg_items, slots, strict=True):
            ctx[agg_key] = _compute(agg.function, slot)
        ctx[("COUNT", "")] = counts[key]
        contexts.append(ctx)
    return contexts
