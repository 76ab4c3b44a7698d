"""The org's schema: standard objects written out here, custom ones read from the DX source.

The custom schema has one source of truth, `salesforce/` (via `load_dx_schema`), so the emulator
and the metadata the connector ships cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from sfconnector.mapping.metadata import CustomField, CustomObject, default_schema_dir, load_dx_schema
from sfemulator.ids import STANDARD_PREFIXES

# Platform event publishes answer with ids of this prefix (notes §10).
EVENT_ID_PREFIX = "e01"


@dataclass(frozen=True)
class FieldDef:
    """One field as describe() reports it, plus what the store needs to enforce it."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    required: bool = False  # must be set on create (REQUIRED_FIELD_MISSING)
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist_values: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    custom: bool = False
    calculated: bool = False  # derived by the store (Name of a person, IsWon, ...)


@dataclass
class ObjectDef:
    """One sObject type."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef]
    custom: bool = False
    is_platform_event: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    auto_number_format: str | None = None  # "REF-{000000}" for auto-number Name fields
    _lower: dict[str, FieldDef] = dc_field(default_factory=dict, repr=False, init=False)

    def __post_init__(self) -> None:
        self._lower = {k.lower(): v for k, v in self.fields.items()}

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup, as the API does it."""
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is `name` (`Owner`, `Advocate__r`)."""
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    @property
    def has_owner(self) -> bool:
        return "OwnerId" in self.fields


def _f(name: str, ftype: str, label: str | None = None, **kw: Any) -> FieldDef:
    defaults: dict[str, Any] = {}
    if ftype in ("string", "textarea", "phone", "url", "email", "picklist"):
        defaults["length"] = {"textarea": 32000, "picklist": 255, "phone": 40, "email": 80}.get(ftype, 255)
    if ftype in ("id", "reference"):
        defaults["length"] = 18
    if ftype == "boolean":
        defaults.update(nillable=False, default=False)
    if ftype in ("currency",):
        defaults.update(precision=18, scale=2)
    if ftype in ("double", "percent"):
        defaults.update(precision=18, scale=0)
    if ftype == "int":
        defaults.update(precision=9)
    defaults.update(kw)
    if defaults.get("required"):
        defaults["nillable"] = False
    if "picklist_values" in defaults:
        defaults["picklist_values"] = tuple(defaults["picklist_values"])
    if "reference_to" in defaults and isinstance(defaults["reference_to"], str):
        defaults["reference_to"] = (defaults["reference_to"],)
    return FieldDef(name=name, type=ftype, label=label or _label(name), **defaults)


def _label(api_name: str) -> str:
    base = api_name.removesuffix("__c").removesuffix("Id") if api_name != "Id" else "Id"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base.replace("_", " ")) or api_name


def _ro(name: str, ftype: str, **kw: Any) -> FieldDef:
    """A read-only field the store maintains."""
    return _f(name, ftype, createable=False, updateable=False, **kw)


def _system_fields(with_owner: bool) -> list[FieldDef]:
    fields = [
        _ro("Id", "id", nillable=False),
        _ro("IsDeleted", "boolean"),
        _ro("CreatedDate", "datetime", nillable=False),
        _ro("CreatedById", "reference", reference_to="User", relationship_name="CreatedBy", nillable=False),
        _ro("LastModifiedDate", "datetime", nillable=False),
        _ro(
            "LastModifiedById",
            "reference",
            reference_to="User",
            relationship_name="LastModifiedBy",
            nillable=False,
        ),
        _ro("SystemModstamp", "datetime", nillable=False),
    ]
    if with_owner:
        fields.append(
            _f(
                "OwnerId",
                "reference",
                reference_to=("Group", "User"),
                relationship_name="Owner",
                nillable=False,
            )
        )
    return fields


def _address(prefix: str) -> list[FieldDef]:
    return [
        _f(f"{prefix}Street", "textarea", length=255),
        _f(f"{prefix}City", "string", length=40),
        _f(f"{prefix}State", "string", length=80),
        _f(f"{prefix}PostalCode", "string", length=20),
        _f(f"{prefix}Country", "string", length=80),
    ]


LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Employee Referral", "Other")
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_LEAD_STATUSES = frozenset({"Closed - Converted"})


@dataclass(frozen=True)
class Stage:
    """One row of the org's opportunity stage table: what IsClosed/IsWon/Probability derive from."""

    name: str
    probability: float
    is_closed: bool
    is_won: bool
    forecast_category: str


OPPORTUNITY_STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("Prospecting", 10, False, False, "Pipeline"),
        Stage("Qualification", 10, False, False, "Pipeline"),
        Stage("Needs Analysis", 20, False, False, "Pipeline"),
        Stage("Value Proposition", 50, False, False, "Pipeline"),
        Stage("Proposal/Price Quote", 75, False, False, "Pipeline"),
        Stage("Negotiation/Review", 90, False, False, "Commit"),
        Stage("Closed Won", 100, True, True, "Closed"),
        Stage("Closed Lost", 0, True, False, "Omitted"),
    )
}


def _person_name_fields() -> list[FieldDef]:
    return [
        _f("Salutation", "picklist", picklist_values=("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, required=True),
        # Name is computed from FirstName/LastName (a compound field in the API).
        _ro("Name", "string", length=121, calculated=True),
    ]


def _standard_objects() -> list[ObjectDef]:
    lead = [
        *_system_fields(True),
        *_person_name_fields(),
        _f("Title", "string", length=128),
        _f("Company", "string", required=True),
        _f("Email", "email"),
        _f("Phone", "phone"),
        _f("MobilePhone", "phone"),
        *_address(""),
        _f("Website", "url"),
        _f("Description", "textarea"),
        _f("LeadSource", "picklist", picklist_values=LEAD_SOURCES),
        # Status is a restricted picklist here: conversion reads IsConverted statuses from this table.
        _f("Status", "picklist", picklist_values=LEAD_STATUSES, restricted=True, default=LEAD_STATUSES[0]),
        _f("Industry", "picklist", picklist_values=("Banking", "Education", "Retail", "Technology", "Other")),
        _f("Rating", "picklist", picklist_values=("Hot", "Warm", "Cold")),
        _f("AnnualRevenue", "currency"),
        _f("NumberOfEmployees", "int"),
        _f("HasOptedOutOfEmail", "boolean"),
        _ro("IsConverted", "boolean"),
        _ro("ConvertedDate", "date"),
        _ro("ConvertedAccountId", "reference", reference_to="Account", relationship_name="ConvertedAccount"),
        _ro("ConvertedContactId", "reference", reference_to="Contact", relationship_name="ConvertedContact"),
        _ro(
            "ConvertedOpportunityId",
            "reference",
            reference_to="Opportunity",
            relationship_name="ConvertedOpportunity",
        ),
        _f("IsUnreadByOwner", "boolean"),
    ]
    contact = [
        *_system_fields(True),
        *_person_name_fields(),
        _f("AccountId", "reference", reference_to="Account", relationship_name="Account"),
        _f("Title", "string", length=128),
        _f("Email", "email"),
        _f("Phone", "phone"),
        _f("MobilePhone", "phone"),
        *_address("Mailing"),
        _f("LeadSource", "picklist", picklist_values=LEAD_SOURCES),
        _f("Description", "textarea"),
        _f("HasOptedOutOfEmail", "boolean"),
    ]
    account = [
        *_system_fields(True),
        _f("Name", "string", required=True),
        _f("Type", "picklist", picklist_values=("Prospect", "Customer - Direct", "Partner", "Other")),
        _f("Industry", "picklist", picklist_values=("Banking", "Education", "Retail", "Technology", "Other")),
        _f("Phone", "phone"),
        _f("Website", "url"),
        *_address("Billing"),
        _f("AnnualRevenue", "currency"),
        _f("NumberOfEmployees", "int"),
        _f("Description", "textarea"),
    ]
    opportunity = [
        *_system_fields(True),
        _f("Name", "string", length=120, required=True),
        _f("AccountId", "reference", reference_to="Account", relationship_name="Account"),
        _f("ContactId", "reference", reference_to="Contact", relationship_name="Contact"),
        _f(
            "StageName",
            "picklist",
            required=True,
            picklist_values=tuple(OPPORTUNITY_STAGES),
            restricted=True,
        ),
        _f("CloseDate", "date", required=True),
        _f("Amount", "currency"),
        _f("Probability", "percent", precision=3),
        _f("Type", "picklist", picklist_values=("New Business", "Existing Business")),
        _f("LeadSource", "picklist", picklist_values=LEAD_SOURCES),
        _f("NextStep", "string"),
        _f("Description", "textarea"),
        _ro("ForecastCategory", "picklist", picklist_values=("Pipeline", "Commit", "Closed", "Omitted")),
        _ro("IsClosed", "boolean", calculated=True),
        _ro("IsWon", "boolean", calculated=True),
    ]
    user = [
        *_system_fields(False),
        _f("Username", "string", length=80, required=True, unique=True),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, required=True),
        _ro("Name", "string", length=121, calculated=True),
        _f("Email", "email", required=True),
        _f("Alias", "string", length=8, required=True),
        _f("IsActive", "boolean", default=True),
        _f("Title", "string", length=80),
        _f("Department", "string", length=80),
        _f("ManagerId", "reference", reference_to="User", relationship_name="Manager"),
        _f("UserType", "picklist", picklist_values=("Standard",), default="Standard", updateable=False),
        _f("TimeZoneSidKey", "picklist", picklist_values=("America/Los_Angeles", "Europe/Paris", "GMT")),
    ]
    group = [
        *_system_fields(False),
        _f("OwnerId", "reference", reference_to="User", relationship_name="Owner"),
        _f("Name", "string", length=40, required=True),
        _f("DeveloperName", "string", length=80),
        _f(
            "Type",
            "picklist",
            picklist_values=("Regular", "Queue", "Role"),
            default="Regular",
            restricted=True,
        ),
        _f("Email", "email"),
        _f("DoesSendEmailToMembers", "boolean"),
    ]
    task = [
        *_system_fields(True),
        _f("Subject", "string"),
        _f(
            "Status",
            "picklist",
            picklist_values=(
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ),
            default="Not Started",
            nillable=False,
        ),
        _f(
            "Priority",
            "picklist",
            picklist_values=("High", "Normal", "Low"),
            default="Normal",
            nillable=False,
        ),
        _f("ActivityDate", "date"),
        _f("Description", "textarea"),
        _f("Type", "picklist", picklist_values=("Call", "Email", "Meeting", "Other")),
        _f("TaskSubtype", "picklist", picklist_values=("Task", "Email", "Call")),
        _f("WhoId", "reference", reference_to=("Contact", "Lead"), relationship_name="Who"),
        _f("WhatId", "reference", reference_to=("Account", "Opportunity"), relationship_name="What"),
        _ro("IsClosed", "boolean", calculated=True),
    ]
    organization = [
        *_system_fields(False),
        _f("Name", "string", length=80),
        _f("OrganizationType", "string", length=40),
        _f("IsSandbox", "boolean"),
        _f("InstanceName", "string", length=5),
        _f("NamespacePrefix", "string", length=15),
        _f("DefaultLocaleSidKey", "string", length=40),
        _f("TimeZoneSidKey", "string", length=40),
    ]
    push_topic = [
        *_system_fields(False),
        _f("Name", "string", length=25, required=True),
        _f("Query", "textarea", length=1300, required=True),
        _f("ApiVersion", "double", precision=18, scale=1, required=True),
        _f("Description", "string", length=400),
        _f("IsActive", "boolean", default=True),
        _f("NotifyForOperationCreate", "boolean", default=True),
        _f("NotifyForOperationUpdate", "boolean", default=True),
        _f("NotifyForOperationDelete", "boolean", default=True),
        _f("NotifyForOperationUndelete", "boolean", default=True),
        _f(
            "NotifyForFields",
            "picklist",
            picklist_values=("All", "Referenced", "Select", "Where"),
            default="Referenced",
            restricted=True,
        ),
    ]
    specs: list[tuple[str, str, str, list[FieldDef], dict[str, Any]]] = [
        ("Lead", "Lead", "Leads", lead, {}),
        ("Contact", "Contact", "Contacts", contact, {}),
        ("Account", "Account", "Accounts", account, {}),
        ("Opportunity", "Opportunity", "Opportunities", opportunity, {}),
        ("User", "User", "Users", user, {"deletable": False}),
        ("Group", "Group", "Groups", group, {}),
        ("Task", "Task", "Tasks", task, {}),
        (
            "Organization",
            "Organization",
            "Organizations",
            organization,
            {"createable": False, "updateable": False, "deletable": False},
        ),
        ("PushTopic", "Push Topic", "Push Topics", push_topic, {}),
    ]
    return [
        ObjectDef(
            name=name,
            label=label,
            label_plural=plural,
            key_prefix=STANDARD_PREFIXES[name],
            fields={f.name: f for f in fields},
            **flags,
        )
        for name, label, plural, fields, flags in specs
    ]


def _from_dx(cf: CustomField) -> FieldDef:
    kw: dict[str, Any] = {"custom": True, "external_id": cf.external_id, "unique": cf.unique}
    if cf.length:
        kw["length"] = cf.length
    if cf.precision is not None:
        kw["precision"] = cf.precision
    if cf.scale is not None:
        kw["scale"] = cf.scale
    if cf.required:
        kw["required"] = True
    if cf.reference_to:
        kw["reference_to"] = (cf.reference_to,)
        kw["relationship_name"] = cf.relationship_name
    if cf.picklist_values:
        kw["picklist_values"] = cf.picklist_values
        kw["restricted"] = cf.restricted
    if cf.default_value is not None:
        if cf.type == "boolean":
            kw["default"] = cf.default_value.lower() == "true"
        else:
            kw["default"] = cf.default_value.strip("\"'")
    return _f(cf.name, cf.type, cf.label, **kw)


def _custom_object(co: CustomObject, prefix: str) -> ObjectDef:
    custom_fields = [_from_dx(cf) for cf in co.fields]
    if co.is_platform_event:
        fields = [
            _ro("Id", "id"),
            _ro("ReplayId", "string"),
            _ro("CreatedDate", "datetime"),
            _ro("CreatedById", "reference", reference_to="User", relationship_name="CreatedBy"),
            _ro("EventUuid", "string", length=36),
            *custom_fields,
        ]
        return ObjectDef(
            name=co.name,
            label=co.label,
            label_plural=co.plural_label,
            key_prefix="e00",
            fields={f.name: f for f in fields},
            custom=True,
            is_platform_event=True,
            updateable=False,
            deletable=False,
            queryable=False,
        )
    auto = co.name_field_type == "AutoNumber"
    name_field = _ro("Name", "string", length=80) if auto else _f("Name", "string", length=80, required=True)
    fields = [*_system_fields(True), name_field, *custom_fields]
    return ObjectDef(
        name=co.name,
        label=co.label,
        label_plural=co.plural_label,
        key_prefix=prefix,
        fields={f.name: f for f in fields},
        custom=True,
        auto_number_format=co.name_display_format if auto else None,
    )


class Schema:
    """Every sObject type of the org, looked up case-insensitively, and by key prefix."""

    def __init__(self, objects: list[ObjectDef]) -> None:
        self.objects: dict[str, ObjectDef] = {o.name: o for o in objects}
        self._lower = {o.name.lower(): o for o in objects}
        self._by_prefix = {o.key_prefix: o for o in objects if not o.is_platform_event}

    def get(self, name: str) -> ObjectDef | None:
        return self._lower.get(name.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        return self._by_prefix.get(prefix)


def _custom_prefix(n: int) -> str:
    # Org-specific prefixes for custom objects: a0A, a0B, ... (deterministic, sorted by API name).
    return "a0" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[n]


def build_schema(dx_root: Path | None = None) -> Schema:
    """The standard objects plus the custom objects and fields of the DX source."""
    root = dx_root or default_schema_dir()
    objects = {o.name: o for o in _standard_objects()}
    dx = load_dx_schema(root)
    n = 0
    for name in sorted(dx):
        co = dx[name]
        if co.is_custom:
            objects[name] = _custom_object(co, _custom_prefix(n))
            if not co.is_platform_event:
                n += 1
        elif name in objects:  # custom fields on a standard object
            std = objects[name]
            merged = dict(std.fields)
            for cf in co.fields:
                merged[cf.name] = _from_dx(cf)
            objects[name] = replace(std, fields=merged)
    # A Task can point at the records of the custom objects that allow activities (<enableActivities>), such
    # as an Advocate__c, through WhatId.
    customs = tuple(sorted(name for name, co in dx.items() if co.is_custom and co.enable_activities))
    task = objects["Task"]
    what = task.fields["WhatId"]
    objects["Task"] = replace(
        task, fields={**task.fields, "WhatId": replace(what, reference_to=(*what.reference_to, *customs))}
    )
    return Schema(list(objects.values()))


# --- describe -------------------------------------------------------------------------------------


def _soap_type(ftype: str) -> str:
    return {
        "id": "tns:ID",
        "reference": "tns:ID",
        "boolean": "xsd:boolean",
        "currency": "xsd:double",
        "double": "xsd:double",
        "percent": "xsd:double",
        "int": "xsd:int",
        "date": "xsd:date",
        "datetime": "xsd:dateTime",
    }.get(ftype, "xsd:string")


def describe_field(f: FieldDef) -> dict[str, Any]:
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "soapType": _soap_type(f.type),
        "length": f.length,
        "precision": f.precision,
        "scale": f.scale,
        "digits": f.precision if f.type == "int" else 0,
        "byteLength": f.length * 3,
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "defaultedOnCreate": f.default is not None or f.name in ("Id", "OwnerId", "CreatedDate"),
        "defaultValue": f.default,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.name == "Id" or f.external_id or f.unique,
        "calculated": f.calculated,
        "custom": f.custom,
        "filterable": True,
        "sortable": f.type != "textarea",
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "caseSensitive": False,
        "restrictedPicklist": f.restricted,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": v == f.default,
                "label": v,
                "validFor": None,
                "value": v,
            }
            for v in f.picklist_values
        ],
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "polymorphicForeignKey": len(f.reference_to) > 1,
        "cascadeDelete": False,
        "restrictedDelete": False,
        "htmlFormatted": False,
        "nameField": f.name == "Name",
        "autoNumber": False,
        "permissionable": f.custom,
    }


def _urls(o: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{o.name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
    }


def describe_global_entry(o: ObjectDef, version: str) -> dict[str, Any]:
    return {
        "name": o.name,
        "label": o.label,
        "labelPlural": o.label_plural,
        "keyPrefix": o.key_prefix,
        "custom": o.custom,
        "customSetting": False,
        "createable": o.createable,
        "updateable": o.updateable,
        "deletable": o.deletable,
        "undeletable": o.deletable,
        "queryable": o.queryable,
        "retrieveable": o.queryable,
        "searchable": o.queryable,
        "layoutable": o.queryable,
        "replicateable": o.queryable,
        "triggerable": True,
        "mergeable": o.name in ("Lead", "Contact", "Account"),
        "activateable": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isSubtype": False,
        "deprecatedAndHidden": False,
        "urls": _urls(o, version),
    }


def describe_object(o: ObjectDef, version: str, schema: Schema) -> dict[str, Any]:
    children = []
    for other in schema.objects.values():
        for f in other.fields.values():
            if o.name in f.reference_to and f.relationship_name and not other.is_platform_event:
                children.append(
                    {
                        "childSObject": other.name,
                        "field": f.name,
                        "relationshipName": None,
                        "cascadeDelete": False,
                    }
                )
    return {
        **describe_global_entry(o, version),
        "fields": [describe_field(f) for f in o.fields.values()],
        "childRelationships": children,
        "recordTypeInfos": [],
        "supportedScopes": [{"label": "All", "name": "everything"}],
    }
