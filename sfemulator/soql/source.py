"""What the SOQL executor needs from an org: typed schema and stored records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# Describe types whose values compare as case-insensitive text, as Salesforce compares them.
TEXT_TYPES = frozenset(
    {
        "string",
        "email",
        "phone",
        "url",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"currency", "double", "int", "percent", "long"})


@dataclass(frozen=True)
class FieldInfo:
    """One field of an object, as describe reports it."""

    name: str
    type: str
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """An object's canonical name and its fields keyed by lower-case field name."""

    name: str
    fields: Mapping[str, FieldInfo]


class RecordSource(Protocol):
    """The org store, seen read-only by the executor."""

    def object_schema(self, sobject: str) -> ObjectInfo | None:
        """The object's schema by case-insensitive name, or None when the org has no such object."""
        ...

    def records(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        """Stored records keyed by canonical field names (dates `YYYY-MM-DD`,
        datetimes `YYYY-MM-DDThh:mm:ss.000+0000`, numbers, booleans, None)."""
        ...

    def get(self, record_id: str) -> tuple[str, Mapping[str, Any]] | None:
        """(sobject, record) for an 18-character id, for parent lookups; None when absent."""
        ...
