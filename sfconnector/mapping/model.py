"""The mapping between the logical referral model and Salesforce objects and fields, as frozen data.

Defaults are the shipped schema (design.md section 3). The config loader builds its checks and the JSON
Schema from these dataclasses, so a logical field added here is at once configurable and documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Literal

CodeCase = Literal["upper", "lower", "preserve"]


@dataclass(frozen=True)
class CodePolicy:
    """How a referral code typed by a person is reduced to the form stored on the advocate."""

    case: CodeCase = "upper"
    strip_spaces: bool = True
    strip_dashes: bool = True


@dataclass(frozen=True)
class AdvocateFields:
    """Where the advocate lives (`object`) and which field holds each logical attribute."""

    object: str = "Advocate__c"
    name: str = "Name"
    owner: str = "OwnerId"
    email: str = "Email__c"
    referral_code: str = "Referral_Code__c"
    program: str = "Program__c"
    status: str = "Status__c"
    preferred_reward: str = "Preferred_Reward__c"
    reward_balance: str = "Reward_Balance__c"
    total_referrals: str = "Total_Referrals__c"
    successful_referrals: str = "Successful_Referrals__c"
    email_opt_out: str = "Email_Opt_Out__c"


@dataclass(frozen=True)
class LeadFields:
    object: str = "Lead"
    referral_code: str = "Referral_Code__c"
    advocate: str = "Advocate__c"
    channel: str = "Referral_Channel__c"
    owner: str = "OwnerId"
    email: str = "Email"
    first_name: str = "FirstName"
    last_name: str = "LastName"
    company: str = "Company"
    status: str = "Status"
    is_converted: str = "IsConverted"
    converted_contact: str = "ConvertedContactId"
    converted_opportunity: str = "ConvertedOpportunityId"


@dataclass(frozen=True)
class ReferralFields:
    object: str = "Referral__c"
    advocate: str = "Advocate__c"
    lead: str = "Lead__c"
    contact: str = "Contact__c"
    opportunity: str = "Opportunity__c"
    status: str = "Status__c"
    channel: str = "Channel__c"
    attribution: str = "Attribution__c"
    routed_owner: str = "Routed_Owner__c"
    routing_rule: str = "Routing_Rule__c"
    routing_reason: str = "Routing_Reason__c"
    external_key: str = "External_Key__c"


@dataclass(frozen=True)
class RewardFields:
    object: str = "Reward__c"
    advocate: str = "Advocate__c"
    referral: str = "Referral__c"
    opportunity: str = "Opportunity__c"
    amount: str = "Amount__c"
    type: str = "Type__c"
    status: str = "Status__c"
    rule: str = "Rule__c"
    payable_on: str = "Payable_On__c"
    external_key: str = "External_Key__c"


LogicalFields = AdvocateFields | LeadFields | ReferralFields | RewardFields

# logical name in the YAML -> its dataclass
LOGICAL_OBJECTS: Mapping[str, type[LogicalFields]] = MappingProxyType(
    {"advocate": AdvocateFields, "lead": LeadFields, "referral": ReferralFields, "reward": RewardFields}
)


def logical_field_names(cls: type[LogicalFields]) -> list[str]:
    """The logical attributes of one object, without `object` itself."""
    return [f.name for f in fields(cls) if f.name != "object"]


@dataclass(frozen=True)
class SchemaMapping:
    """The whole mapping: four logical objects, the code policy, and fields declared by the admin."""

    advocate: AdvocateFields = field(default_factory=AdvocateFields)
    lead: LeadFields = field(default_factory=LeadFields)
    referral: ReferralFields = field(default_factory=ReferralFields)
    reward: RewardFields = field(default_factory=RewardFields)
    referral_code: CodePolicy = field(default_factory=CodePolicy)
    active_advocate_status: str = "Active"
    additional_fields: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
