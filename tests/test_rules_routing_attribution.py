"""Attribution: existing people, self-referrals and duplicates, at the pure level."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sfconnector.rules.attribution import decide_attribution
from sfconnector.rules.model import (
    AdvocateFacts,
    AttributionPolicy,
    DuplicatePolicy,
    ExistingContact,
    ExistingLead,
    ExistingLeadPolicy,
    ExistingOpportunityPolicy,
    LeadFacts,
    PriorReferral,
    SelfReferralPolicy,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = AttributionPolicy()
GRACE = AdvocateFacts("a00000000000001AAA", "005000000000001AAA", name="Grace", email="grace@acme.example")
LEAD = LeadFacts("00Q000000000009AAA", email="pat@prospect.example", referral_code="GRACE1001")


def days_ago(n: int) -> datetime:
    return NOW - timedelta(days=n)


def decide(lead: LeadFacts = LEAD, advocate: AdvocateFacts | None = GRACE, **kw: Any) -> Any:
    policy = kw.pop("policy", POLICY)
    return decide_attribution(lead, advocate, policy, now=NOW, **kw)


def test_a_new_person_is_a_new_lead_and_credited() -> None:
    decision = decide()
    assert (decision.kind, decision.credited, decision.referral_status) == ("New Lead", True, "Lead")


def test_existing_open_lead_younger_than_the_window_is_reactivated_and_credited() -> None:
    existing = ExistingLead("00Q000000000001AAA", days_ago(10))
    decision = decide(existing_leads=[existing])
    assert (decision.kind, decision.credited, decision.existing_lead_id) == (
        "Reactivated Lead",
        True,
        "00Q000000000001AAA",
    )
    assert decision.reason == "reactivated open lead 00Q000000000001AAA from 2026-11-13"


def test_the_newest_of_several_open_leads_is_the_one_reactivated() -> None:
    leads = [
        ExistingLead("00Q000000000001AAA", days_ago(20)),
        ExistingLead("00Q000000000002AAA", days_ago(3)),
    ]
    assert decide(existing_leads=leads).existing_lead_id == "00Q000000000002AAA"


@pytest.mark.parametrize(
    "existing",
    [
        ExistingLead("00Q000000000001AAA", days_ago(31)),  # older than the window
        ExistingLead("00Q000000000001AAA", days_ago(5), is_converted=True),
        ExistingLead("00Q000000000001AAA", days_ago(5), is_closed=True),
        ExistingLead(LEAD.lead_id, days_ago(0)),  # the referred lead itself
    ],
)
def test_leads_that_do_not_count_as_existing(existing: ExistingLead) -> None:
    assert decide(existing_leads=[existing]).kind == "New Lead"


def test_reactivation_without_credit_when_configured() -> None:
    policy = replace(POLICY, existing_lead=ExistingLeadPolicy(credit=False))
    decision = decide(existing_leads=[ExistingLead("00Q000000000001AAA", days_ago(1))], policy=policy)
    assert (decision.kind, decision.credited) == ("Reactivated Lead", False)
    assert decision.reason.endswith("; not credited by policy")


def test_existing_open_lead_counts_as_duplicate_when_configured() -> None:
    policy = replace(POLICY, existing_lead=ExistingLeadPolicy(action="duplicate"))
    decision = decide(existing_leads=[ExistingLead("00Q000000000001AAA", days_ago(1))], policy=policy)
    assert (decision.kind, decision.credited, decision.referral_status) == ("Duplicate", False, "Duplicate")


def test_contact_with_open_opportunity_is_existing_opportunity() -> None:
    contact = ExistingContact("003000000000001AAA", ("006000000000002AAA", "006000000000001AAA"))
    decision = decide(existing_contacts=[contact])
    assert (decision.kind, decision.credited, decision.contact_id, decision.opportunity_id) == (
        "Existing Opportunity",
        True,
        "003000000000001AAA",
        "006000000000001AAA",
    )
    no_credit = replace(POLICY, existing_opportunity=ExistingOpportunityPolicy(credit=False))
    assert decide(existing_contacts=[contact], policy=no_credit).credited is False


def test_contact_without_open_opportunity_is_a_new_lead() -> None:
    assert decide(existing_contacts=[ExistingContact("003000000000001AAA")]).kind == "New Lead"


@pytest.mark.parametrize(
    ("lead_email", "advocate_email", "kind"),
    [
        ("Grace@Acme.example ", "grace@acme.example", "Rejected"),  # same email, odd case and spaces
        ("boss@acme.example", "grace@acme.example", "Rejected"),  # same company domain
        ("pat@gmail.com", "grace@gmail.com", "New Lead"),  # free mail is not a shared domain
        ("grace@gmail.com", "grace@gmail.com", "Rejected"),  # ...but the same address still is
        ("pat@prospect.example", "grace@acme.example", "New Lead"),
        (None, "grace@acme.example", "New Lead"),
    ],
)
def test_self_referral(lead_email: str | None, advocate_email: str, kind: str) -> None:
    decision = decide(replace(LEAD, email=lead_email), replace(GRACE, email=advocate_email))
    assert decision.kind == kind
    if kind == "Rejected":
        assert decision.credited is False and decision.reason.startswith("self-referral")


def test_same_domain_check_can_be_switched_off() -> None:
    policy = replace(POLICY, self_referral=SelfReferralPolicy(reject_same_domain=False))
    assert decide(replace(LEAD, email="boss@acme.example"), policy=policy).kind == "New Lead"


def test_self_referral_wins_over_every_existing_person_rule() -> None:
    decision = decide(
        replace(LEAD, email="grace@acme.example"),
        existing_leads=[ExistingLead("00Q000000000001AAA", days_ago(1))],
    )
    assert decision.kind == "Rejected"


def test_unknown_or_inactive_advocate_is_rejected() -> None:
    assert decide(advocate=None).reason == "no advocate has referral code 'GRACE1001'"
    assert decide(advocate=replace(GRACE, active=False)).kind == "Rejected"


def test_second_referral_of_a_person_is_a_duplicate_for_the_first_referrer_policy() -> None:
    prior = PriorReferral("a01000000000001AAA", "a00000000000002AAA", days_ago(40))
    decision = decide(prior_referrals=[prior])
    assert (decision.kind, decision.credited) == ("Duplicate", False)
    assert decision.reason == "already referred by advocate a00000000000002AAA on 2026-10-14"


def test_latest_referrer_wins_when_configured_but_never_twice_for_the_same_advocate() -> None:
    policy = replace(POLICY, duplicates=DuplicatePolicy(winner="latest"))
    other = PriorReferral("a01000000000001AAA", "a00000000000002AAA", days_ago(40))
    decision = decide(prior_referrals=[other], policy=policy)
    assert (decision.kind, decision.credited) == ("New Lead", True)
    assert "supersedes the referral by advocate a00000000000002AAA" in decision.reason
    mine = PriorReferral("a01000000000001AAA", GRACE.advocate_id, days_ago(2))
    assert decide(prior_referrals=[mine], policy=policy).kind == "Duplicate"


def test_referrals_older_than_the_duplicate_window_do_not_count() -> None:
    prior = PriorReferral("a01000000000001AAA", "a00000000000002AAA", days_ago(91))
    assert decide(prior_referrals=[prior]).kind == "New Lead"
