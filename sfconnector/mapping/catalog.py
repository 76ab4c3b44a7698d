"""Which Salesforce objects and fields exist, as far as an offline check can know.

Built from the DX source (custom objects and fields), the standard fields in `standard.py`, and any fields an
admin declares. Salesforce API names are case-insensitive, so lookups are too and answer the canonical name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from sfconnector.mapping.metadata import load_dx_schema
from sfconnector.mapping.standard import CUSTOM_OBJECT_FIELDS, PLATFORM_EVENT_FIELDS, STANDARD_FIELDS

NUMERIC_TYPES = frozenset({"int", "double", "currency", "percent"})
TEMPORAL_TYPES = frozenset({"date", "datetime"})
TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "id", "reference", "multipicklist"}
)


@dataclass(frozen=True)
class FieldInfo:
    """One field: its canonical API name, describe() type and, for restricted picklists, its values."""

    object: str
    name: str
    type: str
    picklist_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldCatalog:
    """Objects by canonical name, each with its fields by canonical name."""

    objects: Mapping[str, Mapping[str, FieldInfo]]

    @cached_property
    def _by_lower(self) -> dict[str, tuple[str, dict[str, FieldInfo]]]:
        return {
            obj.lower(): (obj, {name.lower(): info for name, info in fields.items()})
            for obj, fields in self.objects.items()
        }

    def object_name(self, name: str) -> str | None:
        """The canonical spelling of an object name, or None if unknown."""
        found = self._by_lower.get(name.lower())
        return found[0] if found else None

    def field(self, object_name: str, field_name: str) -> FieldInfo | None:
        """The field, matched case-insensitively as Salesforce does, or None if unknown."""
        found = self._by_lower.get(object_name.lower())
        return found[1].get(field_name.lower()) if found else None

    def field_names(self, object_name: str) -> list[str]:
        return sorted(self.objects.get(object_name, {}))

    def with_fields(self, extra: Mapping[str, Iterable[str]]) -> FieldCatalog:
        """This catalog plus fields (of unknown type, treated as text) an admin says the org has."""
        objects = {name: dict(fields) for name, fields in self.objects.items()}
        for object_name, names in extra.items():
            fields = objects.setdefault(object_name, {})
            for name in names:
                if not any(k.lower() == name.lower() for k in fields):
                    fields[name] = FieldInfo(object_name, name, "string")
        return FieldCatalog(MappingProxyType({k: MappingProxyType(v) for k, v in objects.items()}))


def load_catalog(dx_root: Path | None = None) -> FieldCatalog:
    """The catalog of the default schema: DX source plus the standard objects' fields."""
    objects: dict[str, dict[str, FieldInfo]] = {
        name: {f: FieldInfo(name, f, t) for f, t in fields.items()}
        for name, fields in STANDARD_FIELDS.items()
    }
    for obj in load_dx_schema(dx_root).values():
        fields = objects.setdefault(obj.name, {})
        if obj.is_custom:
            base = PLATFORM_EVENT_FIELDS if obj.is_platform_event else CUSTOM_OBJECT_FIELDS
            for f, t in base.items():
                fields.setdefault(f, FieldInfo(obj.name, f, t))
        for custom in obj.fields:
            fields[custom.name] = FieldInfo(obj.name, custom.name, custom.type, custom.picklist_values)
    return FieldCatalog(MappingProxyType({k: MappingProxyType(v) for k, v in objects.items()}))
