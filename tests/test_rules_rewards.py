"""Reward rules: compile the YAML section, decide rewards for won opportunities, claw them back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from sfconnector.rules.rewards import (
    AdvocateFacts,
    ExistingReward,
    OpportunityReversalFacts,
    Problem,
    RewardDecision,
    RewardRules,
    WonOpportunityFacts,
    compile_rewards,
    decide_clawback,
    decide_rewards,
    explain_rewards,
)

TODAY = date(2026, 11, 23)


def compile_ok(section: dict[str, Any]) -> RewardRules:
    problems: list[Problem] = []
    rules = compile_rewards(section, problems)
    assert problems == []
    return rules


def won(amount: str | None = "12000", **kw: Any) -> WonOpportunityFacts:
    base: dict[str, Any] = {
        "opportunity_id": "006000000000001AAA",
        "amount": None if amount is None else Decimal(amount),
        "stage": "Closed Won",
        "is_won": True,
        "won_on": date(2026, 11, 20),
        "referral_id": "a01000000000001AAA",
        "referral_channel": "Web",
    }
    base.update(kw)
    return WonOpportunityFacts(**base)


def advocate(**kw: Any) -> AdvocateFacts:
    base: dict[str, Any] = {
        "id": "a00000000000001AAA",
        "program": "Customer",
        "preferred_reward": "Gift Card",
    }
    base.update(kw)
    return AdvocateFacts(**base)


def only(decisions: list[RewardDecision]) -> RewardDecision:
    assert len(decisions) == 1, decisions
    return decisions[0]


@pytest.mark.parametrize(
    ("rule", "amount", "expected", "reason"),
    [
        ({"amount": 100}, "12000", "100.00", "fixed 100.00"),
        ({"amount": "99.995"}, "1", "100.00", "fixed 100.00"),
        ({"percent": 10}, "12000", "1200.00", "10% of 12,000.00 = 1,200.00"),
        ({"percent": 10, "max": 500}, "12000", "500.00", "10% of 12,000.00 = 1,200.00, capped at 500.00"),
        ({"percent": 10, "min": 50}, "200", "50.00", "10% of 200.00 = 20.00, raised to minimum 50.00"),
        ({"percent": "2.5"}, "333.30", "8.33", "2.5% of 333.30 = 8.33"),
        ({"percent": "2.5"}, "333.40", "8.34", "2.5% of 333.40 = 8.34"),  # 8.335 rounds half-up
        ({"percent": 10, "min": 25}, None, "25.00", "10% of 0.00 = 0.00, raised to minimum 25.00"),
        ({"percent": 10, "min": 25}, "-500", "25.00", "10% of 0.00 = 0.00, raised to minimum 25.00"),
    ],
)
def test_fixed_and_percent_rules_compute_amount_and_reason(
    rule: dict[str, Any], amount: str | None, expected: str, reason: str
) -> None:
    rules = compile_ok({"rules": [{"name": "base", **rule}]})
    decision = only(decide_rewards(won(amount), advocate(), [], rules, TODAY))
    assert decision.amount == Decimal(expected)
    assert decision.reason == reason
    assert decision.external_key == "reward:006000000000001AAA:base"
    assert decision.rule == "base"
    assert decision.action == "create"


def test_percent_of_nothing_without_minimum_gives_no_reward() -> None:
    rules = compile_ok({"rules": [{"name": "base", "percent": 10}]})
    assert decide_rewards(won(None), advocate(), [], rules, TODAY) == []
    (outcome,) = explain_rewards(won(None), advocate(), [], rules, TODAY)
    assert outcome.matched and "nothing to reward" in outcome.reason


TIERS = [
    {"from": 0, "to": 4, "amount": 100},
    {"from": 5, "to": 9, "amount": 150},
    {"from": 10, "amount": 250},
]


@pytest.mark.parametrize(
    ("count", "expected", "label"),
    [
        (0, "100.00", "0-4"),
        (4, "100.00", "0-4"),
        (5, "150.00", "5-9"),
        (9, "150.00", "5-9"),
        (10, "250.00", "10+"),
    ],
)
def test_tiers_pick_amount_by_successful_referrals(count: int, expected: str, label: str) -> None:
    rules = compile_ok({"rules": [{"name": "tiers", "tiers": TIERS}]})
    decision = only(decide_rewards(won(), advocate(successful_referrals=count), [], rules, TODAY))
    assert decision.amount == Decimal(expected)
    assert decision.reason.startswith(f"tier {label} ({count} successful referrals)")


def test_percent_tiers_respect_rule_caps() -> None:
    rules = compile_ok(
        {
            "rules": [
                {
                    "name": "tiers",
                    "tiers": [{"from": 0, "to": 2, "percent": 5}, {"from": 3, "percent": 10}],
                    "max": 1000,
                }
            ]
        }
    )
    low = only(decide_rewards(won("12000"), advocate(successful_referrals=1), [], rules, TODAY))
    high = only(decide_rewards(won("12000"), advocate(successful_referrals=3), [], rules, TODAY))
    assert (low.amount, high.amount) == (Decimal("600.00"), Decimal("1000.00"))
    assert high.reason == "tier 3+ (3 successful referrals): 10% of 12,000.00 = 1,200.00, capped at 1,000.00"


PROMOS: list[dict[str, Any]] = [
    {"name": "Bonus", "from": "2026-12-01", "to": "2026-12-31", "add": 50},
    {"name": "Double December", "from": date(2026, 12, 1), "to": date(2026, 12, 31), "multiply": 2},
]


@pytest.mark.parametrize(
    ("won_on", "expected"),
    [
        (date(2026, 11, 30), "480.00"),
        (date(2026, 12, 1), "1010.00"),  # multiply first, then add, whatever the YAML order
        (date(2026, 12, 31), "1010.00"),
        (date(2027, 1, 1), "480.00"),
    ],
)
def test_promotions_apply_inside_their_window_multiply_then_add(won_on: date, expected: str) -> None:
    rules = compile_ok({"rules": [{"name": "p", "percent": 4}], "promotions": PROMOS})
    decision = only(decide_rewards(won(won_on=won_on), advocate(), [], rules, TODAY))
    assert decision.amount == Decimal(expected)


def test_max_caps_the_final_amount_after_promotions_by_default() -> None:
    """An admin's `max` is the most the rule pays, promotion or not; the reason shows the order."""
    rules = compile_ok({"rules": [{"name": "p", "percent": 10, "max": 500}], "promotions": PROMOS})
    decision = only(decide_rewards(won(won_on=date(2026, 12, 5)), advocate(), [], rules, TODAY))
    assert decision.amount == Decimal("500.00")
    assert decision.reason == (
        "10% of 12,000.00 = 1,200.00; promotion 'Double December' x2 = 2,400.00;"
        " promotion 'Bonus' +50.00 = 2,450.00; capped at 500.00 after promotions"
    )


def test_min_raises_the_final_amount_after_promotions_by_default() -> None:
    rules = compile_ok(
        {"rules": [{"name": "p", "percent": 1, "min": 75}], "promotions": PROMOS[1:]},
    )
    decision = only(decide_rewards(won("2000", won_on=date(2026, 12, 5)), advocate(), [], rules, TODAY))
    assert decision.amount == Decimal("75.00")
    assert decision.reason == (
        "1% of 2,000.00 = 20.00; promotion 'Double December' x2 = 40.00; raised to minimum 75.00 after promotions"
    )


def test_cap_applies_before_promotions_multiplies_the_capped_base() -> None:
    """The behaviour before cap_applies existed, on request: the promotion doubles a capped amount."""
    section = {
        "cap_applies": "before_promotions",
        "rules": [{"name": "p", "percent": 10, "max": 500}],
        "promotions": PROMOS,
    }
    decision = only(decide_rewards(won(won_on=date(2026, 12, 5)), advocate(), [], compile_ok(section), TODAY))
    assert decision.amount == Decimal("1050.00")
    assert decision.reason == (
        "10% of 12,000.00 = 1,200.00, capped at 500.00 before promotions;"
        " promotion 'Double December' x2 = 1,000.00; promotion 'Bonus' +50.00 = 1,050.00"
    )


def test_a_rules_cap_applies_overrides_the_sections() -> None:
    section = {
        "cap_applies": "before_promotions",
        "rules": [
            {
                "name": "late-cap",
                "percent": 10,
                "max": 500,
                "cap_applies": "after_promotions",
                "continue": True,
            },
            {"name": "early-cap", "percent": 10, "max": 500},
        ],
        "promotions": PROMOS[1:],
    }
    late, early = decide_rewards(won(won_on=date(2026, 12, 5)), advocate(), [], compile_ok(section), TODAY)
    assert (late.rule, late.amount) == ("late-cap", Decimal("500.00"))
    assert (early.rule, early.amount) == ("early-cap", Decimal("1000.00"))


def test_without_an_active_promotion_the_order_is_not_mentioned() -> None:
    """Outside any promotion window both placements give the same amount and the same reason."""
    for cap_applies in ("after_promotions", "before_promotions"):
        rules = compile_ok(
            {
                "cap_applies": cap_applies,
                "rules": [{"name": "p", "percent": 10, "max": 500}],
                "promotions": PROMOS,
            }
        )
        decision = only(decide_rewards(won(won_on=date(2026, 6, 1)), advocate(), [], rules, TODAY))
        assert (decision.amount, decision.reason) == (
            Decimal("500.00"),
            "10% of 12,000.00 = 1,200.00, capped at 500.00",
        )


def test_promotion_limited_to_named_rules_and_conditions() -> None:
    rules = compile_ok(
        {
            "rules": [
                {"name": "partner", "when": {"program": "Partner"}, "amount": 200},
                {"name": "base", "amount": 100},
            ],
            "promotions": [
                {"name": "x3", "from": "2026-01-01", "to": "2026-12-31", "multiply": 3, "rules": ["partner"]},
                {
                    "name": "web",
                    "from": "2026-01-01",
                    "to": "2026-12-31",
                    "add": 10,
                    "when": {"channel": "Web"},
                },
            ],
        }
    )
    assert only(decide_rewards(won(), advocate(program="partner"), [], rules, TODAY)).amount == Decimal(
        "610.00"
    )
    assert only(decide_rewards(won(), advocate(), [], rules, TODAY)).amount == Decimal("110.00")
    sms = won(referral_channel="SMS")
    assert only(decide_rewards(sms, advocate(), [], rules, TODAY)).amount == Decimal("100.00")


@pytest.mark.parametrize(
    ("when", "facts", "matches"),
    [
        ({"program": "Partner"}, {}, False),
        ({"program": ["Partner", "Customer"]}, {}, True),
        ({"channel": {"in": ["web", "sms"]}}, {}, True),
        ({"stage": {"equals": "Closed Won"}}, {}, True),
        ({"opportunity.Type": "New Business"}, {"fields": {"Type": "New Business"}}, True),
        ({"opportunity.Type": "New Business"}, {"fields": {"Type": "Renewal"}}, False),
        ({"opportunity.Seats": 10}, {"fields": {"Seats": 10.0}}, True),
        ({"opportunity.Type": "New Business"}, {}, False),
    ],
)
def test_conditions_equals_and_in_on_named_fields(
    when: dict[str, Any], facts: dict[str, Any], matches: bool
) -> None:
    rules = compile_ok({"rules": [{"name": "r", "when": when, "amount": 10}]})
    assert bool(decide_rewards(won(**facts), advocate(), [], rules, TODAY)) is matches


def test_first_matching_rule_wins_unless_it_continues() -> None:
    section = {
        "rules": [
            {"name": "partner", "when": {"program": "Customer"}, "amount": 200},
            {"name": "base", "amount": 100},
        ]
    }
    assert [d.rule for d in decide_rewards(won(), advocate(), [], compile_ok(section), TODAY)] == ["partner"]
    section["rules"][0]["continue"] = True
    assert [d.rule for d in decide_rewards(won(), advocate(), [], compile_ok(section), TODAY)] == [
        "partner",
        "base",
    ]


@pytest.mark.parametrize(
    ("rule_type", "preferred", "expected"),
    [
        (None, "Charity", "Charity"),
        (None, "bill credit", "Bill Credit"),
        (None, None, "Commission"),  # the section default
        (None, "Lottery Ticket", "Commission"),
        ("Gift Card", "Charity", "Gift Card"),  # the rule's type beats the advocate's preference
        ("preferred", "Charity", "Charity"),
    ],
)
def test_reward_type_from_preference_or_default(
    rule_type: str | None, preferred: str | None, expected: str
) -> None:
    rule: dict[str, Any] = {"name": "base", "amount": 100}
    if rule_type is not None:
        rule["type"] = rule_type
    rules = compile_ok({"default_type": "Commission", "rules": [rule]})
    assert (
        only(decide_rewards(won(), advocate(preferred_reward=preferred), [], rules, TODAY)).type == expected
    )


@pytest.mark.parametrize(
    ("preferred", "expected"), [(None, "Bill Credit"), ("Raffle", "Bill Credit"), ("charity", "Charity")]
)
def test_a_rules_default_type_beats_the_sections_but_not_a_usable_preference(
    preferred: str | None, expected: str
) -> None:
    rules = compile_ok(
        {"default_type": "Commission", "rules": [{"name": "b", "amount": 80, "default_type": "Bill Credit"}]}
    )
    assert (
        only(decide_rewards(won(), advocate(preferred_reward=preferred), [], rules, TODAY)).type == expected
    )


@pytest.mark.parametrize(
    ("won_on", "status", "amount"),
    [(date(2026, 6, 1), "Approved", "360.00"), (date(2026, 12, 5), "Pending Approval", "450.00")],
)
def test_approval_threshold_is_compared_with_the_final_amount(won_on: date, status: str, amount: str) -> None:
    """3% of 12,000 = 360 passes a 400 threshold; inside a x2 promotion it is 720, capped at 450: above it."""
    rules = compile_ok(
        {
            "approval_above": 400,
            "rules": [{"name": "p", "percent": 3, "max": 450}],
            "promotions": [{"name": "x2", "from": "2026-12-01", "to": "2026-12-31", "multiply": 2}],
        }
    )
    decision = only(decide_rewards(won(won_on=won_on), advocate(), [], rules, TODAY))
    assert (decision.status, decision.amount) == (status, Decimal(amount))


@pytest.mark.parametrize(
    ("amount", "status"), [("499.99", "Approved"), ("500", "Approved"), ("500.01", "Pending Approval")]
)
def test_approval_required_above_threshold(amount: str, status: str) -> None:
    rules = compile_ok({"approval_above": 500, "rules": [{"name": "base", "amount": amount}]})
    decision = only(decide_rewards(won(), advocate(), [], rules, TODAY))
    assert decision.status == status
    assert ("above approval threshold 500.00" in decision.reason) is (status == "Pending Approval")


def test_rule_approval_threshold_overrides_section() -> None:
    rules = compile_ok({"approval_above": 500, "rules": [{"name": "b", "amount": 100, "approval_above": 50}]})
    assert only(decide_rewards(won(), advocate(), [], rules, TODAY)).status == "Pending Approval"


def test_hold_period_sets_payable_on_from_won_date() -> None:
    rules = compile_ok(
        {
            "hold_days": 30,
            "rules": [
                {"name": "a", "amount": 1, "continue": True},
                {"name": "b", "amount": 1, "hold_days": 0},
            ],
        }
    )
    held, immediate = decide_rewards(won(won_on=date(2026, 12, 15)), advocate(), [], rules, TODAY)
    assert held.payable_on == date(2027, 1, 14)
    assert "payable on 2027-01-14 after a 30-day hold" in held.reason
    assert immediate.payable_on == date(2026, 12, 15)


def test_won_date_falls_back_to_close_date_then_today() -> None:
    rules = compile_ok({"hold_days": 1, "rules": [{"name": "a", "amount": 1}]})
    facts = won(won_on=None, close_date=date(2026, 1, 1))
    assert only(decide_rewards(facts, advocate(), [], rules, TODAY)).payable_on == date(2026, 1, 2)
    facts = won(won_on=None, close_date=None)
    assert only(decide_rewards(facts, advocate(), [], rules, TODAY)).payable_on == date(2026, 11, 24)


def test_not_won_opportunity_earns_nothing() -> None:
    rules = compile_ok({"rules": [{"name": "a", "amount": 1}]})
    assert decide_rewards(won(is_won=False, stage="Closed Lost"), advocate(), [], rules, TODAY) == []


def existing(status: str, amount: str = "100.00", rule: str = "base", **kw: Any) -> ExistingReward:
    return ExistingReward(
        external_key=kw.pop("key", f"reward:006000000000001AAA:{rule}"),
        opportunity_id="006000000000001AAA",
        advocate_id="a00000000000001AAA",
        rule=rule,
        amount=Decimal(amount),
        status=status,
        type="Gift Card",
        referral_id="a01000000000001AAA",
        payable_on=date(2026, 11, 20),
        **kw,
    )


@pytest.mark.parametrize("status", ["Pending Approval", "Approved", "Paid", "Rejected"])
def test_existing_reward_is_never_decided_again(status: str) -> None:
    rules = compile_ok({"rules": [{"name": "base", "amount": 999}]})
    assert decide_rewards(won(), advocate(), [existing(status)], rules, TODAY) == []


CLAWBACK = {"rules": [{"name": "base", "amount": 100}], "clawback": {"within_days": 90}}


def reversal(days_after: int, kind: str = "lost") -> OpportunityReversalFacts:
    won_on = date(2026, 1, 1)
    return OpportunityReversalFacts(
        "006000000000001AAA", kind, won_on, date.fromordinal(won_on.toordinal() + days_after)
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["Pending Approval", "Approved"])
def test_clawback_rejects_unpaid_reward(status: str) -> None:
    decision = only(decide_clawback(reversal(10), [existing(status)], compile_ok(CLAWBACK)))
    assert (decision.external_key, decision.action, decision.status) == (
        "reward:006000000000001AAA:base",
        "reject",
        "Rejected",
    )
    assert decision.amount == Decimal("100.00")
    assert decision.reason == (
        "opportunity lost on 2026-01-11, 10 days after it was won (clawback window 90 days): unpaid reward rejected"
    )


def test_clawback_of_paid_reward_adds_negative_adjustment_once() -> None:
    rules = compile_ok(CLAWBACK)
    decision = only(decide_clawback(reversal(90, "reopened"), [existing("Paid", "150")], rules))
    assert decision.external_key == "reward:006000000000001AAA:base:clawback"
    assert (decision.action, decision.amount, decision.status) == ("adjust", Decimal("-150"), "Approved")
    assert decision.payable_on == date(2026, 4, 1)
    assert "paid reward 150.00 taken back by adjustment -150.00" in decision.reason
    adjustment = existing("Approved", "-150", key="reward:006000000000001AAA:base:clawback")
    assert decide_clawback(reversal(90), [existing("Paid", "150"), adjustment], rules) == []


@pytest.mark.parametrize(
    ("section", "days", "rewards"),
    [
        (CLAWBACK, 91, [existing("Approved")]),  # outside the window
        ({"rules": CLAWBACK["rules"]}, 1, [existing("Approved")]),  # no clawback configured
        (CLAWBACK, 1, [existing("Rejected")]),  # already rejected
        (CLAWBACK, 1, [existing("Approved", key="reward:006000000000002AAA:base")]),  # another opportunity
    ],
)
def test_clawback_leaves_rewards_alone(
    section: dict[str, Any], days: int, rewards: list[ExistingReward]
) -> None:
    assert decide_clawback(reversal(days), rewards, compile_ok(section)) == []


@pytest.mark.parametrize(
    ("section", "path", "fragment"),
    [
        ("nope", ("rewards",), "must be a mapping"),
        ({"rulez": []}, ("rewards", "rulez"), "did you mean 'rules'"),
        ({"rules": [{"amount": 1}]}, ("rewards", "rules", 0, "name"), "needs a name"),
        ({"rules": [{"name": "a:b", "amount": 1}]}, ("rewards", "rules", 0, "name"), "External_Key__c"),
        ({"rules": [{"name": "a", "amount": 1, "percent": 2}]}, ("rewards", "rules", 0), "exactly one"),
        ({"rules": [{"name": "a", "amount": -1}]}, ("rewards", "rules", 0, "amount"), "greater than 0"),
        ({"rules": [{"name": "a", "amount": "ten"}]}, ("rewards", "rules", 0, "amount"), "expected a number"),
        ({"rules": [{"name": "a", "amount": True}]}, ("rewards", "rules", 0, "amount"), "expected a number"),
        ({"rules": [{"name": "a", "amount": 5, "max": 3}]}, ("rewards", "rules", 0, "max"), "only applies"),
        (
            {"rules": [{"name": "a", "percent": 5, "min": 9, "max": 3}]},
            ("rewards", "rules", 0, "min"),
            "above max",
        ),
        (
            {"rules": [{"name": "a", "amount": 1, "type": "Cash"}]},
            ("rewards", "rules", 0, "type"),
            "unknown reward type",
        ),
        (
            {"rules": [{"name": "a", "amount": 1}, {"name": "a", "amount": 2}]},
            ("rewards", "rules", 1, "name"),
            "duplicate",
        ),
        (
            {"rules": [{"name": "a", "amount": 1, "when": {"progam": "x"}}]},
            ("rewards", "rules", 0, "when", "progam"),
            "did you mean 'program'",
        ),
        (
            {
                "rules": [
                    {"name": "a", "tiers": [{"from": 0, "to": 4, "amount": 1}, {"from": 6, "amount": 2}]}
                ]
            },
            ("rewards", "rules", 0, "tiers", 1, "from"),
            "leaves 5-5 uncovered",
        ),
        (
            {"rules": [{"name": "a", "tiers": [{"from": 0, "amount": 1}, {"from": 1, "amount": 2}]}]},
            ("rewards", "rules", 0, "tiers", 0, "to"),
            "only the last tier",
        ),
        (
            {"rules": [{"name": "a", "tiers": [{"from": 1, "amount": 1}]}]},
            ("rewards", "rules", 0, "tiers", 0, "from"),
            "start it at 0",
        ),
        (
            {"promotions": [{"name": "p", "from": "2026-12-31", "to": "2026-12-01", "multiply": 2}]},
            ("rewards", "promotions", 0, "to"),
            "ends",
        ),
        (
            {"promotions": [{"name": "p", "from": "Dec 1", "to": "2026-12-01", "add": 2}]},
            ("rewards", "promotions", 0, "from"),
            "expected a date",
        ),
        (
            {
                "rules": [{"name": "base", "amount": 1}],
                "promotions": [
                    {"name": "p", "from": "2026-12-01", "to": "2026-12-02", "add": 2, "rules": ["bse"]}
                ],
            },
            ("rewards", "promotions", 0, "rules", 0),
            "did you mean 'base'",
        ),
        ({"clawback": {"within_days": -1}}, ("rewards", "clawback", "within_days"), "whole number"),
        ({"cap_applies": "after"}, ("rewards", "cap_applies"), "one of: after_promotions, before_promotions"),
        ({"cap_applies": True}, ("rewards", "cap_applies"), "must be after_promotions or before_promotions"),
        (
            {"rules": [{"name": "a", "percent": 5, "max": 9, "cap_applies": "before-promotions"}]},
            ("rewards", "rules", 0, "cap_applies"),
            "did you mean 'before_promotions'",
        ),
        (
            {"rules": [{"name": "a", "amount": 5, "cap_applies": "before_promotions"}]},
            ("rewards", "rules", 0, "cap_applies"),
            "only applies to percent and tiered rules",
        ),
    ],
)
def test_compile_reports_problems_with_path_and_never_raises(
    section: object, path: tuple[str | int, ...], fragment: str
) -> None:
    problems: list[Problem] = []
    compile_rewards(section, problems)
    assert any(p.path == path and fragment in f"{p.message} {p.hint}" for p in problems), problems


def test_compile_accepts_a_callback_and_checks_opportunity_fields() -> None:
    seen: list[tuple[tuple[str | int, ...], str, str | None]] = []
    section = {"rules": [{"name": "a", "amount": 1, "when": {"opportunity.Tpye": "x"}}]}
    compile_rewards(
        section, lambda path, msg, hint=None: seen.append((path, msg, hint)), opportunity_fields={"Type"}
    )
    assert seen == [
        (
            ("rewards", "rules", 0, "when", "opportunity.Tpye"),
            "unknown opportunity field 'Tpye'",
            "did you mean 'Type'?",
        )
    ]


def test_missing_section_compiles_to_no_rules() -> None:
    assert compile_ok(None) == RewardRules()  # type: ignore[arg-type]


def test_explain_says_why_each_rule_did_or_did_not_fire() -> None:
    rules = compile_ok(
        {
            "rules": [
                {"name": "partner", "when": {"program": "Partner"}, "amount": 300},
                {"name": "base", "amount": 100},
                {"name": "late", "amount": 5},
            ]
        }
    )
    outcomes = explain_rewards(won(), advocate(), [], rules, TODAY)
    assert [(o.rule, o.matched, o.decision is not None) for o in outcomes] == [
        ("partner", False, False),
        ("base", True, True),
        ("late", False, False),
    ]
    assert outcomes[0].reason == "program is 'Customer', not 'Partner'"
    assert outcomes[1].reason == "fixed 100.00"
    assert outcomes[2].reason == "not tried: rule 'base' matched first"
    again = explain_rewards(won(), advocate(), [existing("Approved")], rules, TODAY)
    assert again[1].reason == "reward reward:006000000000001AAA:base already exists; not decided again"


def test_compile_paths_are_relative_to_the_given_prefix() -> None:
    problems: list[Problem] = []
    compile_rewards({"rules": [{"name": "a", "amount": 0}]}, problems, ())
    assert [p.path for p in problems] == [("rules", 0, "amount")]
