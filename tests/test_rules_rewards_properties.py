"""Property tests of the reward math and of reward decisions under replayed and reordered events.

The event model. For one opportunity the connector sees won, lost and reopened events, and finance may mark a
reward Paid in between. Salesforce delivers one record's changes in order; what breaks that order is a crash
and restart from an older checkpoint, which re-delivers a stretch of events already processed. So a delivery
of a canonical history H is a concatenation of contiguous segments H[0:a1] + H[c1:a2] + ... + H[ck:n] with
every restart point c_i at or before the point a_i reached (the first occurrences stay in order). Events of
different opportunities interleave freely. Under that model the final reward records (keys, amounts, statuses)
must equal those of processing H once.

Under a fully arbitrary order of one opportunity's events (a reversal delivered before the win it reverses;
only possible when two readers race) statuses can differ, but the set of reward keys and their amounts cannot:
that weaker property is pinned down too, for histories without payments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sfconnector.rules.rewards import (
    APPROVED,
    PAID,
    REWARD_TYPES,
    AdvocateFacts,
    ExistingReward,
    OpportunityReversalFacts,
    Problem,
    RewardDecision,
    RewardRule,
    RewardRules,
    WonOpportunityFacts,
    compile_rewards,
    decide_clawback,
    decide_rewards,
)

TODAY = date(2026, 11, 23)
DAY0 = date(2026, 1, 1)
PROGRAMS = ["Customer", "Partner", "Employee"]

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=2)
percents = st.decimals(min_value=Decimal("0.1"), max_value=Decimal(50), places=1)
opportunity_amounts = st.one_of(
    st.none(), st.decimals(min_value=Decimal(-1000), max_value=Decimal(10_000_000), places=2)
)


@st.composite
def tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    bounds = sorted(draw(st.sets(st.integers(1, 30), max_size=3)))
    lows = [0, *bounds]
    result: list[dict[str, Any]] = []
    for i, low in enumerate(lows):
        tier: dict[str, Any] = {"from": low}
        if i + 1 < len(lows):
            tier["to"] = lows[i + 1] - 1
        if draw(st.booleans()):
            tier["amount"] = draw(money)
        else:
            tier["percent"] = draw(percents)
        result.append(tier)
    return result


CAP_PLACEMENTS = ["after_promotions", "before_promotions"]


@st.composite
def rule_dicts(draw: st.DrawFn, name: str, caps: bool = True, placements: bool = False) -> dict[str, Any]:
    kind = draw(st.sampled_from(["amount", "percent", "tiers"]))
    rule: dict[str, Any] = {"name": name}
    if kind == "amount":
        rule["amount"] = draw(money)
    elif kind == "percent":
        rule["percent"] = draw(percents)
    else:
        rule["tiers"] = draw(tiers())
    if kind != "amount" and caps:
        low = draw(st.none() | money)
        high = draw(st.none() | money)
        if low is not None and high is not None and low > high:
            low, high = high, low
        if low is not None:
            rule["min"] = low
        if high is not None:
            rule["max"] = high
        if placements and draw(st.booleans()):
            rule["cap_applies"] = draw(st.sampled_from(CAP_PLACEMENTS))
    if draw(st.booleans()):
        rule["when"] = {"program": draw(st.lists(st.sampled_from(PROGRAMS), min_size=1, max_size=2))}
    rule["continue"] = draw(st.booleans())
    if draw(st.booleans()):
        rule["hold_days"] = draw(st.integers(0, 60))
    return rule


@st.composite
def promotion_dicts(draw: st.DrawFn, i: int) -> dict[str, Any]:
    start = DAY0 + timedelta(days=draw(st.integers(0, 200)))
    promo: dict[str, Any] = {
        "name": f"promo{i}",
        "from": start,
        "to": start + timedelta(days=draw(st.integers(0, 90))),
    }
    if draw(st.booleans()):
        promo["multiply"] = draw(st.decimals(min_value=Decimal("0.5"), max_value=Decimal(3), places=1))
    else:
        promo["add"] = draw(money)
    return promo


@st.composite
def reward_sections(
    draw: st.DrawFn,
    promotions: bool = True,
    caps: bool = True,
    cap_applies: str | None = None,
    placements: bool = False,
) -> dict[str, Any]:
    """A valid `rewards:` section; `cap_applies` sets the section's placement, `placements` lets rules choose."""
    count = draw(st.integers(1, 3))
    section: dict[str, Any] = {
        "rules": [draw(rule_dicts(f"rule{i}", caps, placements)) for i in range(count)],
        "clawback": {"within_days": draw(st.integers(0, 120))},
        "hold_days": draw(st.integers(0, 30)),
    }
    if promotions:
        section["promotions"] = [draw(promotion_dicts(i)) for i in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        section["approval_above"] = draw(money)
    if cap_applies is not None:
        section["cap_applies"] = cap_applies
    return section


@st.composite
def reward_rules(
    draw: st.DrawFn,
    promotions: bool = True,
    caps: bool = True,
    cap_applies: str | None = None,
    placements: bool = False,
) -> RewardRules:
    """Compiled `reward_sections`."""
    section = draw(reward_sections(promotions, caps, cap_applies, placements))
    problems: list[Problem] = []
    rules = compile_rewards(section, problems)
    assert problems == [], (section, problems)
    return rules


@st.composite
def advocates(draw: st.DrawFn) -> AdvocateFacts:
    return AdvocateFacts(
        id="a00000000000001AAA",
        program=draw(st.sampled_from(PROGRAMS)),
        preferred_reward=draw(st.none() | st.sampled_from([*REWARD_TYPES, "Yacht"])),
        successful_referrals=draw(st.integers(-1, 40)),
    )


@st.composite
def won_facts(draw: st.DrawFn, opportunity_id: str = "006000000000001AAA") -> WonOpportunityFacts:
    return WonOpportunityFacts(
        opportunity_id=opportunity_id,
        amount=draw(opportunity_amounts),
        stage="Closed Won",
        is_won=True,
        won_on=DAY0 + timedelta(days=draw(st.integers(0, 300))),
        referral_id="a01" + opportunity_id[3:],
        referral_channel=draw(st.sampled_from(["Web", "Card", "SMS"])),
    )


def as_existing(decision: RewardDecision) -> ExistingReward:
    return ExistingReward(
        external_key=decision.external_key,
        opportunity_id=decision.opportunity_id,
        advocate_id=decision.advocate_id,
        rule=decision.rule,
        amount=decision.amount,
        status=decision.status,
        type=decision.type,
        referral_id=decision.referral_id,
        payable_on=decision.payable_on,
    )


@given(reward_rules(), advocates(), won_facts())
def test_rewards_are_positive_whole_cents(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        assert decision.amount > 0
        assert decision.amount == decision.amount.quantize(Decimal("0.01"))
        assert decision.action == "create"
        assert decision.type in REWARD_TYPES


@given(reward_rules(promotions=False), advocates(), won_facts())
def test_min_and_max_caps_hold_without_promotions(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    by_name = {rule.name: rule for rule in rules.rules}
    base = max(won.amount or Decimal(0), Decimal(0))
    count = max(advocate.successful_referrals, 0)
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        rule = by_name[decision.rule]
        if rule.minimum is not None:
            assert decision.amount >= rule.minimum.quantize(Decimal("0.01"))
        if rule.maximum is not None:
            assert decision.amount <= rule.maximum.quantize(Decimal("0.01"))
        percent = rule.percent
        if rule.kind == "tiered":
            tier = next(t for t in rule.tiers if t.low <= count and (t.high is None or count <= t.high))
            percent = tier.percent
        if percent is not None:
            # the spec's formula, written out independently: clamp(percent of amount, min, max), half-up cents
            expected = base * percent / 100
            expected = max(expected, rule.minimum) if rule.minimum is not None else expected
            expected = min(expected, rule.maximum) if rule.maximum is not None else expected
            assert decision.amount == expected.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def spec_amount(
    rule: RewardRule, rules: RewardRules, won: WonOpportunityFacts, advocate: AdvocateFacts
) -> Decimal:
    """The documented math, written out independently of rewards.py: base, promotions, min/max where placed."""
    base = max(won.amount or Decimal(0), Decimal(0))
    count = max(advocate.successful_referrals, 0)
    value, percent = rule.amount or Decimal(0), rule.percent
    if rule.kind == "tiered":
        tier = next(t for t in rule.tiers if t.low <= count and (t.high is None or count <= t.high))
        value, percent = tier.amount or Decimal(0), tier.percent
    if percent is not None:
        value = base * percent / 100
    assert won.won_on is not None
    active = [
        p
        for p in rules.promotions
        if p.starts <= won.won_on <= p.ends and (not p.rules or rule.name in p.rules)
    ]

    def clamp(amount: Decimal) -> Decimal:
        amount = max(amount, rule.minimum) if rule.minimum is not None else amount
        return min(amount, rule.maximum) if rule.maximum is not None else amount

    placement = rule.cap_applies or rules.cap_applies
    if placement == "before_promotions":
        value = clamp(value)
    for p in active:
        value = value * p.multiply if p.multiply is not None else value
    for p in active:
        value = value + p.add if p.add is not None else value
    if placement == "after_promotions":
        value = clamp(value)
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@given(reward_rules(), advocates(), won_facts())
def test_promotions_never_take_a_reward_past_its_max_or_below_its_min(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    """By default min and max bound the final amount: whatever promotions are active, max is the most paid."""
    by_name = {rule.name: rule for rule in rules.rules}
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        rule = by_name[decision.rule]
        if rule.minimum is not None:
            assert decision.amount >= rule.minimum.quantize(Decimal("0.01"))
        if rule.maximum is not None:
            assert decision.amount <= rule.maximum.quantize(Decimal("0.01"))
        assert decision.amount == spec_amount(rule, rules, won, advocate)


@given(reward_rules(cap_applies="before_promotions"), advocates(), won_facts())
def test_cap_applies_before_promotions_bounds_the_base_then_promotes(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    """The old order on request: clamp(base) first, then multipliers, then additions."""
    by_name = {rule.name: rule for rule in rules.rules}
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        assert decision.amount == spec_amount(by_name[decision.rule], rules, won, advocate)


@given(
    st.sampled_from(CAP_PLACEMENTS).flatmap(lambda c: reward_rules(cap_applies=c, placements=True)),
    advocates(),
    won_facts(),
)
def test_each_rule_places_its_min_and_max_as_it_says_or_as_the_section_says(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    by_name = {rule.name: rule for rule in rules.rules}
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        rule = by_name[decision.rule]
        assert decision.amount == spec_amount(rule, rules, won, advocate)
        if (rule.cap_applies or rules.cap_applies) == "after_promotions" and rule.maximum is not None:
            assert decision.amount <= rule.maximum.quantize(Decimal("0.01"))


@given(reward_rules(), advocates(), won_facts())
def test_decisions_are_deterministic_and_replays_add_nothing(
    rules: RewardRules, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    first = decide_rewards(won, advocate, [], rules, TODAY)
    assert decide_rewards(won, advocate, [], rules, TODAY) == first
    assert len({d.external_key for d in first}) == len(first)
    assert all(d.external_key == f"reward:{won.opportunity_id}:{d.rule}" for d in first)
    stored = [as_existing(d) for d in first]
    assert decide_rewards(won, advocate, stored, rules, TODAY) == []
    # A later replay sees a grown tier count and another `today`; a reward already stored is never decided
    # again. (A rule that gave nothing the first time, e.g. a percent of a zero amount, may give a tier's fixed
    # amount now: new keys are allowed, changed ones are not.)
    grown = replace(advocate, successful_referrals=advocate.successful_referrals + 7)
    later = decide_rewards(won, grown, stored, rules, TODAY + timedelta(days=40))
    assert not {d.external_key for d in later} & {r.external_key for r in stored}


# ---------------------------------------------------------------------------------------------------------------
# event histories


@dataclass(frozen=True)
class Won:
    facts: WonOpportunityFacts


@dataclass(frozen=True)
class Reversal:
    facts: OpportunityReversalFacts


@dataclass(frozen=True)
class Pay:
    """Finance marks every Approved reward of the opportunity Paid (not a connector event; idempotent)."""

    opportunity_id: str


Event = Won | Reversal | Pay
Store = dict[str, ExistingReward]


def apply(store: Store, event: Event, advocate: AdvocateFacts, rules: RewardRules) -> None:
    decisions: list[RewardDecision]
    if isinstance(event, Pay):
        for key, reward in list(store.items()):
            if (
                reward.opportunity_id == event.opportunity_id
                and reward.status == APPROVED
                and reward.amount > 0
            ):
                store[key] = replace(reward, status=PAID)
        return
    if isinstance(event, Won):
        decisions = decide_rewards(event.facts, advocate, list(store.values()), rules, TODAY)
    else:
        decisions = decide_clawback(event.facts, list(store.values()), rules)
    for decision in decisions:
        assert decision.amount >= 0 or decision.action == "adjust"
        if decision.action == "reject":
            # the writer changes only the status of a rejected reward
            store[decision.external_key] = replace(store[decision.external_key], status=decision.status)
        else:
            assert decision.external_key not in store
            store[decision.external_key] = as_existing(decision)


def run(events: Sequence[Event], advocate: AdvocateFacts, rules: RewardRules) -> Store:
    store: Store = {}
    for event in events:
        apply(store, event, advocate, rules)
    return store


@st.composite
def opportunity_history(draw: st.DrawFn, index: int, payments: bool = True) -> list[Event]:
    opportunity_id = f"006{index:015d}"
    won = draw(won_facts(opportunity_id))
    assert won.won_on is not None
    history: list[Event] = [Won(won)]
    day = 0
    for _ in range(draw(st.integers(0, 4))):
        step = draw(
            st.sampled_from(["lost", "reopened", "won", "pay"] if payments else ["lost", "reopened", "won"])
        )
        day += draw(st.integers(0, 60))
        if step == "won":
            history.append(Won(won))  # won again (reopened and re-won): the same facts
        elif step == "pay":
            history.append(Pay(opportunity_id))
        else:
            history.append(
                Reversal(
                    OpportunityReversalFacts(
                        opportunity_id, step, won.won_on, won.won_on + timedelta(days=day)
                    )
                )
            )  # type: ignore[arg-type]
    return history


@st.composite
def replayed(draw: st.DrawFn, history: list[Event]) -> list[Event]:
    """The history as delivered with crash-and-restart replays: contiguous segments, restarts at or before."""
    delivered: list[Event] = []
    position = 0
    while position < len(history):
        reached = draw(st.integers(position + 1, len(history)))
        delivered.extend(history[position:reached])
        position = reached if draw(st.booleans()) else draw(st.integers(0, reached))
        if len(delivered) > 4 * len(history) + 8:
            delivered.extend(history[position:])
            break
    return delivered


@st.composite
def interleave(draw: st.DrawFn, streams: list[list[Event]]) -> list[Event]:
    queues = [list(s) for s in streams if s]
    merged: list[Event] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        merged.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return merged


@settings(max_examples=100)
@given(st.data(), reward_rules(), advocates())
def test_replays_and_interleavings_converge_to_canonical_records(
    data: st.DataObject, rules: RewardRules, advocate: AdvocateFacts
) -> None:
    histories = [data.draw(opportunity_history(i)) for i in range(data.draw(st.integers(1, 3)))]
    canonical = run([event for history in histories for event in history], advocate, rules)
    delivered = data.draw(interleave([data.draw(replayed(history)) for history in histories]))
    assert run(delivered, advocate, rules) == canonical


@settings(max_examples=100)
@given(st.data(), reward_rules(), advocates())
def test_any_order_gives_the_same_reward_keys_and_amounts(
    data: st.DataObject, rules: RewardRules, advocate: AdvocateFacts
) -> None:
    history = data.draw(opportunity_history(1, payments=False))
    canonical = run(history, advocate, rules)
    shuffled = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history), max_size=6))))
    final = run(shuffled, advocate, rules)
    assert {k: r.amount for k, r in final.items()} == {k: r.amount for k, r in canonical.items()}


@given(st.data(), reward_rules(), advocates())
def test_only_clawback_adjustments_are_negative(
    data: st.DataObject, rules: RewardRules, advocate: AdvocateFacts
) -> None:
    history = data.draw(opportunity_history(1))
    for key, reward in run(data.draw(replayed(history)), advocate, rules).items():
        assert (reward.amount < 0) is key.endswith(":clawback")
        if reward.amount < 0:
            paid = run(history, advocate, rules)[key.removesuffix(":clawback")]
            assert (paid.status, paid.amount) == (PAID, -reward.amount)


# ---------------------------------------------------------------------------------------------------------------
# compile never raises

SECTION_WORDS = [
    "rules",
    "promotions",
    "clawback",
    "name",
    "when",
    "amount",
    "percent",
    "tiers",
    "min",
    "max",
    "type",
    "default_type",
    "approval_above",
    "hold_days",
    "continue",
    "cap_applies",
    "after_promotions",
    "before_promotions",
    "from",
    "to",
    "multiply",
    "add",
    "within_days",
    "adjustment_status",
    "program",
    "channel",
    "equals",
    "in",
    "opportunity.Type",
    "base",
]
yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(SECTION_WORDS)
    | st.dates()
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(SECTION_WORDS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(yaml_values, advocates(), won_facts())
def test_compile_reports_but_never_raises_and_its_rules_decide(
    section: object, advocate: AdvocateFacts, won: WonOpportunityFacts
) -> None:
    problems: list[Problem] = []
    rules = compile_rewards(section, problems)
    assert all(isinstance(p, Problem) and p.path[0] == "rewards" and p.message for p in problems)
    # even best-effort rules from a broken config decide without raising
    for decision in decide_rewards(won, advocate, [], rules, TODAY):
        assert decision.amount > 0
