"""Routing decisions at the pure level: every routing case of issue 4, with the example's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfconnector.config import load_config
from sfconnector.rules.model import (
    AdvocateFacts,
    LeadFacts,
    RoutingAction,
    RoutingDecision,
    RoutingFallbacks,
    RoutingRule,
    RoutingRules,
)
from sfconnector.rules.routing import decide_routing

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RULES = load_config(ROOT / "connector.yaml.example", env={}).routing

ALICE, BRUNO, CHITRA, ERIN = (
    "005000000000001AAA",
    "005000000000002AAA",
    "005000000000003AAA",
    "005000000000009AAA",
)
STANDARD = "00G000000000001AAA"  # the round-robin / queue the standard assignment picked


def lead(channel: str = "Web", **kw: Any) -> LeadFacts:
    base: dict[str, Any] = {
        "lead_id": "00Q000000000001AAA",
        "channel": channel,
        "referral_code": "GRACE1001",
        "email": "pat@prospect.example",
        "standard_owner_id": STANDARD,
        "current_owner_id": STANDARD,
        "fields": {"Company": "Prospect Ltd", "NumberOfEmployees": 50},
    }
    base.update(kw)
    return LeadFacts(**base)


def advocate(program: str = "Customer", owner: str | None = ALICE, active: bool = True) -> AdvocateFacts:
    return AdvocateFacts(
        advocate_id="a00000000000001AAA",
        owner_id=owner,
        active=active,
        name="Grace Hopper",
        email="grace@advocates.example",
        referral_code="GRACE1001",
        fields={"Program__c": program, "Status__c": "Active" if active else "Inactive"},
    )


def decide(
    the_lead: LeadFacts, the_advocate: AdvocateFacts | None, owner_active: bool | None = True
) -> RoutingDecision:
    return decide_routing(the_lead, the_advocate, owner_active, EXAMPLE_RULES)


@pytest.mark.parametrize(
    ("case", "the_lead", "the_advocate", "owner_active", "action", "target", "rule"),
    [
        ("active owner", lead(), advocate(), True, "owner_of_advocate", ALICE, "advocate-owner"),
        ("owner activity unknown", lead(), advocate(), None, "owner_of_advocate", ALICE, "advocate-owner"),
        (
            "employee program",
            lead(),
            advocate("Employee", CHITRA),
            True,
            "owner_of_advocate",
            CHITRA,
            "employee-referrals-to-owner",
        ),
        (
            "inactive owner",
            lead(),
            advocate(owner=ERIN),
            False,
            "queue",
            "Referral Desk",
            "fallback:inactive_owner",
        ),
        (
            "advocate without owner",
            lead(),
            advocate(owner=None),
            None,
            "queue",
            "Referral Desk",
            "fallback:inactive_owner",
        ),
        (
            "unknown code",
            lead(referral_code="NOPE1"),
            None,
            None,
            "keep_standard",
            None,
            "fallback:unknown_advocate",
        ),
        (
            "inactive advocate",
            lead(),
            advocate(active=False),
            True,
            "keep_standard",
            None,
            "fallback:inactive_advocate",
        ),
        (
            "partner social to queue",
            lead("Social"),
            advocate("Partner", BRUNO),
            True,
            "queue",
            "Referral Desk",
            "partner-social-to-desk",
        ),
        (
            "partner via web to owner",
            lead("Web"),
            advocate("Partner", BRUNO),
            True,
            "owner_of_advocate",
            BRUNO,
            "advocate-owner",
        ),
        (
            "channel compares case-insensitively",
            lead("social"),
            advocate("partner", BRUNO),
            True,
            "queue",
            "Referral Desk",
            "partner-social-to-desk",
        ),
        (
            "enterprise to named user",
            lead(fields={"NumberOfEmployees": 25000}),
            advocate(),
            True,
            "user",
            "diego.alvarez@sfconnector.test",
            "enterprise-to-diego",
        ),
        (
            "manual reassignment respected",
            lead(manually_reassigned=True, current_owner_id=BRUNO),
            advocate(),
            True,
            "keep_current",
            BRUNO,
            "manual_reassignment",
        ),
        (
            "manual reassignment beats inactive advocate",
            lead(manually_reassigned=True, current_owner_id=BRUNO),
            advocate(active=False),
            True,
            "keep_current",
            BRUNO,
            "manual_reassignment",
        ),
    ],
)
def test_routing_cases(
    case: str,
    the_lead: LeadFacts,
    the_advocate: AdvocateFacts | None,
    owner_active: bool | None,
    action: str,
    target: str | None,
    rule: str,
) -> None:
    decision = decide(the_lead, the_advocate, owner_active)
    assert decision.action == action, case
    assert decision.rule == rule, case
    got = {"queue": decision.queue, "user": decision.user}.get(action, decision.owner_id)
    assert got == target, case
    assert decision.reason and "\n" not in decision.reason


def test_reason_says_why_in_one_line() -> None:
    decision = decide(lead("Social"), advocate("Partner", BRUNO))
    assert decision.reason == (
        "advocate.Program__c is 'Partner'; channel is 'Social' → queue 'Referral Desk' (rule partner-social-to-desk)"
    )
    inactive = decide(lead(), advocate(owner=ERIN), owner_active=False)
    assert inactive.reason == (
        f"any referral; but the owner {ERIN} of advocate Grace Hopper is inactive "
        "→ queue 'Referral Desk' (rule fallback:inactive_owner)"
    )
    unknown = decide(lead(referral_code="NOPE1"), None)
    assert (
        unknown.reason
        == "no advocate has referral code 'NOPE1' → standard assignment kept (rule fallback:unknown_advocate)"
    )


def test_trace_lists_each_rule_tried_in_order_until_the_match() -> None:
    decision = decide(lead("Web"), advocate("Partner", BRUNO))
    assert [(step.rule, step.matched) for step in decision.trace] == [
        ("partner-social-to-desk", False),
        ("enterprise-to-diego", False),
        ("employee-referrals-to-owner", False),
        ("advocate-owner", True),
    ]
    assert decision.trace[0].why == "channel is 'Web', not 'Social'"
    assert decision.trace[1].why == "lead.NumberOfEmployees is 50, not ≥ 10000"
    assert decision.trace[2].why == "advocate.Program__c is 'Partner', not 'Employee'"


def test_changes_owner_is_false_for_keep_decisions() -> None:
    assert decide(lead(), advocate()).changes_owner
    assert not decide(lead(), None).changes_owner
    assert not decide(lead(manually_reassigned=True, current_owner_id=BRUNO), advocate()).changes_owner


def test_manual_reassignment_can_be_overridden_by_config() -> None:
    rules = RoutingRules(
        rules=(RoutingRule("all", RoutingAction("owner_of_advocate")),), respect_manual_reassignment=False
    )
    decision = decide_routing(lead(manually_reassigned=True, current_owner_id=BRUNO), advocate(), True, rules)
    assert (decision.action, decision.owner_id) == ("owner_of_advocate", ALICE)


def test_no_matching_rule_takes_the_no_match_fallback() -> None:
    rules = RoutingRules(
        rules=(),
        fallbacks=RoutingFallbacks(no_match=RoutingAction("queue", "Unassigned Leads")),
    )
    decision = decide_routing(lead(), advocate(), True, rules)
    assert (decision.action, decision.queue, decision.rule) == (
        "queue",
        "Unassigned Leads",
        "fallback:no_match",
    )


def test_inactive_advocate_may_fall_back_to_its_owner_unless_that_owner_is_inactive() -> None:
    rules = RoutingRules(
        fallbacks=RoutingFallbacks(
            inactive_advocate=RoutingAction("owner_of_advocate"),
            inactive_owner=RoutingAction("user", "alice.nguyen@sfconnector.test"),
        )
    )
    active_owner = decide_routing(lead(), advocate(active=False), True, rules)
    assert (active_owner.action, active_owner.owner_id) == ("owner_of_advocate", ALICE)
    gone_owner = decide_routing(lead(), advocate(active=False, owner=ERIN), False, rules)
    assert (gone_owner.action, gone_owner.user, gone_owner.rule) == (
        "user",
        "alice.nguyen@sfconnector.test",
        "fallback:inactive_owner",
    )


def test_decisions_are_deterministic() -> None:
    first = decide(lead("Social"), advocate("Partner", BRUNO))
    assert all(decide(lead("Social"), advocate("Partner", BRUNO)) == first for _ in range(5))


def test_a_long_reason_is_kept_whole_by_the_decision_and_shortened_at_a_word_for_the_record() -> None:
    from sfconnector.rules.conditions import Compare
    from sfconnector.rules.model import shorten

    long_company = "Very Long Company Name " * 20
    matching = RoutingRules(
        rules=(
            RoutingRule("company", RoutingAction("keep_standard"), Compare("lead.Company", "exists", True)),
        )
    )
    decision = decide_routing(lead(fields={"Company": long_company}), advocate(), True, matching)
    assert decision.reason.endswith("(rule company)") and len(decision.reason) > 255  # the log keeps it all
    short = shorten(decision.reason)
    assert len(short) <= 255 and short.endswith("…")
    assert decision.reason.startswith(short[:-1])
    assert decision.reason[len(short) - 1] == " "  # cut where a word ends, never inside one


@given(st.text(alphabet=st.sampled_from("ab →|;,"), max_size=600), st.integers(min_value=10, max_value=300))
def test_shorten_never_exceeds_its_limit_and_leaves_short_text_alone(text: str, limit: int) -> None:
    from sfconnector.rules.model import shorten

    short = shorten(text, limit)
    assert len(short) <= limit
    one_line = " ".join(text.split())
    if len(one_line) <= limit:
        assert short == one_line
    else:
        assert short.endswith("…")


def test_fields_read_names_what_the_lookups_must_fetch() -> None:
    from sfconnector.rules.routing import fields_read

    assert fields_read(EXAMPLE_RULES) == (frozenset({"NumberOfEmployees"}), frozenset({"Program__c"}))
