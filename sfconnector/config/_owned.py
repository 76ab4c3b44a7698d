"""The JSON Schema of the sections whose compilers live in `sfconnector/rules/` (rewards, notifications).

Those sections are checked by their own compilers (`compile_rewards`, `compile_notifications`), which report
every problem by path; the loader places each at its file:line:col. So the loader's first pass lets their
values through unchanged, and this module only *describes* them for `sfconnector schema`: properties, types,
enums, patterns and descriptions, so an editor completes and checks them.

To keep the description from drifting, it is built from the compilers' own tables (the keys each mapping
allows, reward types, statuses, `cap_applies` values, events and placeholders), and tests check that the
shipped rules, the documented examples and every section the compiler accepts conform, while bad examples do
not. The schema asks for the canonical spelling of a reward type; the compiler also accepts other cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sfconnector.config._spec import Ctx, Spec
from sfconnector.config._yaml import Loc
from sfconnector.rules.notifications import (
    ADVOCATE_EVENTS,
    DEFAULT_ADVOCATE_EVENTS,
    PLACEHOLDERS,
    REFERRAL_PLACEHOLDERS,
    REP_TASK_EVENTS,
    REWARD_EVENTS,
)
from sfconnector.rules.rewards import (
    ADJUSTMENT_STATUSES,
    AFTER_PROMOTIONS,
    BEFORE_PROMOTIONS,
    CAP_APPLIES,
    CLAWBACK_KEYS,
    CONDITION_FIELDS,
    MAX_AMOUNT,
    MAX_DAYS,
    PROMOTION_KEYS,
    REWARD_TYPES,
    RULE_KEYS,
    RULE_NAME_PATTERN,
    SECTION_KEYS,
    TIER_KEYS,
)

JsonSchema = dict[str, Any]


class OwnedSection(Spec):
    """A section checked by its compiler in `sfconnector/rules/`; here its value passes as is."""

    def __init__(self, description: str, schema: Callable[[dict[str, Any]], JsonSchema]) -> None:
        self.description = description
        self.expects = "a mapping"
        self._schema = schema

    def default(self) -> Any:
        return None

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return self._described({"anyOf": [self._schema(defs), {"type": "null"}]})


def _obj(
    properties: dict[str, JsonSchema], allowed: Iterable[str], *, required: Iterable[str] = ()
) -> JsonSchema:
    """An object with exactly the keys the compiler allows (a key described here but not allowed is a bug)."""
    allowed = tuple(allowed)
    if set(properties) != set(allowed):
        raise ValueError(f"schema keys {sorted(properties)} differ from the compiler's {sorted(allowed)}")
    schema: JsonSchema = {
        "type": "object",
        "properties": {key: properties[key] for key in allowed},
        "additionalProperties": False,
    }
    if tuple(required):
        schema["required"] = list(required)
    return schema


def _nullable(schema: JsonSchema) -> JsonSchema:
    return {"anyOf": [schema, {"type": "null"}]}


_DECIMAL_TEXT = r"^\s*[0-9][0-9,]*(\.[0-9]+)?\s*$"


def _number(description: str, *, positive: bool = False, most: float | None = None) -> JsonSchema:
    """A number, or text such as "1,000.50" (the compiler reads both)."""
    number: JsonSchema = {"type": "number"}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    if most is not None:
        number["maximum"] = most
    else:
        number["exclusiveMaximum"] = float(MAX_AMOUNT)
    return {
        "description": description,
        "anyOf": [number, {"type": "string", "pattern": _DECIMAL_TEXT}],
    }


def _days(description: str) -> JsonSchema:
    return {"description": description, "type": "integer", "minimum": 0, "maximum": MAX_DAYS}


_SCALAR: JsonSchema = {"type": ["string", "number", "boolean"]}


def _reward_condition(defs: dict[str, Any]) -> JsonSchema:
    if "reward_condition" not in defs:
        value: JsonSchema = {
            "anyOf": [
                _SCALAR,
                {"type": "array", "items": _SCALAR, "minItems": 1},
                {
                    "type": "object",
                    "properties": {
                        "equals": _SCALAR,
                        "in": {"type": "array", "items": _SCALAR, "minItems": 1},
                    },
                    "additionalProperties": False,
                    "minProperties": 1,
                    "maxProperties": 1,
                },
            ]
        }
        defs["reward_condition"] = {
            "description": (
                "every key must hold: a value means equals, a list means any of them, or {equals} / {in};"
                " text compares ignoring case"
            ),
            "type": "object",
            "properties": {name: value for name in CONDITION_FIELDS},
            "patternProperties": {r"^(opportunity|advocate)\.[A-Za-z][A-Za-z0-9_]*$": value},
            "additionalProperties": False,
        }
    return _nullable({"$ref": "#/$defs/reward_condition"})


def _cap_applies(where: str) -> JsonSchema:
    return {
        "description": (
            f"where min and max apply{where}: {AFTER_PROMOTIONS} (default) bounds the final amount, so max is"
            f" the most paid even inside a promotion; {BEFORE_PROMOTIONS} bounds the base, which promotions"
            " then multiply and add to"
        ),
        "type": "string",
        "enum": list(CAP_APPLIES),
    }


def _reward_type(description: str, *, preferred: bool = False) -> JsonSchema:
    return {
        "description": description,
        "type": "string",
        "enum": [*REWARD_TYPES, *(["preferred"] if preferred else [])],
    }


_NAME: JsonSchema = {
    "type": "string",
    "pattern": f"^(?:{RULE_NAME_PATTERN})$",
    "description": "letters, digits, spaces, _ . - (up to 64); it goes into Reward__c.External_Key__c",
}


def _tier() -> JsonSchema:
    schema = _obj(
        {
            "from": {
                "description": "successful referrals from (inclusive); the first tier starts at 0",
                "type": "integer",
                "minimum": 0,
                "maximum": 1_000_000,
            },
            "to": _nullable(
                {
                    "description": "successful referrals up to (inclusive); absent: and more (last tier only)",
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 1_000_000,
                }
            ),
            "amount": _number("a fixed amount for this tier", positive=True),
            "percent": _number("a percent of the opportunity amount for this tier", positive=True, most=100),
        },
        TIER_KEYS,
        required=["from"],
    )
    schema["oneOf"] = [{"required": ["amount"]}, {"required": ["percent"]}]
    schema["description"] = (
        "by the advocate's successful referrals other than this one (the current win does not count)"
    )
    return schema


def _rule(defs: dict[str, Any]) -> JsonSchema:
    schema = _obj(
        {
            "name": _NAME,
            "when": _reward_condition(defs),
            "amount": _number("a fixed amount", positive=True),
            "percent": _number("a percent of the opportunity's Amount", positive=True, most=100),
            "tiers": {
                "description": "amounts or percents by the advocate's count of earlier successful referrals",
                "type": "array",
                "items": _tier(),
                "minItems": 1,
            },
            "min": _nullable(_number("the least this rule pays (percent and tiered rules)")),
            "max": _nullable(_number("the most this rule pays (percent and tiered rules)", positive=True)),
            "type": _reward_type(
                "the reward type this rule gives (beats the advocate's preference), or preferred (the default):"
                " the advocate's Preferred_Reward__c",
                preferred=True,
            ),
            "default_type": _nullable(
                _reward_type("this rule's type when the advocate has no usable preference")
            ),
            "approval_above": _nullable(
                _number("this rule's approval threshold: above it, Pending Approval (beats the section's)")
            ),
            "hold_days": _nullable(_days("this rule's hold period in days (beats the section's)")),
            "continue": {
                "description": "when this rule matches, try the rules after it too (each gives its own reward)",
                "type": "boolean",
                "default": False,
            },
            "cap_applies": _cap_applies(" for this rule (beats the section's)"),
        },
        RULE_KEYS,
        required=["name"],
    )
    schema["description"] = "a reward rule: exactly one of amount, percent or tiers"
    schema["oneOf"] = [{"required": ["amount"]}, {"required": ["percent"]}, {"required": ["tiers"]}]
    # A fixed amount is neither raised nor capped.
    schema["dependentSchemas"] = {
        "amount": {"not": {"anyOf": [{"required": [k]} for k in ("min", "max", "cap_applies")]}}
    }
    return schema


def _promotion(defs: dict[str, Any]) -> JsonSchema:
    day = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    schema = _obj(
        {
            "name": {
                "type": "string",
                "pattern": f"^(?:{RULE_NAME_PATTERN})$",
                "description": "shown in reasons",
            },
            "from": {
                **day,
                "description": "first day (inclusive), compared with the day the deal was won (UTC)",
            },
            "to": {**day, "description": "last day (inclusive)"},
            "multiply": _number("a factor; every multiplier applies before any addition", positive=True),
            "add": _number("an amount added after every multiplier", positive=True),
            "rules": {
                "description": "only these reward rules (by name); absent: every rule",
                "anyOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string"},
                    {"type": "null"},
                ],
            },
            "when": _reward_condition(defs),
        },
        PROMOTION_KEYS,
        required=["name", "from", "to"],
    )
    schema["description"] = "a time-boxed promotion: exactly one of multiply or add"
    schema["oneOf"] = [{"required": ["multiply"]}, {"required": ["add"]}]
    return schema


def rewards_schema(defs: dict[str, Any]) -> JsonSchema:
    """The `rewards:` section as `compile_rewards` reads it."""
    return _obj(
        {
            "default_type": {
                **_reward_type("the reward type when neither the rule nor the advocate names one"),
                "default": "Gift Card",
            },
            "approval_above": _nullable(
                _number(
                    "rewards above this amount wait for approval (Pending Approval); the rest are Approved"
                )
            ),
            "hold_days": _nullable(_days("days from the win to Payable_On__c (default 0)")),
            "cap_applies": {**_cap_applies(" for every rule that does not say"), "default": AFTER_PROMOTIONS},
            "rules": _nullable(
                {
                    "description": "tried in order; the first whose when holds decides (unless it says continue)",
                    "type": "array",
                    "items": _rule(defs),
                }
            ),
            "promotions": _nullable(
                {
                    "description": "time-boxed multipliers and additions",
                    "type": "array",
                    "items": _promotion(defs),
                }
            ),
            "clawback": _nullable(
                {
                    **_obj(
                        {
                            "within_days": _days(
                                "a won deal reopened or lost within this many days (inclusive) takes its rewards back"
                            ),
                            "adjustment_status": {
                                "description": "status of the negative adjustment of a paid reward",
                                "type": "string",
                                "enum": list(ADJUSTMENT_STATUSES),
                                "default": ADJUSTMENT_STATUSES[0],
                            },
                        },
                        CLAWBACK_KEYS,
                        required=["within_days"],
                    ),
                    "description": "unpaid rewards become Rejected, paid ones get a negative adjustment",
                }
            ),
        },
        SECTION_KEYS,
    )


def _template_pattern(allowed: Iterable[str], *, one_line: bool) -> str:
    names = "|".join(re.escape(name) for name in sorted(allowed))
    text = r"[^{}\n]" if one_line else r"[^{}]"
    body = rf"(?:{text}|\{{\{{|\}}\}}|\{{(?:{names})\}})*"
    not_blank = r"(?=[\s\S]*\S)"
    return rf"^{not_blank}\s*{body}\s*$" if one_line else f"^{not_blank}{body}$"


def _message(event: str) -> JsonSchema:
    allowed = PLACEHOLDERS if event in REWARD_EVENTS else REFERRAL_PLACEHOLDERS
    shown = ", ".join("{" + name + "}" for name in sorted(allowed))
    return {
        "anyOf": [
            {"type": "boolean", "description": "true: the built-in text; false: not sent"},
            {"type": "null"},
            _obj(
                {
                    "subject": {
                        "type": "string",
                        "minLength": 1,
                        "pattern": _template_pattern(allowed, one_line=True),
                        "description": f"one line; placeholders: {shown}; {{{{ and }}}} for braces",
                    },
                    "body": {
                        "type": "string",
                        "minLength": 1,
                        "pattern": _template_pattern(allowed, one_line=False),
                        "description": f"placeholders: {shown}; {{{{ and }}}} for braces",
                    },
                },
                ("subject", "body"),
            ),
        ]
    }


_WHEN = {
    "received": "a referral is recorded (status Lead)",
    "converted": "its lead is converted",
    "won": "its opportunity is won",
    "lost": "its opportunity is lost",
    "rejected": "the referral is rejected (self-referral, inactive advocate, disqualified lead)",
    "reward_approved": "a reward is created Approved, or an approver approves it",
    "reward_paid": "a reward's status is set to Paid",
}


def notifications_schema(defs: dict[str, Any]) -> JsonSchema:
    """The `notifications:` section as `compile_notifications` reads it."""

    def group(events: Iterable[str], what: str, absent: Iterable[str]) -> JsonSchema:
        events = tuple(events)
        schema = _obj(
            {event: {**_message(event), "description": f"{what} when {_WHEN[event]}"} for event in events},
            events,
        )
        schema["description"] = (
            f"when to {what}: true, false or {{subject, body}} per event; absent: {', '.join(absent)};"
            " once written, exactly the events set to true or a template"
        )
        return _nullable(schema)

    return _obj(
        {
            "advocate": group(ADVOCATE_EVENTS, "email the advocate", DEFAULT_ADVOCATE_EVENTS),
            "rep_tasks": group(REP_TASK_EVENTS, "give the rep a task", REP_TASK_EVENTS),
        },
        ("advocate", "rep_tasks"),
    )
