"""Read the Salesforce DX source of the default schema (`salesforce/`).

The DX source is the one place the custom objects and fields are defined: the
connector validates configs against it offline and the emulator builds its org
from it, so the shipped metadata and the emulator cannot drift.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

_NS = "{http://soap.sforce.com/2006/04/metadata}"

# DX <type> -> the field type describe() reports.
_DX_TYPES = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
    "Picklist": "picklist",
    "Checkbox": "boolean",
    "Currency": "currency",
    "Number": "double",
    "Percent": "percent",
    "Date": "date",
    "DateTime": "datetime",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "AutoNumber": "string",
}


@dataclass(frozen=True)
class CustomField:
    """One custom field as the DX source declares it."""

    name: str
    label: str
    type: str  # describe() type: string, picklist, reference, currency, ...
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    required: bool = False
    external_id: bool = False
    unique: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None  # e.g. Advocate__r
    picklist_values: tuple[str, ...] = ()
    restricted: bool = False  # a picklist whose valueSet is <restricted>true</restricted>
    default_value: str | None = None


@dataclass(frozen=True)
class CustomObject:
    """A custom object, platform event, or custom fields added to a standard object."""

    name: str
    label: str = ""
    plural_label: str = ""
    is_custom: bool = True
    is_platform_event: bool = False
    enable_activities: bool = False  # <enableActivities>: tasks and events may relate to its records
    name_field_type: str | None = None  # Text or AutoNumber
    name_display_format: str | None = None
    fields: tuple[CustomField, ...] = field(default_factory=tuple)


# Custom activity fields live under objects/Activity in the DX source (Salesforce's place for them) and
# appear on both of its standard objects.
ACTIVITY_OBJECTS = ("Task", "Event")


def default_schema_dir() -> Path:
    """The `salesforce/` DX project shipped at the root of the repository."""
    from sfconnector.shipped import shipped

    return shipped("salesforce")


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(_NS + tag)
    return child.text if child is not None and child.text is not None else None


def _int(el: ET.Element, tag: str) -> int | None:
    value = _text(el, tag)
    return int(value) if value is not None else None


def _parse_field(path: Path) -> CustomField:
    root = ET.parse(path).getroot()
    dx_type = _text(root, "type") or "Text"
    values: list[str] = []
    value_set = root.find(f"{_NS}valueSet/{_NS}valueSetDefinition")
    restricted = _text(root.find(f"{_NS}valueSet"), "restricted") == "true"
    default: str | None = _text(root, "defaultValue")
    if value_set is not None:
        for value in value_set.findall(_NS + "value"):
            name = _text(value, "fullName") or ""
            values.append(name)
            if _text(value, "default") == "true":
                default = name
    name = _text(root, "fullName") or path.name.split(".")[0]
    reference_to = _text(root, "referenceTo")
    return CustomField(
        name=name,
        label=_text(root, "label") or name,
        type=_DX_TYPES.get(dx_type, "string"),
        length=_int(root, "length"),
        precision=_int(root, "precision"),
        scale=_int(root, "scale"),
        required=_text(root, "required") == "true",
        external_id=_text(root, "externalId") == "true",
        unique=_text(root, "unique") == "true",
        reference_to=reference_to,
        relationship_name=name[:-3] + "__r" if reference_to else None,
        picklist_values=tuple(values),
        restricted=restricted,
        default_value=default,
    )


def load_dx_schema(root: Path | None = None) -> dict[str, CustomObject]:
    """Every object under `force-app/main/default/objects`, keyed by API name.

    The custom fields under `objects/Activity` are returned as fields of Task and of Event, as an org shows them.
    """
    base = (root or default_schema_dir()) / "force-app" / "main" / "default" / "objects"
    objects: dict[str, CustomObject] = {}
    for obj_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        name = obj_dir.name
        fields = tuple(_parse_field(p) for p in sorted((obj_dir / "fields").glob("*.field-meta.xml")))
        meta_path = obj_dir / f"{name}.object-meta.xml"
        if meta_path.exists():
            root_el = ET.parse(meta_path).getroot()
            name_field = root_el.find(_NS + "nameField")
            objects[name] = CustomObject(
                name=name,
                label=_text(root_el, "label") or name,
                plural_label=_text(root_el, "pluralLabel") or name,
                is_custom=True,
                is_platform_event=name.endswith("__e"),
                enable_activities=_text(root_el, "enableActivities") == "true",
                name_field_type=_text(name_field, "type"),
                name_display_format=_text(name_field, "displayFormat"),
                fields=fields,
            )
        elif name == "Activity":  # custom activity fields: on every activity object
            for activity in ACTIVITY_OBJECTS:
                previous = objects.get(activity)
                merged = (previous.fields if previous else ()) + fields
                objects[activity] = CustomObject(
                    name=activity, label=activity, is_custom=False, fields=merged
                )
        else:  # custom fields added to a standard object
            previous = objects.get(name)
            merged = (previous.fields if previous else ()) + fields
            objects[name] = CustomObject(name=name, label=name, is_custom=False, fields=merged)
    return objects
