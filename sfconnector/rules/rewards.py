"""Reward rules: what an advocate earns when a referred opportunity is won, and the clawback when it is not.

Pure decisions: `compile_rewards` turns the parsed YAML `rewards:` section into frozen `RewardRules` (reporting
every problem with its path, never raising); `decide_rewards` and `decide_clawback` turn facts and the reward
records that already exist into `RewardDecision`s for the writer to upsert by `external_key`.

The math of one reward, in this order (the reason line of each decision spells it out):

1. the rule's base: a fixed amount; a percent of the opportunity amount; or the tier picked by the advocate's
   count of successful referrals other than this one (a tier gives an amount or a percent);
2. every active promotion (the won date inside its window, its rules and conditions matching) applies, first
   all multipliers in config order, then all additions in config order, so "x2 then +50" never depends on
   how the YAML lists them;
3. the rule's ``min`` raises and its ``max`` caps the amount after promotions, so a ``max`` is the most the
   rule ever pays (``cap_applies: before_promotions``, on the rule or the section, clamps the base instead,
   before step 2: a x2 promotion then doubles a capped amount);
4. the result is rounded half-up to cents; a result of zero gives no reward.

Replays and reordering. A reward that already exists (any status) is never decided again: a replayed won event
cannot reset a reward an approver moved to Approved, Paid or Rejected, or recompute it with a tier count that
has grown since. A clawback turns unpaid rewards into Rejected and adds one negative adjustment
(``<key>:clawback``) per paid reward; Rejected is final, so a re-won opportunity does not get its clawed-back
reward back automatically (a replay of the old won event would otherwise undo the clawback); finance reviews it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal, Protocol

REWARD_TYPES: tuple[str, ...] = ("Gift Card", "Bill Credit", "Charity", "Commission")
PENDING_APPROVAL = "Pending Approval"
APPROVED = "Approved"
PAID = "Paid"
REJECTED = "Rejected"
REWARD_STATUSES: tuple[str, ...] = (PENDING_APPROVAL, APPROVED, PAID, REJECTED)
ADJUSTMENT_STATUSES: tuple[str, ...] = (APPROVED, PENDING_APPROVAL)

CapApplies = Literal["after_promotions", "before_promotions"]
AFTER_PROMOTIONS: CapApplies = "after_promotions"
BEFORE_PROMOTIONS: CapApplies = "before_promotions"
CAP_APPLIES: tuple[CapApplies, ...] = (AFTER_PROMOTIONS, BEFORE_PROMOTIONS)

CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
MAX_AMOUNT = Decimal(10) ** 12  # amounts and factors stay below: every product far inside Decimal's context
CLAWBACK_SUFFIX = ":clawback"
# Reward__c.External_Key__c holds 120 characters: "reward:" + an 18-character id + ":" + the rule + ":clawback".
RULE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}"
_RULE_NAME = re.compile(f"^{RULE_NAME_PATTERN}$")

PathPart = str | int
ConfigPath = tuple[PathPart, ...]


# ---------------------------------------------------------------------------------------------------------------
# problem reporting (shared with notifications.py)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config section, at `path` below the document root."""

    path: ConfigPath
    message: str
    hint: str | None = None


class ReportProblem(Protocol):
    def __call__(self, path: ConfigPath, message: str, hint: str | None = None, /) -> None: ...


Reporter = ReportProblem | list[Problem]


def as_report(report: Reporter) -> ReportProblem:
    """Accept either a callback or a list to append `Problem`s to."""
    if isinstance(report, list):
        problems = report

        def append(path: ConfigPath, message: str, hint: str | None = None, /) -> None:
            problems.append(Problem(path, message, hint))

        return append
    return report


def did_you_mean(word: str, choices: Collection[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(sorted(choices)) if choices else None


def check_keys(
    data: Mapping[Any, Any], allowed: Collection[str], path: ConfigPath, report: ReportProblem
) -> None:
    for key in data:
        if key not in allowed:
            report((*path, str(key)), f"unknown key '{key}'", did_you_mean(str(key), allowed))


# ---------------------------------------------------------------------------------------------------------------
# conditions: a tiny form shared by rules and promotions: `when: {field: value}` (equals) or `{field: [a, b]}` (in)

CONDITION_FIELDS: tuple[str, ...] = (
    "program",
    "channel",
    "stage",
    "advocate.status",
    "advocate.preferred_reward",
)


def normalize_value(value: object) -> str | None:
    """Compare config and Salesforce values alike: case and surrounding spaces ignored, 100 == 100.0."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        try:
            return format(Decimal(str(value)).normalize(), "f")
        except InvalidOperation:
            return str(value)
    return str(value).strip().casefold()


@dataclass(frozen=True)
class Condition:
    """`field` equals one of `values` (normalized); `field` is a name in CONDITION_FIELDS or `opportunity.X`."""

    field: str
    values: frozenset[str]
    shown: tuple[str, ...] = dataclasses.field(
        default=(), compare=False
    )  # the values as the config wrote them

    def matches(self, lookup: Callable[[str], object]) -> bool:
        return normalize_value(lookup(self.field)) in self.values


def compile_conditions(
    data: object,
    path: ConfigPath,
    report: ReportProblem,
    opportunity_fields: Collection[str] | None = None,
    advocate_fields: Collection[str] | None = None,
) -> tuple[Condition, ...]:
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        report(
            path,
            "conditions must be a mapping of field to value or list of values",
            "e.g. when: {program: Partner}",
        )
        return ()
    conditions: list[Condition] = []
    for name, raw in data.items():
        here = (*path, str(name))
        if not _condition_field_ok(str(name), here, report, opportunity_fields, advocate_fields):
            continue
        if isinstance(raw, Mapping):
            check_keys(raw, ("equals", "in"), here, report)
            if len(raw) != 1:
                report(here, "give exactly one of 'equals' or 'in'", None)
                continue
            raw = raw.get("equals", raw.get("in"))
        items = list(raw) if isinstance(raw, list | tuple) else [raw]
        if not items:
            report(
                here, "empty list of values never matches", "remove the condition or list at least one value"
            )
            continue
        values: set[str] = set()
        shown: list[str] = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping | list):
                report(
                    (*here, i) if len(items) > 1 else here, "a condition value must be a plain value", None
                )
                continue
            norm = normalize_value(item)
            values.add("" if norm is None else norm)
            shown.append(repr(item) if isinstance(item, str) else str(item))
        conditions.append(Condition(str(name), frozenset(values), tuple(shown)))
    return tuple(conditions)


def _condition_field_ok(
    name: str,
    path: ConfigPath,
    report: ReportProblem,
    opportunity_fields: Collection[str] | None,
    advocate_fields: Collection[str] | None,
) -> bool:
    if name in CONDITION_FIELDS:
        return True
    prefix, _, rest = name.partition(".")
    if prefix in ("opportunity", "advocate") and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", rest):
        known = opportunity_fields if prefix == "opportunity" else advocate_fields
        if known is None or rest in known:
            return True
        report(path, f"unknown {prefix} field '{rest}'", did_you_mean(rest, known))
        return False
    report(
        path,
        f"unknown condition field '{name}'",
        did_you_mean(name, CONDITION_FIELDS)
        or "use program, channel, stage, advocate.<Field> or opportunity.<Field>",
    )
    return False


# ---------------------------------------------------------------------------------------------------------------
# facts and records


@dataclass(frozen=True)
class WonOpportunityFacts:
    """An opportunity as its change event (or a reconciliation query) shows it.

    `won_on` is the day it was marked won (the change event's commit date); it dates promotions and the hold
    period so a replay next month decides exactly as today. `fields` holds other opportunity fields by API name
    for `opportunity.<Field>` conditions.
    """

    opportunity_id: str
    amount: Decimal | None
    stage: str
    is_won: bool
    close_date: date | None = None
    won_on: date | None = None
    referral_id: str | None = None
    referral_channel: str | None = None
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class AdvocateFacts:
    """The advocate as rewards need it.

    `successful_referrals` counts the advocate's won referrals *other than this opportunity's* (tiers are by
    the count before this one; since an existing reward is never recomputed, later growth does not matter).
    """

    id: str
    program: str | None = None
    preferred_reward: str | None = None
    successful_referrals: int = 0
    status: str | None = None
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ExistingReward:
    """A Reward__c already in Salesforce (or already decided and waiting in the outbox)."""

    external_key: str
    opportunity_id: str
    advocate_id: str
    rule: str
    amount: Decimal
    status: str
    type: str | None = None
    referral_id: str | None = None
    payable_on: date | None = None

    @property
    def is_adjustment(self) -> bool:
        return self.external_key.endswith(CLAWBACK_SUFFIX)


@dataclass(frozen=True)
class OpportunityReversalFacts:
    """A won opportunity was reopened or lost: `won_on` is when it had been won, `reversed_on` when it changed."""

    opportunity_id: str
    kind: Literal["lost", "reopened"]
    won_on: date
    reversed_on: date


RewardAction = Literal["create", "reject", "adjust"]


@dataclass(frozen=True)
class RewardDecision:
    """One Reward__c to upsert by `external_key`.

    `action` tells the writer how much to write: "create" a new reward, "reject" an existing one (write only
    its status, leaving any amount an approver edited alone), "adjust" with a new negative adjustment reward.
    """

    external_key: str
    action: RewardAction
    opportunity_id: str
    advocate_id: str
    referral_id: str | None
    rule: str
    amount: Decimal
    type: str
    status: str
    payable_on: date | None
    reason: str


def reward_key(opportunity_id: str, rule: str) -> str:
    return f"reward:{opportunity_id}:{rule}"


# ---------------------------------------------------------------------------------------------------------------
# compiled rules


@dataclass(frozen=True)
class Tier:
    """Successful referrals from `low` to `high` inclusive (`high` None: and up) earn `amount` or `percent`."""

    low: int
    high: int | None
    amount: Decimal | None = None
    percent: Decimal | None = None

    def label(self) -> str:
        return f"{self.low}+" if self.high is None else f"{self.low}-{self.high}"


RuleKind = Literal["fixed", "percent", "tiered"]


@dataclass(frozen=True)
class RewardRule:
    name: str
    kind: RuleKind
    amount: Decimal | None = None
    percent: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    conditions: tuple[Condition, ...] = ()
    reward_type: str | None = None  # None: the advocate's preference, else `default_type`
    default_type: str | None = None
    approval_above: Decimal | None = None
    hold_days: int | None = None  # None: the section's hold_days
    continue_matching: bool = False  # also evaluate the rules after this one when it matches
    cap_applies: CapApplies | None = None  # None: the section's cap_applies


@dataclass(frozen=True)
class Promotion:
    name: str
    starts: date
    ends: date
    multiply: Decimal | None = None
    add: Decimal | None = None
    rules: frozenset[str] = frozenset()  # empty: every rule
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class ClawbackPolicy:
    within_days: int
    adjustment_status: str = APPROVED


@dataclass(frozen=True)
class RewardRules:
    """The compiled `rewards:` section. Rules are tried in order; the first match wins unless it says `continue`."""

    rules: tuple[RewardRule, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    clawback: ClawbackPolicy | None = None
    default_type: str = "Gift Card"
    approval_above: Decimal | None = None
    hold_days: int = 0
    cap_applies: CapApplies = AFTER_PROMOTIONS  # where min and max apply, for rules that do not say

    def cap_applies_to(self, rule: RewardRule) -> CapApplies:
        return rule.cap_applies if rule.cap_applies is not None else self.cap_applies


SECTION_KEYS: tuple[str, ...] = (
    "default_type",
    "approval_above",
    "hold_days",
    "cap_applies",
    "rules",
    "promotions",
    "clawback",
)
RULE_KEYS: tuple[str, ...] = (
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
)
TIER_KEYS: tuple[str, ...] = ("from", "to", "amount", "percent")
PROMOTION_KEYS: tuple[str, ...] = ("name", "from", "to", "multiply", "add", "rules", "when")
CLAWBACK_KEYS: tuple[str, ...] = ("within_days", "adjustment_status")


def _decimal(
    value: object, path: ConfigPath, report: ReportProblem, *, positive: bool = False
) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        report(path, f"expected a number, got {type(value).__name__}", None)
        return None
    try:
        number = (
            Decimal(str(value).strip().replace(",", "")) if isinstance(value, str) else Decimal(str(value))
        )
    except InvalidOperation:
        report(path, f"expected a number, got '{value}'", None)
        return None
    if not number.is_finite():
        report(path, "expected a finite number", None)
        return None
    if number < 0 or (positive and number == 0):
        report(path, f"must be {'greater than' if positive else 'at least'} 0, got {number}", None)
        return None
    if number >= MAX_AMOUNT:
        report(path, f"{number} is too large", "amounts and factors stay below 1,000,000,000,000")
        return None
    return number


def _percent_value(value: object, path: ConfigPath, report: ReportProblem) -> Decimal | None:
    percent = _decimal(value, path, report, positive=True)
    if percent is not None and percent > _HUNDRED:
        report(path, f"{percent}% is more than the whole opportunity amount", "write 10 for 10%")
        return None
    return percent


def _int(value: object, path: ConfigPath, report: ReportProblem, most: int = 1_000_000) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        report(path, f"expected a whole number of at least 0, got {value!r}", None)
        return None
    if value > most:
        report(path, f"{value} is too large", f"at most {most}")
        return None
    return value


MAX_DAYS = 3660  # ten years: longer holds or windows are typos, and dates must stay representable


def _date(value: object, path: ConfigPath, report: ReportProblem) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    report(path, f"expected a date, got {value!r}", "write it as YYYY-MM-DD")
    return None


def _cap_applies(value: object, path: ConfigPath, report: ReportProblem) -> CapApplies | None:
    for choice in CAP_APPLIES:
        if value == choice:
            return choice
    if isinstance(value, str):
        report(path, f"unknown cap_applies {value!r}", did_you_mean(value, CAP_APPLIES))
    else:
        report(
            path,
            f"cap_applies must be {AFTER_PROMOTIONS} or {BEFORE_PROMOTIONS}, not {value!r}",
            f"{AFTER_PROMOTIONS}: min and max bound the final amount; {BEFORE_PROMOTIONS}: the base",
        )
    return None


def _reward_type(value: object, path: ConfigPath, report: ReportProblem) -> str | None:
    canonical = _canonical_type(value)
    if canonical is None:
        report(path, f"unknown reward type {value!r}", did_you_mean(str(value), REWARD_TYPES))
    return canonical


def _canonical_type(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    wanted = value.strip().casefold()
    return next((t for t in REWARD_TYPES if t.casefold() == wanted), None)


def compile_rewards(
    data: object,
    report: Reporter,
    path: ConfigPath = ("rewards",),
    *,
    opportunity_fields: Collection[str] | None = None,
    advocate_fields: Collection[str] | None = None,
) -> RewardRules:
    """Compile the parsed `rewards:` section; every problem goes to `report`, nothing raises.

    `opportunity_fields`/`advocate_fields`, when given, are the known API names `opportunity.X` and
    `advocate.X` conditions may name. With problems reported, the returned rules are best-effort and must not
    be used to start the daemon.
    """
    rep = as_report(report)
    if data is None:
        return RewardRules()
    if not isinstance(data, Mapping):
        rep(path, "the rewards section must be a mapping", "see connector.yaml.example")
        return RewardRules()
    check_keys(data, SECTION_KEYS, path, rep)
    default_type = "Gift Card"
    if "default_type" in data:
        default_type = _reward_type(data["default_type"], (*path, "default_type"), rep) or default_type
    approval_above = None
    if data.get("approval_above") is not None:
        approval_above = _decimal(data["approval_above"], (*path, "approval_above"), rep)
    hold_days = 0
    if data.get("hold_days") is not None:
        hold_days = _int(data["hold_days"], (*path, "hold_days"), rep, MAX_DAYS) or 0
    cap_applies = AFTER_PROMOTIONS
    if "cap_applies" in data:
        cap_applies = _cap_applies(data["cap_applies"], (*path, "cap_applies"), rep) or cap_applies

    fields = {"opportunity_fields": opportunity_fields, "advocate_fields": advocate_fields}
    rules: list[RewardRule] = []
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        rep((*path, "rules"), "rules must be a list", None)
        raw_rules = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        rule = _compile_rule(raw, (*path, "rules", i), rep, fields)
        if rule is None:
            continue
        if rule.name in seen:
            rep(
                (*path, "rules", i, "name"),
                f"duplicate rule name '{rule.name}'",
                "rule names key the rewards",
            )
            continue
        seen.add(rule.name)
        rules.append(rule)

    promotions: list[Promotion] = []
    raw_promotions = data.get("promotions") or []
    if not isinstance(raw_promotions, list):
        rep((*path, "promotions"), "promotions must be a list", None)
        raw_promotions = []
    for i, raw in enumerate(raw_promotions):
        promotion = _compile_promotion(raw, (*path, "promotions", i), rep, seen, fields)
        if promotion is not None:
            promotions.append(promotion)

    clawback = None
    if data.get("clawback") is not None:
        clawback = _compile_clawback(data["clawback"], (*path, "clawback"), rep)
    return RewardRules(
        rules=tuple(rules),
        promotions=tuple(promotions),
        clawback=clawback,
        default_type=default_type,
        approval_above=approval_above,
        hold_days=hold_days,
        cap_applies=cap_applies,
    )


def _name(raw: Mapping[Any, Any], path: ConfigPath, report: ReportProblem, what: str) -> str | None:
    name = raw.get("name")
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        report(
            (*path, "name"),
            f"every {what} needs a name" if name is None else f"bad {what} name {name!r}",
            "letters, digits, spaces, '_', '.', '-', at most 64 characters (it goes into External_Key__c)",
        )
        return None
    return name


def _compile_rule(
    raw: object, path: ConfigPath, report: ReportProblem, fields: Mapping[str, Collection[str] | None]
) -> RewardRule | None:
    if not isinstance(raw, Mapping):
        report(path, "a reward rule must be a mapping", "e.g. {name: base, amount: 100}")
        return None
    check_keys(raw, RULE_KEYS, path, report)
    name = _name(raw, path, report, "reward rule")
    kinds = [k for k in ("amount", "percent", "tiers") if k in raw]
    if len(kinds) != 1:
        report(
            path,
            "a reward rule needs exactly one of 'amount', 'percent' or 'tiers'"
            + (f" (has {', '.join(kinds)})" if kinds else ""),
            None,
        )
        return None
    ok = name is not None
    amount = percent = None
    tiers: tuple[Tier, ...] = ()
    kind: RuleKind
    if kinds[0] == "amount":
        kind = "fixed"
        amount = _decimal(raw["amount"], (*path, "amount"), report, positive=True)
        ok = ok and amount is not None
        for extra in ("min", "max", "cap_applies"):
            if extra in raw:
                report(
                    (*path, extra),
                    f"'{extra}' only applies to percent and tiered rules",
                    "a fixed amount has no min or max; write the amount you mean",
                )
                ok = False
    elif kinds[0] == "percent":
        kind = "percent"
        percent = _percent_value(raw["percent"], (*path, "percent"), report)
        ok = ok and percent is not None
    else:
        kind = "tiered"
        compiled = _compile_tiers(raw["tiers"], (*path, "tiers"), report)
        ok = ok and compiled is not None
        tiers = compiled or ()
    minimum = maximum = None
    cap_applies: CapApplies | None = None
    if kind != "fixed":
        if "cap_applies" in raw:
            cap_applies = _cap_applies(raw["cap_applies"], (*path, "cap_applies"), report)
            ok = ok and cap_applies is not None
        if raw.get("min") is not None:
            minimum = _decimal(raw["min"], (*path, "min"), report)
            ok = ok and minimum is not None
        if raw.get("max") is not None:
            maximum = _decimal(raw["max"], (*path, "max"), report, positive=True)
            ok = ok and maximum is not None
        if minimum is not None and maximum is not None and minimum > maximum:
            report((*path, "min"), f"min {minimum} is above max {maximum}", None)
            ok = False
    reward_type = None
    raw_type = raw.get("type", "preferred")
    if not (isinstance(raw_type, str) and raw_type.strip().casefold() == "preferred"):
        reward_type = _reward_type(raw_type, (*path, "type"), report)
        ok = ok and reward_type is not None
    default_type = None
    if raw.get("default_type") is not None:
        default_type = _reward_type(raw["default_type"], (*path, "default_type"), report)
        ok = ok and default_type is not None
    approval_above = None
    if raw.get("approval_above") is not None:
        approval_above = _decimal(raw["approval_above"], (*path, "approval_above"), report)
        ok = ok and approval_above is not None
    hold_days = None
    if raw.get("hold_days") is not None:
        hold_days = _int(raw["hold_days"], (*path, "hold_days"), report, MAX_DAYS)
        ok = ok and hold_days is not None
    continue_matching = raw.get("continue", False)
    if not isinstance(continue_matching, bool):
        report((*path, "continue"), "expected true or false", None)
        ok = False
    conditions = compile_conditions(raw.get("when"), (*path, "when"), report, **fields)
    if not ok or name is None:
        return None
    return RewardRule(
        name=name,
        kind=kind,
        amount=amount,
        percent=percent,
        tiers=tiers,
        minimum=minimum,
        maximum=maximum,
        conditions=conditions,
        reward_type=reward_type,
        default_type=default_type,
        approval_above=approval_above,
        hold_days=hold_days,
        continue_matching=bool(continue_matching),
        cap_applies=cap_applies,
    )


def _compile_tiers(raw: object, path: ConfigPath, report: ReportProblem) -> tuple[Tier, ...] | None:
    if not isinstance(raw, list) or not raw:
        report(
            path,
            "tiers must be a non-empty list",
            "e.g. [{from: 0, to: 4, amount: 100}, {from: 5, amount: 150}]",
        )
        return None
    tiers: list[Tier] = []
    ok = True
    for i, item in enumerate(raw):
        here = (*path, i)
        if not isinstance(item, Mapping):
            report(here, "a tier must be a mapping", "e.g. {from: 0, to: 4, amount: 100}")
            ok = False
            continue
        check_keys(item, TIER_KEYS, here, report)
        low = _int(item.get("from"), (*here, "from"), report)
        high = None if item.get("to") is None else _int(item["to"], (*here, "to"), report)
        if ("amount" in item) == ("percent" in item):
            report(here, "a tier needs exactly one of 'amount' or 'percent'", None)
            ok = False
            continue
        amount = percent = None
        if "amount" in item:
            amount = _decimal(item["amount"], (*here, "amount"), report, positive=True)
        else:
            percent = _percent_value(item["percent"], (*here, "percent"), report)
        if (
            low is None
            or (item.get("to") is not None and high is None)
            or (amount is None and percent is None)
        ):
            ok = False
            continue
        if high is not None and high < low:
            report((*here, "to"), f"'to' {high} is below 'from' {low}", None)
            ok = False
            continue
        tiers.append(Tier(low, high, amount, percent))
    if not ok:
        return None
    expected = 0
    for i, tier in enumerate(tiers):
        if tier.low != expected:
            gap = (
                "overlaps the previous tier"
                if tier.low < expected
                else f"leaves {expected}-{tier.low - 1} uncovered"
            )
            report((*path, i, "from"), f"tier starting at {tier.low} {gap}", f"start it at {expected}")
            return None
        if tier.high is None:
            if i != len(tiers) - 1:
                report((*path, i, "to"), "only the last tier may be open-ended", None)
                return None
            break
        expected = tier.high + 1
    return tuple(tiers)


def _compile_promotion(
    raw: object,
    path: ConfigPath,
    report: ReportProblem,
    rule_names: Collection[str],
    fields: Mapping[str, Collection[str] | None],
) -> Promotion | None:
    if not isinstance(raw, Mapping):
        report(
            path,
            "a promotion must be a mapping",
            "e.g. {name: Double December, from: ..., to: ..., multiply: 2}",
        )
        return None
    check_keys(raw, PROMOTION_KEYS, path, report)
    name = _name(raw, path, report, "promotion")
    starts = _date(raw.get("from"), (*path, "from"), report)
    ends = _date(raw.get("to"), (*path, "to"), report)
    ok = name is not None and starts is not None and ends is not None
    if starts is not None and ends is not None and ends < starts:
        report((*path, "to"), f"the promotion ends ({ends}) before it starts ({starts})", None)
        ok = False
    if ("multiply" in raw) == ("add" in raw):
        report(path, "a promotion needs exactly one of 'multiply' or 'add'", None)
        return None
    multiply = add = None
    if "multiply" in raw:
        multiply = _decimal(raw["multiply"], (*path, "multiply"), report, positive=True)
        ok = ok and multiply is not None
    else:
        add = _decimal(raw["add"], (*path, "add"), report, positive=True)
        ok = ok and add is not None
    applies_to: set[str] = set()
    raw_rules = raw.get("rules") or []
    if not isinstance(raw_rules, list):
        raw_rules = [raw_rules]
    for i, rule in enumerate(raw_rules):
        if not isinstance(rule, str) or rule not in rule_names:
            report((*path, "rules", i), f"no reward rule named {rule!r}", did_you_mean(str(rule), rule_names))
            ok = False
        else:
            applies_to.add(rule)
    conditions = compile_conditions(raw.get("when"), (*path, "when"), report, **fields)
    if not ok or name is None or starts is None or ends is None:
        return None
    return Promotion(name, starts, ends, multiply, add, frozenset(applies_to), conditions)


def _compile_clawback(raw: object, path: ConfigPath, report: ReportProblem) -> ClawbackPolicy | None:
    if not isinstance(raw, Mapping):
        report(path, "clawback must be a mapping", "e.g. clawback: {within_days: 90}")
        return None
    check_keys(raw, CLAWBACK_KEYS, path, report)
    within = _int(raw.get("within_days"), (*path, "within_days"), report, MAX_DAYS)
    status = raw.get("adjustment_status", APPROVED)
    if status not in ADJUSTMENT_STATUSES:
        report(
            (*path, "adjustment_status"),
            f"bad status {status!r}",
            f"use '{APPROVED}' or '{PENDING_APPROVAL}'",
        )
        return None
    return None if within is None else ClawbackPolicy(within, status)


# ---------------------------------------------------------------------------------------------------------------
# decisions


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def _percent(value: Decimal) -> str:
    return format(value.normalize(), "f") + "%"


def _factor(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _lookup(won: WonOpportunityFacts, advocate: AdvocateFacts) -> Callable[[str], object]:
    def lookup(name: str) -> object:
        if name == "program":
            return advocate.program
        if name == "channel":
            return won.referral_channel
        if name == "stage":
            return won.stage
        if name == "advocate.status":
            return advocate.status
        if name == "advocate.preferred_reward":
            return advocate.preferred_reward
        prefix, _, rest = name.partition(".")
        source = won.fields if prefix == "opportunity" else advocate.fields
        return source.get(rest)

    return lookup


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule fared for an opportunity (for `sfconnector explain`)."""

    rule: str
    matched: bool
    decision: RewardDecision | None
    reason: str


def explain_rewards(
    won: WonOpportunityFacts,
    advocate: AdvocateFacts,
    existing: Sequence[ExistingReward],
    rules: RewardRules,
    today: date,
) -> list[RuleOutcome]:
    """Every rule in order: whether it matched, and the decision or why there is none."""
    if not won.is_won:
        return [
            RuleOutcome(r.name, False, None, f"opportunity is not won (stage {won.stage})")
            for r in rules.rules
        ]
    won_on = won.won_on or won.close_date or today
    existing_keys = {reward.external_key for reward in existing}
    lookup = _lookup(won, advocate)
    outcomes: list[RuleOutcome] = []
    stopped_by: str | None = None
    for rule in rules.rules:
        if stopped_by is not None:
            outcomes.append(
                RuleOutcome(rule.name, False, None, f"not tried: rule '{stopped_by}' matched first")
            )
            continue
        failed = next((c for c in rule.conditions if not c.matches(lookup)), None)
        if failed is not None:
            actual = lookup(failed.field)
            wanted = " or ".join(failed.shown or sorted(failed.values))
            outcomes.append(
                RuleOutcome(rule.name, False, None, f"{failed.field} is {actual!r}, not {wanted}")
            )
            continue
        if not rule.continue_matching:
            stopped_by = rule.name
        key = reward_key(won.opportunity_id, rule.name)
        if key in existing_keys:
            outcomes.append(
                RuleOutcome(rule.name, True, None, f"reward {key} already exists; not decided again")
            )
            continue
        amount, reason = _amount(rule, won, advocate, rules, won_on, lookup)
        if amount <= 0:
            outcomes.append(RuleOutcome(rule.name, True, None, f"{reason}: nothing to reward"))
            continue
        threshold = rule.approval_above if rule.approval_above is not None else rules.approval_above
        status = APPROVED
        if threshold is not None and amount > threshold:
            status = PENDING_APPROVAL
            reason += f"; above approval threshold {money(threshold)}: {PENDING_APPROVAL}"
        hold = rule.hold_days if rule.hold_days is not None else rules.hold_days
        payable_on = won_on + timedelta(days=hold)
        if hold:
            reason += f"; payable on {payable_on.isoformat()} after a {hold}-day hold"
        decision = RewardDecision(
            external_key=key,
            action="create",
            opportunity_id=won.opportunity_id,
            advocate_id=advocate.id,
            referral_id=won.referral_id,
            rule=rule.name,
            amount=amount,
            type=_type_for(rule, advocate, rules),
            status=status,
            payable_on=payable_on,
            reason=reason,
        )
        outcomes.append(RuleOutcome(rule.name, True, decision, reason))
    return outcomes


def decide_rewards(
    won: WonOpportunityFacts,
    advocate: AdvocateFacts,
    existing: Sequence[ExistingReward],
    rules: RewardRules,
    today: date,
) -> list[RewardDecision]:
    """The rewards to create for a won opportunity: one per matching rule without a reward yet.

    `today` only dates an opportunity whose facts carry neither `won_on` nor `close_date`.
    """
    return [
        o.decision for o in explain_rewards(won, advocate, existing, rules, today) if o.decision is not None
    ]


def _type_for(rule: RewardRule, advocate: AdvocateFacts, rules: RewardRules) -> str:
    if rule.reward_type is not None:
        return rule.reward_type
    return _canonical_type(advocate.preferred_reward) or rule.default_type or rules.default_type


def _amount(
    rule: RewardRule,
    won: WonOpportunityFacts,
    advocate: AdvocateFacts,
    rules: RewardRules,
    won_on: date,
    lookup: Callable[[str], object],
) -> tuple[Decimal, str]:
    """The amount of `rule` for this win, and the reason: each step in the order it was applied."""
    # A missing or negative opportunity amount counts as zero so a reward can never turn negative.
    base_amount = won.amount if won.amount is not None and won.amount > 0 else Decimal(0)
    percent: Decimal | None
    if rule.kind == "fixed":
        value = rule.amount if rule.amount is not None else Decimal(0)
        reason = f"fixed {money(value)}"
        percent = None
    else:
        percent = rule.percent
        value = Decimal(0)
        reason = ""
        if rule.kind == "tiered":
            count = max(advocate.successful_referrals, 0)
            tier = next(t for t in reversed(rule.tiers) if t.low <= count)
            reason = f"tier {tier.label()} ({count} successful referrals): "
            percent = tier.percent
            if tier.amount is not None:
                value = tier.amount
                reason += money(value)
        if percent is not None:
            value = base_amount * percent / _HUNDRED
            reason += f"{_percent(percent)} of {money(base_amount)} = {money(value)}"
    active = [
        p
        for p in rules.promotions
        if p.starts <= won_on <= p.ends
        and (not p.rules or rule.name in p.rules)
        and all(c.matches(lookup) for c in p.conditions)
    ]
    before = rules.cap_applies_to(rule) == BEFORE_PROMOTIONS
    if before:
        # Where min and max apply matters only when a promotion changes the amount: then the reason says so.
        value, reason = _bounded(rule, value, reason, ", ", " before promotions" if active else "")
    for promotion in active:
        if promotion.multiply is not None:
            value *= promotion.multiply
            reason += f"; promotion '{promotion.name}' x{_factor(promotion.multiply)} = {money(value)}"
    for promotion in active:
        if promotion.add is not None:
            value += promotion.add
            reason += f"; promotion '{promotion.name}' +{money(promotion.add)} = {money(value)}"
    if not before:
        value, reason = _bounded(
            rule, value, reason, "; " if active else ", ", " after promotions" if active else ""
        )
    return value.quantize(CENT, rounding=ROUND_HALF_UP), reason


def _bounded(rule: RewardRule, value: Decimal, reason: str, sep: str, when: str) -> tuple[Decimal, str]:
    """`value` raised to the rule's min and capped at its max, with the reason extended to say so."""
    if rule.minimum is not None and value < rule.minimum:
        value = rule.minimum
        reason += f"{sep}raised to minimum {money(value)}{when}"
    if rule.maximum is not None and value > rule.maximum:
        value = rule.maximum
        reason += f"{sep}capped at {money(value)}{when}"
    return value, reason


def decide_clawback(
    reversal: OpportunityReversalFacts,
    existing: Sequence[ExistingReward],
    rules: RewardRules,
) -> list[RewardDecision]:
    """Take back the rewards of an opportunity reopened or lost within the clawback window.

    Unpaid rewards (Pending Approval, Approved) become Rejected; each Paid reward gets one negative adjustment
    reward keyed `<its key>:clawback`, status per the policy (Approved by default, so it nets against the balance).
    Rejected rewards and adjustments are left alone, so replays add nothing.
    """
    policy = rules.clawback
    if policy is None:
        return []
    days = max((reversal.reversed_on - reversal.won_on).days, 0)
    if days > policy.within_days:
        return []
    existing_keys = {reward.external_key for reward in existing}
    prefix = f"reward:{reversal.opportunity_id}:"
    why = f"opportunity {reversal.kind} on {reversal.reversed_on.isoformat()}, {days} days after it was won"
    decisions: list[RewardDecision] = []
    for reward in sorted(existing, key=lambda r: r.external_key):
        if reward.is_adjustment or not reward.external_key.startswith(prefix):
            continue
        if reward.status in (PENDING_APPROVAL, APPROVED):
            decisions.append(
                _from_existing(
                    reward,
                    rules,
                    action="reject",
                    key=reward.external_key,
                    amount=reward.amount,
                    status=REJECTED,
                    payable_on=reward.payable_on,
                    reason=f"{why} (clawback window {policy.within_days} days): unpaid reward rejected",
                )
            )
        elif reward.status == PAID and reward.external_key + CLAWBACK_SUFFIX not in existing_keys:
            decisions.append(
                _from_existing(
                    reward,
                    rules,
                    action="adjust",
                    key=reward.external_key + CLAWBACK_SUFFIX,
                    amount=-reward.amount,
                    status=policy.adjustment_status,
                    payable_on=reversal.reversed_on,
                    reason=(
                        f"{why} (clawback window {policy.within_days} days): paid reward {money(reward.amount)}"
                        f" taken back by adjustment {money(-reward.amount)}"
                    ),
                )
            )
    return decisions


def _from_existing(
    reward: ExistingReward,
    rules: RewardRules,
    *,
    action: RewardAction,
    key: str,
    amount: Decimal,
    status: str,
    payable_on: date | None,
    reason: str,
) -> RewardDecision:
    return RewardDecision(
        external_key=key,
        action=action,
        opportunity_id=reward.opportunity_id,
        advocate_id=reward.advocate_id,
        referral_id=reward.referral_id,
        rule=reward.rule,
        amount=amount,
        type=reward.type or rules.default_type,
        status=status,
        payable_on=payable_on,
        reason=reason,
    )
