"""Attribution: how a referral counts when the referred person may already be known. Pure and deterministic.

Checked in this order: self-referral (rejected), a repeat referral of the same person (duplicate policy), an
open lead for the same person younger than N days (reactivated, or a duplicate), a contact with an open
opportunity (existing opportunity), otherwise a new lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sfconnector.rules.model import (
    AdvocateFacts,
    AttributionDecision,
    AttributionPolicy,
    ExistingContact,
    ExistingLead,
    LeadFacts,
    PriorReferral,
)

__all__ = ["decide_attribution", "email_domain"]


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower().rstrip(".") or None


def _same_email(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


def _self_referral(lead: LeadFacts, advocate: AdvocateFacts, policy: AttributionPolicy) -> str | None:
    rules = policy.self_referral
    if rules.reject_same_email and _same_email(lead.email, advocate.email):
        return f"self-referral: the lead's email {lead.email} is the advocate's own"
    if rules.reject_same_domain:
        lead_domain, advocate_domain = email_domain(lead.email), email_domain(advocate.email)
        if lead_domain and lead_domain == advocate_domain and lead_domain not in rules.free_mail_domains:
            return f"self-referral: the lead's email domain {lead_domain} is the advocate's own"
    return None


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def decide_attribution(
    lead: LeadFacts,
    advocate: AdvocateFacts | None,
    policy: AttributionPolicy,
    *,
    now: datetime,
    existing_leads: Sequence[ExistingLead] = (),
    existing_contacts: Sequence[ExistingContact] = (),
    prior_referrals: Sequence[PriorReferral] = (),
) -> AttributionDecision:
    """How this referral counts, given what the pipeline found about the same person (by email)."""
    if advocate is None:
        code = f"referral code {lead.referral_code!r}" if lead.referral_code else "no referral code"
        return AttributionDecision("Rejected", False, f"no advocate has {code}")
    if not advocate.active:
        return AttributionDecision(
            "Rejected", False, f"advocate {advocate.name or advocate.advocate_id} is inactive"
        )
    rejected = _self_referral(lead, advocate, policy)
    if rejected:
        return AttributionDecision("Rejected", False, rejected)

    window = timedelta(days=policy.duplicates.within_days)
    recent = sorted(
        (p for p in prior_referrals if now - p.created <= window), key=lambda p: (p.created, p.referral_id)
    )
    if recent:
        first = recent[0]
        same_advocate = any(p.advocate_id == advocate.advocate_id for p in recent)
        if same_advocate or policy.duplicates.winner == "first":
            who = "this advocate" if same_advocate else f"advocate {first.advocate_id}"
            return AttributionDecision(
                "Duplicate",
                False,
                f"already referred by {who} on {_day(first.created)}",
                credited_advocate_id=None if same_advocate else first.advocate_id,
            )

    lead_window = timedelta(days=policy.existing_lead.within_days)
    open_leads = sorted(
        (
            e
            for e in existing_leads
            if e.lead_id != lead.lead_id
            and not e.is_converted
            and not e.is_closed
            and now - e.created <= lead_window
        ),
        key=lambda e: (e.created, e.lead_id),
        reverse=True,
    )
    if open_leads:
        existing = open_leads[0]
        age = f"open lead {existing.lead_id} from {_day(existing.created)}"
        if policy.existing_lead.action == "duplicate":
            return AttributionDecision(
                "Duplicate", False, f"the person already has an {age}", existing.lead_id
            )
        credited = policy.existing_lead.credit
        return AttributionDecision(
            "Reactivated Lead",
            credited,
            f"reactivated {age}" + ("" if credited else "; not credited by policy"),
            existing_lead_id=existing.lead_id,
        )

    for contact in sorted(existing_contacts, key=lambda c: c.contact_id):
        if contact.open_opportunity_ids:
            opportunity = sorted(contact.open_opportunity_ids)[0]
            credited = policy.existing_opportunity.credit
            return AttributionDecision(
                "Existing Opportunity",
                credited,
                f"contact {contact.contact_id} already has open opportunity {opportunity}"
                + ("" if credited else "; not credited by policy"),
                contact_id=contact.contact_id,
                opportunity_id=opportunity,
            )

    superseded = f"; supersedes the referral by advocate {recent[0].advocate_id}" if recent else ""
    return AttributionDecision(
        "New Lead", True, f"new lead referred by advocate {advocate.name or advocate.advocate_id}{superseded}"
    )
