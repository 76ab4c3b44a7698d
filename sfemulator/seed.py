"""Org fixtures: the demo org, an empty org, or a JSON file of the same shape.

Shape (every key optional):
{
  "organization": {"Name": "..."},
  "limits": {"daily_api_requests": 100000},
  "users": [{"ref": "rep1", "Username": "...", "LastName": "...", "Email": "...", "Alias": "...",
             "IsActive": true, "password": "...", "security_token": "..."}],
  "queues": [{"ref": "referral_desk", "Name": "Referral Desk", "DeveloperName": "Referral_Desk"}],
  "connected_apps": [{"name": "...", "client_id": "...", "client_secret": "...",
                      "certificate": "tls:jwt-cert.pem" | "<PEM text>", "preauthorized": ["username", ...],
                      "run_as": "username"}],
  "records": {"Account": [{"ref": "acme", "Name": "Acme"}], "Contact": [{"AccountId": "@acme", ...}]},
  "assignment_rule": {"name": "...", "default_owner": "@ref",
                      "entries": [{"criteria": [{"field": "Country", "operator": "equals", "value": "DE, FR"}],
                                   "assign_to": "@ref" | ["@rep1", "@rep2"]}]}
}
"@ref" values anywhere in records, assignees and owners are replaced by the id of the record with that ref.
Records are created in the listed object order, without assignment rules and without change events.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfemulator.assignment import AssignmentRule, RuleEntry, criterion_from_json
from sfemulator.errors import DmlError
from sfemulator.identity import ConnectedApp
from sfemulator.store import Org, WriteContext

INTEGRATION_USERNAME = "integration@sfconnector.test"
DEMO_PASSWORD = "demo-password"
DEMO_CLIENT_ID = "sfconnector-demo"
DEMO_CLIENT_SECRET = "demo-secret"


class SeedError(ValueError):
    """A seed that cannot be loaded; the message says which part and why."""


def _rep(ref: str, first: str, last: str, active: bool = True) -> dict[str, Any]:
    username = f"{first.lower()}.{last.lower()}@sfconnector.test"
    return {
        "ref": ref,
        "Username": username,
        "FirstName": first,
        "LastName": last,
        "Email": username,
        "Alias": (first[0] + last)[:8].lower(),
        "Title": "Sales Representative",
        "IsActive": active,
        "password": DEMO_PASSWORD,
    }


DEMO_SEED: dict[str, Any] = {
    "organization": {"Name": "sfconnector Demo Org"},
    "limits": {"daily_api_requests": 100_000},
    "users": [
        {
            "ref": "integration",
            "Username": INTEGRATION_USERNAME,
            "FirstName": "Integration",
            "LastName": "User",
            "Email": INTEGRATION_USERNAME,
            "Alias": "integ",
            "IsActive": True,
            "password": DEMO_PASSWORD,
        },
        _rep("rep1", "Alice", "Nguyen"),
        _rep("rep2", "Bruno", "Keller"),
        _rep("rep3", "Chitra", "Rao"),
        _rep("rep4", "Diego", "Alvarez"),
        _rep("rep_inactive", "Erin", "Walsh", active=False),
    ],
    "queues": [
        {"ref": "referral_desk", "Name": "Referral Desk", "DeveloperName": "Referral_Desk"},
        {"ref": "unassigned", "Name": "Unassigned Leads", "DeveloperName": "Unassigned_Leads"},
    ],
    "connected_apps": [
        {
            "name": "sfconnector",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "certificate": "tls:jwt-cert.pem",
            "preauthorized": [INTEGRATION_USERNAME],
            "run_as": INTEGRATION_USERNAME,
        }
    ],
    "records": {
        "Account": [
            {"ref": "acme", "Name": "Acme Corp", "Industry": "Technology", "BillingCountry": "USA"},
            {"ref": "globex", "Name": "Globex GmbH", "Industry": "Retail", "BillingCountry": "Germany"},
            {"ref": "initech", "Name": "Initech", "Industry": "Banking", "BillingCountry": "USA"},
        ],
        "Contact": [
            {"FirstName": "Pat", "LastName": "Lee", "Email": "pat.lee@acme.example", "AccountId": "@acme"},
            {
                "FirstName": "Sam",
                "LastName": "Ortiz",
                "Email": "sam.ortiz@globex.example",
                "AccountId": "@globex",
            },
            {
                "FirstName": "Kim",
                "LastName": "Park",
                "Email": "kim.park@initech.example",
                "AccountId": "@initech",
            },
        ],
        "Advocate__c": [
            {
                "Name": "Grace Hopper",
                "OwnerId": "@rep1",
                "Email__c": "grace@advocates.example",
                "Referral_Code__c": "GRACE-1001",
                "Program__c": "Customer",
                "Status__c": "Active",
                "Preferred_Reward__c": "Gift Card",
            },
            {
                "Name": "Alan Turing",
                "OwnerId": "@rep2",
                "Email__c": "alan@advocates.example",
                "Referral_Code__c": "ALAN-1002",
                "Program__c": "Partner",
                "Status__c": "Active",
                "Preferred_Reward__c": "Commission",
            },
            {
                "Name": "Ada Lovelace",
                "OwnerId": "@rep3",
                "Email__c": "ada@advocates.example",
                "Referral_Code__c": "ADA-1003",
                "Program__c": "Employee",
                "Status__c": "Active",
                "Preferred_Reward__c": "Bill Credit",
            },
            {
                "Name": "Katherine Johnson",
                "OwnerId": "@rep4",
                "Email__c": "katherine@advocates.example",
                "Referral_Code__c": "KJ-1004",
                "Program__c": "Customer",
                "Status__c": "Active",
                "Preferred_Reward__c": "Charity",
                "Email_Opt_Out__c": True,
            },
            {
                "Name": "Edsger Dijkstra",
                "OwnerId": "@rep_inactive",
                "Email__c": "edsger@advocates.example",
                "Referral_Code__c": "EWD-1005",
                "Program__c": "Partner",
                "Status__c": "Active",
                "Preferred_Reward__c": "Gift Card",
            },
            {
                "Name": "Barbara Liskov",
                "OwnerId": "@rep1",
                "Email__c": "barbara@advocates.example",
                "Referral_Code__c": "BL-1006",
                "Program__c": "Customer",
                "Status__c": "Inactive",
                "Preferred_Reward__c": "Gift Card",
            },
        ],
    },
    # Ordered entries: a partner referral goes to the Referral Desk queue, web leads to Unassigned Leads,
    # Germany/France to one rep, the West Coast round-robin between two reps, everything else round-robin
    # across all four active reps.
    "assignment_rule": {
        "name": "Standard Lead Assignment",
        "default_owner": "@unassigned",
        "entries": [
            {
                "criteria": [{"field": "LeadSource", "operator": "equals", "value": "Partner Referral"}],
                "assign_to": "@referral_desk",
            },
            {
                "criteria": [{"field": "LeadSource", "operator": "equals", "value": "Web"}],
                "assign_to": "@unassigned",
            },
            {
                "criteria": [{"field": "Country", "operator": "equals", "value": "Germany, France, DE, FR"}],
                "assign_to": "@rep4",
            },
            {
                "criteria": [{"field": "State", "operator": "equals", "value": "CA, WA, OR"}],
                "assign_to": ["@rep1", "@rep2"],
            },
            {"criteria": [], "assign_to": ["@rep1", "@rep2", "@rep3", "@rep4"]},
        ],
    },
}

EMPTY_SEED: dict[str, Any] = {
    "users": [copy.deepcopy(DEMO_SEED["users"][0])],
    "connected_apps": copy.deepcopy(DEMO_SEED["connected_apps"]),
}


def resolve_seed(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """`demo`, `empty`, a JSON file path, or an already-parsed seed."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if spec == "demo":
        return copy.deepcopy(DEMO_SEED)
    if spec == "empty":
        return copy.deepcopy(EMPTY_SEED)
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeedError(f"seed file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SeedError(f"seed file {path}: the top level must be a JSON object")
    return data


def _resolve_refs(value: Any, refs: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in refs:
            raise SeedError(f"unknown reference {value!r}")
        return refs[value[1:]]
    if isinstance(value, list):
        return [_resolve_refs(v, refs) for v in value]
    return value


def load_seed(org: Org, seed: Mapping[str, Any]) -> None:
    """Create the seed's users, queues, apps, records and assignment rule in `org` (already reset)."""
    refs: dict[str, str] = {}
    settings = org.settings
    limits = seed.get("limits") or {}
    org.api_limit = int(limits.get("daily_api_requests", settings.daily_api_requests))
    ctx = WriteContext(user_id="005000000000000AAA", api=None)
    try:
        with org.transaction(ctx, notify=False) as tx:
            org_fields = {"Name": settings.org_name, **(seed.get("organization") or {})}
            org_row = {
                "Id": org.org_id,
                "Name": org_fields["Name"],
                "OrganizationType": "Developer Edition",
                "IsSandbox": False,
                "InstanceName": "EMU1",
                "DefaultLocaleSidKey": "en_US",
                "TimeZoneSidKey": "GMT",
                "IsDeleted": False,
            }
            org.tables["Organization"][org.org_id] = org_row
            org._where[org.org_id] = "Organization"

            user_ids: list[str] = []
            inactive: list[str] = []
            for raw in seed.get("users") or []:
                user = {k: v for k, v in raw.items() if k not in ("ref", "password", "security_token")}
                # Users start active so that records can name them as owners; the ones the seed wants
                # inactive are deactivated at the end, like a rep who left after recruiting advocates.
                user["IsActive"] = True
                uid = tx.insert("User", user)
                user_ids.append(uid)
                if raw.get("IsActive") is False:
                    inactive.append(uid)
                if raw.get("ref"):
                    refs[raw["ref"]] = uid
                if raw.get("password"):
                    org.identity.passwords[uid] = str(raw["password"])
                if raw.get("security_token"):
                    org.identity.security_tokens[uid] = str(raw["security_token"])
            if not user_ids:
                raise SeedError("a seed needs at least one user (the first one runs the seed)")
            creator = user_ids[0]
            for uid in user_ids:  # users were created before anyone existed to create them
                org.tables["User"][uid].update(CreatedById=creator, LastModifiedById=creator)
            org_row.update(CreatedById=creator, LastModifiedById=creator)
            org_row.update(
                CreatedDate=org.now_iso(), LastModifiedDate=org.now_iso(), SystemModstamp=org.now_iso()
            )
            integration = org.user_by_username(INTEGRATION_USERNAME)
            org.integration_user_id = integration["Id"] if integration else creator
            tx.ctx = WriteContext(user_id=org.integration_user_id, api=None, auto_assign=False)

            for raw in seed.get("queues") or []:
                queue = {k: v for k, v in raw.items() if k != "ref"}
                queue["Type"] = "Queue"
                gid = tx.insert("Group", queue)
                if raw.get("ref"):
                    refs[raw["ref"]] = gid

            for sobject, rows in (seed.get("records") or {}).items():
                for raw in rows:
                    values = {k: _resolve_refs(v, refs) for k, v in raw.items() if k != "ref"}
                    rid = tx.insert(sobject, values)
                    if raw.get("ref"):
                        refs[raw["ref"]] = rid

            for uid in inactive:
                org.tables["User"][uid]["IsActive"] = False

            for raw in seed.get("connected_apps") or []:
                org.identity.apps[raw["client_id"]] = _connected_app(org, raw)

            rule = seed.get("assignment_rule")
            if rule:
                org.assignment_rule = _assignment_rule(rule, refs)
    except DmlError as exc:
        raise SeedError(f"seed record refused: {exc.status_code}: {exc.message}") from None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SeedError):
            raise
        raise SeedError(f"malformed seed: {exc}") from None


def _connected_app(org: Org, raw: Mapping[str, Any]) -> ConnectedApp:
    cert = raw.get("certificate")
    pem: bytes | None = None
    if isinstance(cert, str) and cert.startswith("tls:"):
        if org.tls_dir is not None and (org.tls_dir / cert[4:]).exists():
            pem = (org.tls_dir / cert[4:]).read_bytes()
    elif isinstance(cert, str):
        pem = cert.encode()
    pre = raw.get("preauthorized")
    return ConnectedApp(
        name=str(raw.get("name") or raw["client_id"]),
        client_id=str(raw["client_id"]),
        client_secret=str(raw["client_secret"]),
        certificate_pem=pem,
        preauthorized=frozenset(str(u).lower() for u in pre) if pre is not None else None,
        run_as=raw.get("run_as"),
    )


def _assignment_rule(raw: Mapping[str, Any], refs: Mapping[str, str]) -> AssignmentRule:
    entries = []
    for entry in raw.get("entries") or []:
        assignees = _resolve_refs(entry["assign_to"], refs)
        if isinstance(assignees, str):
            assignees = [assignees]
        entries.append(
            RuleEntry(
                criteria=tuple(criterion_from_json(c) for c in entry.get("criteria") or []),
                assignees=tuple(assignees),
            )
        )
    default = raw.get("default_owner")
    return AssignmentRule(
        name=str(raw.get("name") or "Lead Assignment"),
        entries=entries,
        default_owner=_resolve_refs(default, refs) if default else None,
    )
