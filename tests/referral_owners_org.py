"""An org unlike the demo's, for the tests of who owns a referral and who is named in its tasks and emails.

Every person differs at every step: the advocate's owner, the person a lead is assigned to by the org's
rules, the rep who takes a lead over by hand and the rep who owns and wins the deal are all different
users; codes are in formats the demo never uses ("nw/0042", "Ref 7781"); queue names are the org's own.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from sfemulator.seed import DEMO_PASSWORD, EMPTY_SEED

DOMAIN = "northwind.test"


def user(ref: str, first: str, last: str, *, active: bool = True) -> dict[str, Any]:
    username = f"{first.lower()}.{last.lower()}@{DOMAIN}"
    return {
        "ref": ref,
        "Username": username,
        "FirstName": first,
        "LastName": last,
        "Email": username,
        "Alias": (first[0] + last)[:8].lower(),
        "IsActive": active,
        "password": DEMO_PASSWORD,
    }


def username(first: str, last: str) -> str:
    return f"{first.lower()}.{last.lower()}@{DOMAIN}"


def northwind_seed() -> dict[str, Any]:
    seed = copy.deepcopy(EMPTY_SEED)
    seed["organization"] = {"Name": "Northwind Referrals"}
    seed["users"] += [
        user("seun", "Oluwaseun", "Adeyemi"),  # owns the advocate Ines Moreau
        user("mateo", "Mateo", "Rossi"),  # owns the advocate Tariq Aziz
        user("hana", "Hana", "Sato"),  # enterprise rep named by a rule; wins deals
        user("priya", "Priya", "Menon"),  # takes leads over by hand; where the org's rules put leads
        user("lars", "Lars", "Berg", active=False),  # left the company; still owns an advocate
    ]
    seed["queues"] = [
        {"ref": "triage", "Name": "Inbound Triage", "DeveloperName": "Inbound_Triage"},
        {"ref": "nordics", "Name": "Nordics Desk", "DeveloperName": "Nordics_Desk"},
    ]
    seed["records"] = {
        "Advocate__c": [
            {
                "Name": "Ines Moreau",
                "OwnerId": "@seun",
                "Email__c": "ines.moreau@customers.example",
                "Referral_Code__c": "nw/0042",
                "Program__c": "Customer",
                "Status__c": "Active",
            },
            {
                "Name": "Tariq Aziz",
                "OwnerId": "@mateo",
                "Email__c": "tariq@partners.example",
                "Referral_Code__c": "Ref 7781",
                "Program__c": "Customer",
                "Status__c": "Active",
            },
            {
                "Name": "Wanjiru Kamau",
                "OwnerId": "@lars",
                "Email__c": "wanjiru@customers.example",
                "Referral_Code__c": "WK:5",
                "Program__c": "Customer",
                "Status__c": "Active",
            },
        ]
    }
    seed["assignment_rule"] = {
        "name": "Northwind Lead Assignment",
        "default_owner": "@triage",
        "entries": [
            {
                "criteria": [
                    {"field": "Company", "operator": "equals", "value": "Oslo Optics, Bergen Boats"}
                ],
                "assign_to": "@priya",
            },
        ],
    }
    return seed


def northwind_rules() -> dict[str, Any]:
    return {
        "routing": {
            "rules": [
                {
                    "name": "big-accounts-to-hana",
                    "when": {"lead.AnnualRevenue": {"ge": 5_000_000}},
                    "then": {"user": username("Hana", "Sato")},
                },
                {
                    "name": "nordics-to-desk",
                    "when": {"lead.Country": "Sweden"},
                    "then": {"queue": "Nordics Desk"},
                },
                {
                    "name": "shipping-to-maritime",
                    "when": {"lead.Industry": "Shipping"},
                    "then": {"queue": "Maritime Desk"},  # a queue this org does not have
                },
                {"name": "to-advocate-owner", "then": "owner_of_advocate"},
            ],
            "fallbacks": {
                "inactive_owner": {"queue": "Inbound Triage"},
                "inactive_advocate": "keep_standard",
                "unknown_advocate": "keep_standard",
                "no_match": "keep_standard",
            },
            "respect_manual_reassignment": True,
        },
        "attribution": {
            "existing_lead": {"within_days": 30, "action": "reactivate", "credit": True},
            "existing_opportunity": {"credit": True},
            "self_referral": {"reject_same_email": True, "reject_same_domain": True},
            "duplicates": {"within_days": 90, "winner": "first"},
        },
        "rewards": {
            "default_type": "Gift Card",
            "approval_above": 10_000,
            "hold_days": 14,
            "rules": [{"name": "flat", "amount": 75}],
        },
        "notifications": {
            "advocate": {"received": True, "won": True},
            "rep_tasks": {"received": True, "won": True},
        },
    }


def write_rules(directory: Path) -> Path:
    path = directory / "northwind-rules.yaml"
    path.write_text(yaml.safe_dump(northwind_rules(), sort_keys=False))
    return path
