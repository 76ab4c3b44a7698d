"""The org store seen by the SOQL executor (`sfemulator.soql.source.RecordSource`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sfemulator.errors import ApiError, DmlError
from sfemulator.soql import FieldInfo, ObjectInfo, SoqlError, compile_where, execute, parse
from sfemulator.soql.binding import Binder, ParentLookup
from sfemulator.soql.query import And, Comparison, Condition, FieldPath, Not, Or

if TYPE_CHECKING:
    from sfemulator.store import Org


class OrgRecordSource:
    """Schema and records of one org, for queries."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self._infos: dict[str, ObjectInfo | None] = {}

    def object_schema(self, sobject: str) -> ObjectInfo | None:
        key = sobject.lower()
        if key not in self._infos:
            obj = self.org.schema.get(sobject)
            if obj is None or not obj.queryable:
                self._infos[key] = None
            else:
                self._infos[key] = ObjectInfo(
                    name=obj.name,
                    fields={
                        f.name.lower(): FieldInfo(f.name, f.type, f.reference_to, f.relationship_name)
                        for f in obj.fields.values()
                    },
                )
        return self._infos[key]

    def records(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        return self.org.records(sobject, include_deleted)

    def get(self, record_id: str) -> tuple[str, Mapping[str, Any]] | None:
        return self.org.get(record_id)

    def run(self, text: str, include_deleted: bool, version: str) -> tuple[list[dict[str, Any]], int]:
        """(rows in API shape with attribute urls, totalSize); SoqlError becomes a 400 as Salesforce sends it."""
        try:
            query = parse(text)
            with self.org.lock:
                result = execute(
                    query,
                    self,
                    now=self.org.clock(),
                    include_deleted=include_deleted,
                    url_prefix=f"/services/data/v{version}",
                )
        except SoqlError as exc:
            raise ApiError(400, exc.error_code, exc.message) from None
        return result.rows, result.total_size


def check_pushtopic_query(org: Org, text: str) -> None:
    """Refuse, as a PushTopic insert or update, a query Salesforce does not accept for a topic.

    The query must parse and name real fields (the errors a query would get), select Id, and use none of
    what the Streaming API guide's "Unsupported PushTopic Queries" lists, with its messages: aggregates
    and GROUP BY, LIMIT, ORDER BY, relationship fields, NOT. So a stored topic is always one the streaming
    side can compile and evaluate.
    """
    source = OrgRecordSource(org)
    try:
        query = parse(text)
        compile_where(query, source, now=org.clock())
        binder = Binder(query, source, ParentLookup(source))
        for item in query.select:
            if isinstance(item, FieldPath):
                binder.bind(item)
    except SoqlError as exc:
        raise DmlError(exc.error_code, exc.message, ["Query"]) from None
    problem: str | None = None
    paths = [item for item in query.select if isinstance(item, FieldPath)]
    if query.count_only or len(paths) < len(query.select) or query.group_by or query.having is not None:
        problem = "Aggregate queries are not supported"
    elif query.limit is not None:
        problem = "'LIMIT' is not allowed"
    elif query.order_by:
        problem = "'ORDER BY' clause is not allowed"
    elif any(len(p.parts) > 1 for p in [*paths, *_operands(query.where)]):
        problem = "relationships are not supported"
    elif _has_not(query.where):
        problem = "'NOT' is not supported"
    elif not any(p.parts[-1].lower() == "id" and len(p.parts) == 1 for p in paths):
        problem = "The Id field is required in the SELECT clause of a PushTopic query"  # [UNCONFIRMED] text
    if problem is not None:
        raise DmlError("INVALID_FIELD", problem, ["Query"])


def _conditions(condition: Condition | None) -> list[Condition]:
    out: list[Condition] = []
    stack = [condition] if condition is not None else []
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, Not):
            stack.append(node.item)
        elif isinstance(node, And | Or):
            stack.extend(node.items)
    return out


def _operands(condition: Condition | None) -> list[FieldPath]:
    return [
        c.field
        for c in _conditions(condition)
        if isinstance(c, Comparison) and isinstance(c.field, FieldPath)
    ]


def _has_not(condition: Condition | None) -> bool:
    return any(isinstance(c, Not) for c in _conditions(condition))
