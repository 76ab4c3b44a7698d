"""Salesforce access in one shape: what a permission set grants, and what sfconnector was seen to need.

`Access` maps each object to an `ObjectAccess` (read, create, edit, view all, readable and editable fields) and
holds the user permissions. It is built from a permission set file, or from what the daemon did against the
emulator (its SOQL log and its outbox) together with what its config names (mapping, rule fields, channels),
then turned into what an org demands with Salesforce's rules (`required`): which standard fields carry
field-level security, which permissions depend on others, which operations need which user permission.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfemulator.schema import Schema
from sfemulator.soql import parse
from sfemulator.soql.query import And, Comparison, Condition, FieldPath, Not, Or

MD = "{http://soap.sforce.com/2006/04/metadata}"

# Standard fields that carry field-level security (the rest are visible to anyone who can read the object:
# Id, Name, OwnerId, audit fields, required fields such as Lead.Company or Opportunity.StageName, derived ones
# such as IsWon). Taken from the fieldPermissions of a System Administrator profile retrieved from an org
# (trailheadapps/dreamhouse-lwc@c38d8e6, force-app/main/default/profiles/Admin.profile-meta.xml), which lists
# exactly the permissionable fields; only the objects sfconnector touches are copied.
PERMISSIONABLE_STANDARD = {
    "Lead": {
        "Address", "AnnualRevenue", "CleanStatus", "CompanyDunsNumber", "DandbCompanyId", "Description",
        "DoNotCall", "Email", "Fax", "HasOptedOutOfEmail", "HasOptedOutOfFax", "Industry", "Jigsaw",
        "LastTransferDate", "LeadSource", "MobilePhone", "NumberOfEmployees", "Phone", "Rating", "Title",
        "Website",
    },
    "Contact": {
        "AccountId", "AssistantName", "AssistantPhone", "Birthdate", "CleanStatus", "Department",
        "Description", "DoNotCall", "Email", "Fax", "HasOptedOutOfEmail", "HasOptedOutOfFax", "HomePhone",
        "Jigsaw", "LeadSource", "MailingAddress", "MobilePhone", "OtherAddress", "OtherPhone", "Phone",
        "ReportsToId", "Title",
    },
    "Opportunity": {
        "AccountId", "Amount", "CampaignId", "ContractId", "Description", "ExpectedRevenue", "IsPrivate",
        "LeadSource", "NextStep", "Probability", "TotalOpportunityQuantity", "Type",
    },
    "Task": {"ActivityDate", "Description", "Type", "WhatId", "WhoId"},
}  # fmt: skip

# The parts of a compound address carry the security of the address (a profile lists Lead.Address, not
# Lead.City): reading Lead.State needs Lead.Address.
ADDRESS_PARTS = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "StateCode",
    "CountryCode",
    "Latitude",
    "Longitude",
)
COMPOUND = {
    "Lead": {part: "Address" for part in ADDRESS_PARTS},
    "Contact": {f"Mailing{part}": "MailingAddress" for part in ADDRESS_PARTS}
    | {f"Other{part}": "OtherAddress" for part in ADDRESS_PARTS},
}

# Objects a permission set cannot grant: users and queues are visible to every internal user, and activities
# are reached through the records they relate to and the Edit Tasks user permission.
NO_OBJECT_PERMISSIONS = frozenset({"User", "Group", "Task", "Event"})

# Salesforce refuses a permission set whose object permission lacks the one it depends on: reading contacts
# or opportunities needs Read on Account, and View All on them needs View All on Account.
DEPENDS_ON_ACCOUNT = frozenset({"Contact", "Opportunity"})


@dataclass
class ObjectAccess:
    read: bool = False
    create: bool = False
    edit: bool = False
    view_all: bool = False
    delete: bool = False  # never needed by sfconnector; read from permission sets so a grant shows up
    modify_all: bool = False
    read_fields: set[str] = field(default_factory=set)
    edit_fields: set[str] = field(default_factory=set)


@dataclass
class Access:
    objects: dict[str, ObjectAccess] = field(default_factory=dict)
    user_permissions: set[str] = field(default_factory=set)
    # Why each piece is needed, for failure messages: ("Lead", "Email", "read") -> "SELECT ... FROM Lead".
    reasons: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def on(self, sobject: str) -> ObjectAccess:
        return self.objects.setdefault(sobject, ObjectAccess())

    def need(self, sobject: str, what: str, why: str, fieldname: str = "") -> None:
        obj = self.on(sobject)
        if what == "read":
            obj.read = True
            if fieldname:
                obj.read_fields.add(fieldname)
        elif what == "edit_field":
            obj.read_fields.add(fieldname)
            obj.edit_fields.add(fieldname)
        else:
            setattr(obj, what, True)
        self.reasons.setdefault((sobject, fieldname, what), why)

    def grant(self, permission: str, why: str) -> None:
        self.user_permissions.add(permission)
        self.reasons.setdefault(("", permission, "user"), why)

    def why(self, sobject: str, fieldname: str, what: str) -> str:
        for key in (
            (sobject, fieldname, what),
            (sobject, fieldname, "read"),
            (sobject, fieldname, "edit_field"),
        ):
            if key in self.reasons:
                return self.reasons[key]
        parts = [f for f, compound in COMPOUND.get(sobject, {}).items() if compound == fieldname]
        return next((self.why(sobject, p, what) for p in parts if (sobject, p, "read") in self.reasons), "")


# -- what a permission set grants -----------------------------------------------------------------------


def _flag(el: ET.Element, tag: str) -> bool:
    child = el.find(MD + tag)
    return child is not None and child.text == "true"


def from_permission_set(path: Path) -> Access:
    root = ET.parse(path).getroot()
    access = Access()
    for perm in root.findall(MD + "objectPermissions"):
        obj = access.on(str(perm.findtext(MD + "object")))
        obj.read, obj.create, obj.edit = (
            _flag(perm, "allowRead"),
            _flag(perm, "allowCreate"),
            _flag(perm, "allowEdit"),
        )
        obj.view_all = _flag(perm, "viewAllRecords")
        obj.delete, obj.modify_all = _flag(perm, "allowDelete"), _flag(perm, "modifyAllRecords")
    for perm in root.findall(MD + "fieldPermissions"):
        sobject, name = str(perm.findtext(MD + "field")).split(".", 1)
        obj = access.on(sobject)
        if _flag(perm, "readable"):
            obj.read_fields.add(name)
        if _flag(perm, "editable"):
            obj.edit_fields.add(name)
    for perm in root.findall(MD + "userPermissions"):
        if _flag(perm, "enabled"):
            access.user_permissions.add(str(perm.findtext(MD + "name")))
    return access


# -- what the daemon did --------------------------------------------------------------------------------


def _paths(condition: Condition | None) -> Iterable[FieldPath]:
    if isinstance(condition, Comparison):
        if isinstance(condition.field, FieldPath):
            yield condition.field
        elif condition.field.field is not None:
            yield condition.field.field
    elif isinstance(condition, And | Or):
        for item in condition.items:
            yield from _paths(item)
    elif isinstance(condition, Not):
        yield from _paths(condition.item)


def _resolve(schema: Schema, sobject: str, path: FieldPath, access: Access, why: str) -> None:
    """Record read access on every object and field a (possibly dotted) path crosses."""
    current = schema.get(sobject)
    assert current is not None, f"{why}: unknown object {sobject}"
    *hops, last = path.parts
    for hop in hops:
        ref = next(
            (f for f in current.fields.values() if (f.relationship_name or "").lower() == hop.lower()), None
        )
        assert ref is not None and ref.reference_to, f"{why}: no relationship {hop} on {current.name}"
        access.need(current.name, "read", why, ref.name)
        # A polymorphic owner is read as a user (a queue's fields need no grant either).
        target = schema.get("User" if "User" in ref.reference_to else ref.reference_to[0])
        assert target is not None
        current = target
    found = next((f for f in current.fields.values() if f.name.lower() == last.lower()), None)
    assert found is not None, f"{why}: no field {last} on {current.name}"
    access.need(current.name, "read", why, found.name)


def _searches_by_value(condition: Condition | None) -> bool:
    """A WHERE that looks records up by a value (an email, a code, a parent) rather than by their ids."""
    return any(p.parts[-1].lower() != "id" for p in _paths(condition))


def from_queries(soqls: Iterable[str], schema: Schema) -> Access:
    """Read access from the SOQL the daemon sent: the selected, filtered, grouped and ordered fields.

    A query that finds records by a value must see every record of the object whatever the sharing (the
    contact with this email, the advocate with this code), so it needs View All on that object.
    """
    access = Access()
    for soql in soqls:
        query = parse(soql)
        obj = schema.get(query.sobject)
        assert obj is not None, soql
        why = soql if len(soql) < 200 else soql[:200] + "..."
        access.need(obj.name, "read", why)
        paths = [s if isinstance(s, FieldPath) else s.field for s in query.select]
        paths += list(_paths(query.where)) + list(query.group_by) + list(_paths(query.having))
        paths += [o.key if isinstance(o.key, FieldPath) else o.key.field for o in query.order_by]
        for path in paths:
            if path is not None:
                _resolve(schema, obj.name, path, access, why)
        if _searches_by_value(query.where):
            access.need(obj.name, "view_all", why)
    return access


def from_outbox(rows: Iterable[Mapping[str, Any]]) -> Access:
    """Create and edit access from the daemon's outbox: every write it decided, with its op and fields."""
    access = Access()
    for row in rows:
        op, sobject = row["op"], row["sobject"]
        why = f"outbox {op} {row['key']}"
        if op == "email":
            access.grant("EmailSingle", why)  # emailSimple sends as the integration user
            continue
        access.need(sobject, "read", why)
        if op in ("upsert", "create_once"):
            access.need(sobject, "create", why)
        if op in ("upsert", "update"):
            access.need(sobject, "edit", why)
        for name in json.loads(row["fields"]):
            access.need(sobject, "edit_field", why, name)
        if row["external_id_field"]:
            access.need(sobject, "read", why, row["external_id_field"])
    return access


def merge(*parts: Access) -> Access:
    out = Access()
    for part in parts:
        for name, obj in part.objects.items():
            mine = out.on(name)
            mine.read |= obj.read
            mine.create |= obj.create
            mine.edit |= obj.edit
            mine.view_all |= obj.view_all
            mine.read_fields |= obj.read_fields
            mine.edit_fields |= obj.edit_fields
        out.user_permissions |= part.user_permissions
        for key, why in part.reasons.items():
            out.reasons.setdefault(key, why)
    return out


# -- what an org demands for that -----------------------------------------------------------------------


def permissionable(schema: Schema, sobject: str, name: str) -> bool:
    """Whether `sobject.name` carries field-level security, so a permission set must (and may) grant it."""
    obj = schema.get(sobject)
    if obj is None or obj.is_platform_event:
        return False  # platform event fields have no field-level security
    fd = obj.fields.get(name)
    if fd is not None and fd.custom:
        return not fd.required
    return name in PERMISSIONABLE_STANDARD.get(sobject, set())


def required(needed: Access, schema: Schema) -> Access:
    """What a permission set must grant, no more and no less, for `needed` to work in an org."""
    out = Access(reasons=dict(needed.reasons))
    out.grant("ApiEnabled", "every call the daemon makes is an API call")
    for name, obj in needed.objects.items():
        if obj.edit and "OwnerId" in obj.edit_fields and name == "Lead":
            out.grant("TransferAnyLead", out.why(name, "OwnerId", "edit_field") or "the daemon routes leads")
        if name in NO_OBJECT_PERMISSIONS:
            if name in ("Task", "Event") and (obj.create or obj.edit):
                out.grant("EditTask", out.why(name, "", "create") or "the daemon creates tasks")
        else:
            mine = out.on(name)
            mine.read, mine.create, mine.edit, mine.view_all = True, obj.create, obj.edit, obj.view_all
            if name in DEPENDS_ON_ACCOUNT:
                account = out.on("Account")
                account.read = True
                account.view_all |= obj.view_all
                out.reasons.setdefault(
                    ("Account", "", "read"), f"Salesforce: Read {name} depends on Read Account"
                )
                out.reasons.setdefault(
                    ("Account", "", "view_all"), f"Salesforce: View All {name} depends on View All Account"
                )
        mine = out.on(name)
        compound = COMPOUND.get(name, {})
        mine.read_fields = {
            compound.get(f, f)
            for f in obj.read_fields | obj.edit_fields
            if permissionable(schema, name, compound.get(f, f))
        }
        mine.edit_fields = {
            compound.get(f, f) for f in obj.edit_fields if permissionable(schema, name, compound.get(f, f))
        }
    out.user_permissions |= needed.user_permissions
    for name in list(out.objects):  # Task's fields are granted on Task even though the object is not
        obj = out.objects[name]
        if name in NO_OBJECT_PERMISSIONS and not obj.read_fields:
            del out.objects[name]
    return out


def differences(granted: Access, wanted: Access) -> list[str]:
    """Every way `granted` differs from `wanted`, one line each, with the reason a wanted piece is needed."""
    lines: list[str] = []
    for name in sorted(set(granted.objects) | set(wanted.objects)):
        g, w = granted.objects.get(name, ObjectAccess()), wanted.objects.get(name, ObjectAccess())
        for what in ("read", "create", "edit", "view_all", "delete", "modify_all"):
            if getattr(g, what) != getattr(w, what):
                state = "missing" if getattr(w, what) else "not needed"
                lines.append(f"{name} {what}: {state} ({wanted.why(name, '', what)})")
        for label, gf, wf, key in (
            ("readable", g.read_fields, w.read_fields, "read"),
            ("editable", g.edit_fields, w.edit_fields, "edit_field"),
        ):
            for f in sorted(wf - gf):
                lines.append(f"{name}.{f} {label}: missing ({wanted.why(name, f, key)})")
            for f in sorted(gf - wf):
                lines.append(f"{name}.{f} {label}: granted but sfconnector never needs it")
    for p in sorted(wanted.user_permissions - granted.user_permissions):
        lines.append(f"user permission {p}: missing ({wanted.why('', p, 'user')})")
    for p in sorted(granted.user_permissions - wanted.user_permissions):
        lines.append(f"user permission {p}: granted but sfconnector never needs it")
    return lines
