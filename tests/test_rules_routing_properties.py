"""Routing invariants over generated leads, advocates and rule sets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfconnector.rules.conditions import AnyOf, Compare, Not
from sfconnector.rules.model import (
    AdvocateFacts,
    LeadFacts,
    RoutingAction,
    RoutingFallbacks,
    RoutingRule,
    RoutingRules,
)
from sfconnector.rules.routing import decide_routing

USERS = st.sampled_from(["005000000000001AAA", "005000000000002AAA", None])
CHANNELS = st.sampled_from(["Card", "Verbal", "Email", "Social", "SMS", "Web", None])
PROGRAMS = st.sampled_from(["Customer", "Partner", "Employee", None])
ACTIONS = st.sampled_from(
    [
        RoutingAction("owner_of_advocate"),
        RoutingAction("keep_standard"),
        RoutingAction("queue", "Referral Desk"),
        RoutingAction("user", "alice.nguyen@sfconnector.test"),
    ]
)
NON_OWNER_ACTIONS = st.sampled_from(
    [
        RoutingAction("keep_standard"),
        RoutingAction("queue", "Referral Desk"),
        RoutingAction("user", "a@b.example"),
    ]
)
CONDITIONS = st.one_of(
    st.none(),
    st.builds(Compare, st.just("channel"), st.just("equals"), CHANNELS),
    st.builds(Compare, st.just("advocate.Program__c"), st.just("in"), st.tuples(PROGRAMS, PROGRAMS)),
    st.builds(lambda c: Not(Compare("channel", "exists", True)) if c else AnyOf(()), st.booleans()),
)
RULES = st.builds(
    RoutingRules,
    rules=st.lists(
        st.builds(RoutingRule, name=st.sampled_from(["a", "b", "c", "d"]), then=ACTIONS, when=CONDITIONS),
        max_size=4,
    ).map(tuple),
    fallbacks=st.builds(
        RoutingFallbacks,
        inactive_owner=NON_OWNER_ACTIONS,
        inactive_advocate=ACTIONS,
        unknown_advocate=NON_OWNER_ACTIONS,
        no_match=ACTIONS,
    ),
    respect_manual_reassignment=st.booleans(),
)
LEADS = st.builds(
    LeadFacts,
    lead_id=st.just("00Q000000000001AAA"),
    channel=CHANNELS,
    standard_owner_id=USERS,
    current_owner_id=USERS,
    manually_reassigned=st.booleans(),
)
ADVOCATES = st.one_of(
    st.none(),
    st.builds(
        AdvocateFacts,
        advocate_id=st.just("a00000000000001AAA"),
        owner_id=USERS,
        active=st.booleans(),
        fields=st.builds(lambda p: {"Program__c": p}, PROGRAMS),
    ),
)


@given(LEADS, ADVOCATES, st.sampled_from([True, False, None]), RULES)
def test_routing_invariants(
    lead: LeadFacts, advocate: AdvocateFacts | None, owner_active: bool | None, rules: RoutingRules
) -> None:
    decision = decide_routing(lead, advocate, owner_active, rules)
    assert decision == decide_routing(lead, advocate, owner_active, rules)  # deterministic
    assert decision.reason and "\n" not in decision.reason and len(decision.reason) <= 255
    if lead.manually_reassigned and rules.respect_manual_reassignment:
        assert decision.action == "keep_current" and not decision.changes_owner
        return
    if decision.action == "owner_of_advocate":
        # the advocate's own owner, and never one known to be inactive
        assert advocate is not None and advocate.owner_id is not None and owner_active is not False
        assert decision.owner_id == advocate.owner_id
    if advocate is None:
        assert decision.rule == "fallback:unknown_advocate"
    elif not advocate.active:
        assert decision.rule in ("fallback:inactive_advocate", "fallback:inactive_owner")
    else:
        assert [step.rule for step in decision.trace] == [r.name for r in rules.rules][: len(decision.trace)]
        assert all(not step.matched for step in decision.trace[:-1])
    if decision.action == "queue":
        assert decision.queue == "Referral Desk"
