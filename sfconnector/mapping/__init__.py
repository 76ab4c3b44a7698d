"""Logical referral model <-> Salesforce objects and fields."""

from sfconnector.mapping.catalog import FieldCatalog, FieldInfo, load_catalog
from sfconnector.mapping.codes import normalise_code
from sfconnector.mapping.model import (
    AdvocateFields,
    CodePolicy,
    LeadFields,
    ReferralFields,
    RewardFields,
    SchemaMapping,
)

__all__ = [
    "AdvocateFields",
    "CodePolicy",
    "FieldCatalog",
    "FieldInfo",
    "LeadFields",
    "ReferralFields",
    "RewardFields",
    "SchemaMapping",
    "load_catalog",
    "normalise_code",
]
