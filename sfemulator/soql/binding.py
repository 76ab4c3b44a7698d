"""Resolving field paths against the schema: canonical names, types, and fast per-record getters.

Errors are Salesforce's INVALID_FIELD / INVALID_TYPE messages with the caret on the field or object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sfemulator.soql.errors import Position, SoqlError, soql_error
from sfemulator.soql.query import FieldPath, Query
from sfemulator.soql.source import FieldInfo, ObjectInfo, RecordSource

Record = Mapping[str, Any]
Getter = Callable[[Record], Any]

_NO_COLUMN = (
    "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
_NO_RELATIONSHIP = (
    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, "
    "be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)
_NO_TYPE = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
    "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
)

# A polymorphic lookup (OwnerId -> User or Group) is read through Salesforce's `Name` entity, which has
# only these fields.
NAME_ENTITY = ObjectInfo(
    "Name",
    {
        f.name.lower(): f
        for f in (
            FieldInfo("Id", "id"),
            FieldInfo("Name", "string"),
            FieldInfo("Type", "string"),
            FieldInfo("IsActive", "boolean"),
            FieldInfo("Email", "email"),
            FieldInfo("Alias", "string"),
            FieldInfo("FirstName", "string"),
            FieldInfo("LastName", "string"),
            FieldInfo("Username", "string"),
            FieldInfo("Title", "string"),
            FieldInfo("Phone", "phone"),
            FieldInfo("ProfileId", "reference"),
            FieldInfo("UserRoleId", "reference"),
        )
    },
)


@dataclass(frozen=True)
class BoundField:
    """A field path resolved against the schema.

    `relationship` is the canonical relationship name (e.g. "Owner") for a parent field, else None;
    `get` reads the value from a record of the queried object, following the lookup when needed.
    """

    path: FieldPath
    field: FieldInfo
    relationship: str | None
    reference: FieldInfo | None
    get: Getter

    @property
    def key(self) -> str:
        return self.field.name


class ParentLookup:
    """Per-query cache of parent records, so a parent shared by many rows is fetched once."""

    def __init__(self, source: RecordSource) -> None:
        self._source = source
        self._cache: dict[str, tuple[str, Record] | None] = {}

    def __call__(self, record_id: Any) -> tuple[str, Record] | None:
        if not record_id:
            return None
        try:
            return self._cache[record_id]
        except KeyError:
            found = self._source.get(record_id)
            self._cache[record_id] = found
            return found


def name_entity_value(sobject: str, record: Record, field: str) -> Any:
    """A Name-entity field of a User or Group record (Type is "Queue" for a queue, "User" for a user)."""
    if field == "Type":
        return record.get("Type") or sobject if sobject == "Group" else sobject
    if field == "Name":
        name = record.get("Name")
        if name is None and sobject == "User":
            parts = [record.get("FirstName"), record.get("LastName")]
            name = " ".join(p for p in parts if p) or None
        return name
    return record.get(field)


class Binder:
    """Resolves the paths of one query against one object's schema."""

    def __init__(self, query: Query, source: RecordSource, parents: ParentLookup) -> None:
        self.query = query
        self.source = source
        self.parents = parents
        schema = source.object_schema(query.sobject)
        if schema is None:
            raise self.error("INVALID_TYPE", query.sobject_pos, _NO_TYPE.format(name=query.sobject))
        self.schema: ObjectInfo = schema
        self.relationships = {
            f.relationship_name.lower(): f for f in schema.fields.values() if f.relationship_name is not None
        }

    def error(self, code: str, pos: Position, detail: str) -> SoqlError:
        return soql_error(code, self.query.text, pos, detail)

    def bind(self, path: FieldPath) -> BoundField:
        if len(path.parts) == 1:
            field = self._field(self.schema, path.parts[0], path.pos)
            name = field.name
            return BoundField(path, field, None, None, lambda r: r.get(name))
        rel_name, field_name = path.parts
        reference = self.relationships.get(rel_name.lower())
        if reference is None:
            raise self.error("INVALID_FIELD", path.pos, _NO_RELATIONSHIP.format(rel=rel_name))
        assert reference.relationship_name is not None
        ref_key = reference.name
        parents = self.parents
        if len(reference.reference_to) > 1:
            field = self._field(NAME_ENTITY, field_name, path.pos)
            fname = field.name

            def get_polymorphic(r: Record) -> Any:
                parent = parents(r.get(ref_key))
                return None if parent is None else name_entity_value(parent[0], parent[1], fname)

            return BoundField(path, field, reference.relationship_name, reference, get_polymorphic)
        target = self.source.object_schema(reference.reference_to[0]) if reference.reference_to else None
        if target is None:
            raise self.error("INVALID_FIELD", path.pos, _NO_RELATIONSHIP.format(rel=rel_name))
        field = self._field(target, field_name, path.pos)
        fname = field.name

        def get_parent(r: Record) -> Any:
            parent = parents(r.get(ref_key))
            return None if parent is None else parent[1].get(fname)

        return BoundField(path, field, reference.relationship_name, reference, get_parent)

    def _field(self, schema: ObjectInfo, name: str, pos: Position) -> FieldInfo:
        field = schema.fields.get(name.lower())
        if field is None:
            raise self.error("INVALID_FIELD", pos, _NO_COLUMN.format(field=name, entity=schema.name))
        return field
