"""The org store seen by the SOQL executor (`sfemulator.soql.source.RecordSource`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sfemulator.errors import ApiError
from sfemulator.soql import FieldInfo, ObjectInfo, SoqlError, execute, parse
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
