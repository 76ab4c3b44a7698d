"""Running a parsed query against a `RecordSource`: schema checks, filter, order, page, project.

Rows come back as the REST API shows them: `{"attributes": {"type": "Lead"}, "Id": ..., "Owner":
{"attributes": {"type": "User"}, "IsActive": true}}` in SELECT order, or `AggregateResult` rows with
`expr0`, `expr1`... (or the alias) for aggregate queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sfemulator.soql.aggregates import run_aggregate
from sfemulator.soql.binding import Binder, BoundField, Getter, ParentLookup, Record, name_entity_value
from sfemulator.soql.errors import soql_error
from sfemulator.soql.filters import FilterCompiler
from sfemulator.soql.ordering import sort_key
from sfemulator.soql.query import Aggregate, FieldPath, OrderItem, Query
from sfemulator.soql.source import FieldInfo, RecordSource

MAX_OFFSET = 2000
T = TypeVar("T")


@dataclass
class SoqlResult:
    """Rows in API shape; `total_size` is the count Salesforce reports (`SELECT COUNT()` has no rows)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    total_size: int = 0
    is_count: bool = False


def execute(
    query: Query,
    source: RecordSource,
    *,
    now: dt.datetime,
    include_deleted: bool = False,
    url_prefix: str | None = None,
) -> SoqlResult:
    """Run `query` against `source`; raises SoqlError (INVALID_TYPE, INVALID_FIELD, ...) as Salesforce would.

    `now` (the org's clock) fixes date literals such as TODAY.
    `include_deleted` is queryAll. With `url_prefix` (e.g. "/services/data/v59.0") every record's
    attributes also carry `"url": "<prefix>/sobjects/<type>/<id>"`, as the REST API returns them.
    """
    parents = ParentLookup(source)
    binder = Binder(query, source, parents)
    today = now.astimezone(dt.UTC).date()
    if query.offset is not None and query.offset > MAX_OFFSET and query.offset_pos is not None:
        raise soql_error(
            "NUMBER_OUTSIDE_VALID_RANGE",
            query.text,
            query.offset_pos,
            f"Maximum SOQL offset allowed is {MAX_OFFSET}",
        )

    where = _compile_where(query, binder, today)
    records: Iterable[Record] = source.records(binder.schema.name, include_deleted)
    aggregate = any(isinstance(item, Aggregate) for item in query.select) or bool(query.group_by)
    if aggregate:
        rows = _page(run_aggregate(query, binder, [r for r in records if where(r)], today), query)
        return SoqlResult(rows=rows, total_size=len(rows))
    if query.count_only:
        count = sum(1 for r in records if where(r))
        count = max(0, count - (query.offset or 0))
        if query.limit is not None:
            count = min(count, query.limit)
        return SoqlResult(rows=[], total_size=count, is_count=True)
    project = _projector(query, binder, url_prefix)
    sort = _sorter(query.order_by, binder)
    if sort is None and query.offset is None and query.limit is not None:
        matched = _first(records, where, query.limit)
    else:
        matched = [r for r in records if where(r)]
        if sort is not None:
            sort(matched)
        matched = _page(matched, query)
    rows = [project(r) for r in matched]
    return SoqlResult(rows=rows, total_size=len(rows))


def compile_where(query: Query, source: RecordSource, *, now: dt.datetime) -> Callable[[Record], bool]:
    """The query's WHERE clause as a predicate over one record of its object, with exactly the semantics
    `execute` uses (PushTopic matching needs this for single changed records).

    Schema errors raise SoqlError as in `execute`. Relative date literals (TODAY...) are fixed at `now`,
    so a long-lived predicate should be compiled again when the day changes.
    """
    binder = Binder(query, source, ParentLookup(source))
    return _compile_where(query, binder, now.astimezone(dt.UTC).date())


def _compile_where(query: Query, binder: Binder, today: dt.date) -> Callable[[Record], bool]:
    def resolve(operand: FieldPath | Aggregate) -> tuple[Getter, FieldInfo]:
        if isinstance(operand, Aggregate):  # the parser allows aggregates only in HAVING
            raise AssertionError("aggregate outside HAVING")
        bound = binder.bind(operand)
        return bound.get, bound.field

    return FilterCompiler(query.text, resolve, today).compile(query.where)


def _first(records: Iterable[Record], where: Callable[[Record], bool], limit: int) -> list[Record]:
    out: list[Record] = []
    if limit == 0:
        return out
    for r in records:
        if where(r):
            out.append(r)
            if len(out) >= limit:
                break
    return out


def _page(rows: list[T], query: Query) -> list[T]:
    start = query.offset or 0
    end = None if query.limit is None else start + query.limit
    return rows[start:end]


def _sorter(order_by: tuple[OrderItem, ...], binder: Binder) -> Callable[[list[Record]], None] | None:
    if not order_by:
        return None
    keys = []
    for item in order_by:
        if isinstance(item.key, Aggregate):
            raise soql_error(
                "MALFORMED_QUERY",
                binder.query.text,
                item.key.pos,
                "Ordered field must be grouped or aggregated",
            )
        bound = binder.bind(item.key)
        keys.append((sort_key(bound.get, bound.field, item), item.descending))

    def sort(rows: list[Record]) -> None:
        # Stable sorts from the last key to the first give a multi-key order with mixed directions.
        for key, descending in reversed(keys):
            rows.sort(key=key, reverse=descending)

    return sort


def _projector(query: Query, binder: Binder, url_prefix: str | None) -> Callable[[Record], dict[str, Any]]:
    """Builds the function that shapes one record into its API row, nesting parent fields."""
    sobject = binder.schema.name
    plain: list[tuple[str, str]] = []  # (output key, record key) in SELECT order
    layout: list[tuple[str, Any]] = []  # ("field", key) or ("parent", relationship)
    parents: dict[str, tuple[BoundField, list[BoundField]]] = {}
    seen: set[str] = set()
    for item in query.select:
        assert isinstance(item, FieldPath)
        if item.alias is not None and item.alias_pos is not None:
            raise soql_error(
                "MALFORMED_QUERY", query.text, item.alias_pos, f"unexpected token: '{item.alias}'"
            )
        bound = binder.bind(item)
        label = f"{bound.relationship}.{bound.key}" if bound.relationship else bound.key
        if label.lower() in seen:
            raise soql_error("INVALID_FIELD", query.text, item.pos, f"duplicate field selected: {label}")
        seen.add(label.lower())
        if bound.relationship is None:
            plain.append((bound.key, bound.key))
            layout.append(("field", bound.key))
        elif bound.relationship in parents:
            parents[bound.relationship][1].append(bound)
        else:
            parents[bound.relationship] = (bound, [bound])
            layout.append(("parent", bound.relationship))
    lookup = binder.parents

    def parent_row(rel: str, record: Record) -> dict[str, Any] | None:
        first, fields = parents[rel]
        assert first.reference is not None
        found = lookup(record.get(first.reference.name))
        if found is None:
            return None
        ptype, precord = found
        attributes: dict[str, Any] = {"type": ptype}
        if url_prefix is not None:
            attributes["url"] = f"{url_prefix}/sobjects/{ptype}/{precord.get('Id')}"
        out: dict[str, Any] = {"attributes": attributes}
        polymorphic = len(first.reference.reference_to) > 1
        for f in fields:
            out[f.key] = name_entity_value(ptype, precord, f.key) if polymorphic else precord.get(f.key)
        return out

    if not parents and url_prefix is None:
        keys = [k for k, _ in plain]

        def project_flat(record: Record) -> dict[str, Any]:
            row: dict[str, Any] = {"attributes": {"type": sobject}}
            for k in keys:
                row[k] = record.get(k)
            return row

        return project_flat

    def project(record: Record) -> dict[str, Any]:
        attributes: dict[str, Any] = {"type": sobject}
        if url_prefix is not None:
            attributes["url"] = f"{url_prefix}/sobjects/{sobject}/{record.get('Id')}"
        row: dict[str, Any] = {"attributes": attributes}
        for kind, name in layout:
            row[name] = record.get(name) if kind == "field" else parent_row(name, record)
        return row

    return project
