"""Routing: who owns a referred lead. A pure function of the lead, its advocate and the compiled rules.

Order of precedence: a lead a person reassigned after creation stays where they put it; an unknown or
inactive advocate takes its fallback; otherwise the first rule whose condition holds decides, and an
inactive advocate owner sends the referral to the `inactive_owner` fallback.
"""

from __future__ import annotations

from typing import Any

from sfconnector.rules.conditions import evaluate, subjects
from sfconnector.rules.model import (
    AdvocateFacts,
    LeadFacts,
    RoutingAction,
    RoutingDecision,
    RoutingRules,
    TraceStep,
)

__all__ = ["decide_routing", "fields_read", "subject_value"]


# The rule a decision records when its rule's queue or user does not exist in the org (the standard owner is
# kept): reports then count what was written, not what the rule asked for.
MISSING_TARGET_RULE = "fallback:missing_target"


def subject_value(subject: str, lead: LeadFacts, advocate: AdvocateFacts | None) -> Any:
    """The value a condition subject names: `channel`, `lead.<Field>` or `advocate.<Field>`."""
    if subject == "channel":
        return lead.channel
    scope, _, field_name = subject.partition(".")
    if scope == "lead":
        return lead.fields.get(field_name)
    if scope == "advocate" and advocate is not None:
        return advocate.fields.get(field_name)
    return None


def fields_read(rules: RoutingRules) -> tuple[frozenset[str], frozenset[str]]:
    """API names of the lead fields and the advocate fields the rules' conditions read, for the lookups."""
    read: set[str] = set()
    for rule in rules.rules:
        if rule.when is not None:
            read |= subjects(rule.when)
    lead = frozenset(s.partition(".")[2] for s in read if s.startswith("lead."))
    advocate = frozenset(s.partition(".")[2] for s in read if s.startswith("advocate."))
    return lead, advocate


def _advocate_label(advocate: AdvocateFacts) -> str:
    return f"advocate {advocate.name}" if advocate.name else f"advocate {advocate.advocate_id}"


def _owner_label(advocate: AdvocateFacts) -> str:
    return advocate.owner_name or str(advocate.owner_id)


def _act(
    action: RoutingAction,
    rule: str,
    why: str,
    advocate: AdvocateFacts | None,
    owner_active: bool | None,
    rules: RoutingRules,
    trace: tuple[TraceStep, ...],
) -> RoutingDecision:
    if action.kind == "owner_of_advocate":
        if advocate is None:  # the loader refuses this for unknown_advocate; stay safe anyway
            return RoutingDecision(
                "keep_standard", rule, f"{why}; no advocate, standard assignment kept", trace=trace
            )
        if advocate.owner_id is None or owner_active is False:
            label = _advocate_label(advocate)
            if advocate.owner_id is None:
                problem = f"{label} has no owner"
            else:
                problem = f"the owner {_owner_label(advocate)} of {label} is inactive"
            fallback = rules.fallbacks.inactive_owner
            if fallback.kind == "owner_of_advocate":
                fallback = RoutingAction("keep_standard")
            return _act(
                fallback,
                "fallback:inactive_owner",
                f"{why}; but {problem}",
                advocate,
                owner_active,
                rules,
                trace,
            )
        return RoutingDecision(
            "owner_of_advocate",
            rule,
            f"{why} → owner {_owner_label(advocate)} of {_advocate_label(advocate)} (rule {rule})",
            owner_id=advocate.owner_id,
            trace=trace,
        )
    if action.kind == "user":
        return RoutingDecision(
            "user", rule, f"{why} → user {action.target} (rule {rule})", user=action.target, trace=trace
        )
    if action.kind == "queue":
        return RoutingDecision(
            "queue", rule, f"{why} → queue {action.target!r} (rule {rule})", queue=action.target, trace=trace
        )
    return RoutingDecision(
        "keep_standard", rule, f"{why} → standard assignment kept (rule {rule})", trace=trace
    )


def decide_routing(
    lead: LeadFacts,
    advocate: AdvocateFacts | None,
    owner_active: bool | None,
    rules: RoutingRules,
) -> RoutingDecision:
    """The routing decision for one referred lead.

    `owner_active` is whether the advocate's owner is an active user (None: not looked up, assumed active).
    """
    if rules.respect_manual_reassignment and lead.manually_reassigned:
        return RoutingDecision(
            "keep_current",
            "manual_reassignment",
            f"a person reassigned the lead to {lead.current_owner_id} after creation; left with them",
            owner_id=lead.current_owner_id,
        )
    fallbacks = rules.fallbacks
    if advocate is None:
        code = f"referral code {lead.referral_code!r}" if lead.referral_code else "no referral code"
        return _act(
            fallbacks.unknown_advocate,
            "fallback:unknown_advocate",
            f"no advocate has {code}",
            None,
            owner_active,
            rules,
            (),
        )
    if not advocate.active:
        return _act(
            fallbacks.inactive_advocate,
            "fallback:inactive_advocate",
            f"{_advocate_label(advocate)} is inactive",
            advocate,
            owner_active,
            rules,
            (),
        )
    trace: list[TraceStep] = []
    for rule in rules.rules:
        if rule.when is None:
            matched, why = True, "any referral"
        else:
            matched, why = evaluate(rule.when, lambda s: subject_value(s, lead, advocate))
        trace.append(TraceStep(rule.name, matched, why))
        if matched:
            return _act(rule.then, rule.name, why, advocate, owner_active, rules, tuple(trace))
    return _act(
        fallbacks.no_match,
        "fallback:no_match",
        "no routing rule matched",
        advocate,
        owner_active,
        rules,
        tuple(trace),
    )
