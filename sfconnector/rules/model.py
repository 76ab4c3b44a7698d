"""Shared data types of the rules: compiled routing and attribution rules, the facts they read, decisions.

Facts are plain frozen values the pipeline fills from its SOQL lookups; decisions are plain frozen values
the pipeline turns into outbox entries. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from sfconnector.rules.conditions import Condition

_EMPTY: Mapping[str, Any] = MappingProxyType({})

# ---------------------------------------------------------------- facts


@dataclass(frozen=True)
class LeadFacts:
    """The referred lead as the pipeline saw it.

    `fields` holds the lead's field values by API name (whatever the rules read); `standard_owner_id` is the
    owner the standard assignment set at creation; `manually_reassigned` is true when a person (not the
    assignment rules, not the connector) changed the owner after creation.
    """

    lead_id: str
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    channel: str | None = None
    referral_code: str | None = None
    email: str | None = None
    standard_owner_id: str | None = None
    current_owner_id: str | None = None
    manually_reassigned: bool = False


@dataclass(frozen=True)
class AdvocateFacts:
    """The advocate the referral code matched."""

    advocate_id: str
    owner_id: str | None
    active: bool = True
    name: str = ""
    email: str | None = None
    referral_code: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    owner_name: str | None = None  # for the human reason only


@dataclass(frozen=True)
class ExistingLead:
    """Another lead for the same person (matched by email), older than the referred one."""

    lead_id: str
    created: datetime
    is_converted: bool = False
    is_closed: bool = False  # status is a closed/disqualified one
    owner_id: str | None = None


@dataclass(frozen=True)
class ExistingContact:
    """A contact for the same person, with the ids of its open opportunities."""

    contact_id: str
    open_opportunity_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriorReferral:
    """An earlier referral of the same person."""

    referral_id: str
    advocate_id: str
    created: datetime


# ---------------------------------------------------------------- routing rules

ActionKind = Literal["owner_of_advocate", "user", "queue", "keep_standard"]


@dataclass(frozen=True)
class RoutingAction:
    """What to do with the lead: give it to the advocate's owner, a user (username or Id), a queue, or nobody."""

    kind: ActionKind
    target: str | None = None  # the username/Id for `user`, the queue name for `queue`
    at: str | None = field(default=None, compare=False)  # file:line:col of the target in the config

    def describe(self) -> str:
        if self.kind == "user":
            return f"user {self.target}"
        if self.kind == "queue":
            return f"queue {self.target!r}"
        return self.kind.replace("_", " ")


KEEP_STANDARD = RoutingAction("keep_standard")
OWNER_OF_ADVOCATE = RoutingAction("owner_of_advocate")


@dataclass(frozen=True)
class RoutingRule:
    name: str
    then: RoutingAction
    when: Condition | None = None  # None: always matches


@dataclass(frozen=True)
class RoutingFallbacks:
    """Where a referral goes when the chosen rule cannot be followed or no rule applies."""

    inactive_owner: RoutingAction = KEEP_STANDARD
    inactive_advocate: RoutingAction = KEEP_STANDARD
    unknown_advocate: RoutingAction = KEEP_STANDARD
    no_match: RoutingAction = KEEP_STANDARD


@dataclass(frozen=True)
class RoutingRules:
    rules: tuple[RoutingRule, ...] = ()
    fallbacks: RoutingFallbacks = field(default_factory=RoutingFallbacks)
    respect_manual_reassignment: bool = True


# ---------------------------------------------------------------- routing decisions

REASON_MAX = 255


def shorten(text: str, limit: int = REASON_MAX) -> str:
    """`text` in at most `limit` characters, cut at a word boundary with an ellipsis when it is longer
    (Routing_Reason__c is Text 255; the routing log keeps the whole text)."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else cut the (very long) word itself
        cut = cut[:space]
    return cut.rstrip(" ,;|→") + "…"


DecisionAction = Literal["owner_of_advocate", "user", "queue", "keep_standard", "keep_current"]


@dataclass(frozen=True)
class TraceStep:
    """One rule looked at: whether it matched and why (or why not)."""

    rule: str
    matched: bool
    why: str


@dataclass(frozen=True)
class RoutingDecision:
    """Who gets the lead, by which rule, and one human line saying why.

    `owner_id` is set for `owner_of_advocate`; `user` (a username or User Id) and `queue` (a queue name) are
    resolved to Ids by the pipeline. `keep_standard` and `keep_current` leave the owner alone.
    """

    action: DecisionAction
    rule: str
    reason: str
    owner_id: str | None = None
    user: str | None = None
    queue: str | None = None
    trace: tuple[TraceStep, ...] = ()

    def __post_init__(self) -> None:
        # Read by people, in the routing log whole and on Referral__c shortened (`shorten`): one line.
        object.__setattr__(self, "reason", " ".join(self.reason.split()))

    @property
    def changes_owner(self) -> bool:
        return self.action not in ("keep_standard", "keep_current")


# ---------------------------------------------------------------- attribution

AttributionKind = Literal["New Lead", "Reactivated Lead", "Existing Opportunity", "Rejected", "Duplicate"]


@dataclass(frozen=True)
class ExistingLeadPolicy:
    """An open lead for the same person younger than `within_days`: reactivate it, or count a duplicate."""

    within_days: int = 30
    action: Literal["reactivate", "duplicate"] = "reactivate"
    credit: bool = True


@dataclass(frozen=True)
class ExistingOpportunityPolicy:
    """A contact for the same person with an open opportunity: credit the advocate for it or not."""

    credit: bool = True


DEFAULT_FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "aol.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "googlemail.com",
    "hotmail.com",
    "icloud.com",
    "live.com",
    "mail.com",
    "me.com",
    "msn.com",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "web.de",
    "yahoo.com",
    "yandex.ru",
    "zoho.com",
)


@dataclass(frozen=True)
class SelfReferralPolicy:
    reject_same_email: bool = True
    reject_same_domain: bool = True
    free_mail_domains: frozenset[str] = frozenset(DEFAULT_FREE_MAIL_DOMAINS)


@dataclass(frozen=True)
class DuplicatePolicy:
    """The same person referred again within `within_days`: the first referrer keeps it, or the latest wins."""

    within_days: int = 90
    winner: Literal["first", "latest"] = "first"
    # Whose owner a duplicate lead goes to: the advocate who keeps the credit (routing follows attribution),
    # or the advocate whose code this lead carries.
    route_to: Literal["credited_advocate", "referring_advocate"] = "credited_advocate"


@dataclass(frozen=True)
class AttributionPolicy:
    existing_lead: ExistingLeadPolicy = field(default_factory=ExistingLeadPolicy)
    existing_opportunity: ExistingOpportunityPolicy = field(default_factory=ExistingOpportunityPolicy)
    self_referral: SelfReferralPolicy = field(default_factory=SelfReferralPolicy)
    duplicates: DuplicatePolicy = field(default_factory=DuplicatePolicy)


@dataclass(frozen=True)
class AttributionDecision:
    """How the referral counts. `credited` says whether the advocate gets credit (and later rewards)."""

    kind: AttributionKind
    credited: bool
    reason: str
    existing_lead_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    credited_advocate_id: str | None = None  # a duplicate: the other advocate who keeps the credit

    @property
    def referral_status(self) -> str:
        """The Referral__c status this decision starts with."""
        if self.kind in ("Rejected", "Duplicate"):
            return self.kind
        return "Lead"
