"""Property tests of notification templates: compile never raises, rendering substitutes text only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sfconnector.rules.notifications import (
    PLACEHOLDERS,
    REFERRAL_PLACEHOLDERS,
    AdvocateContact,
    Notification,
    ReferralView,
    StatusChange,
    compile_notifications,
    compile_template,
    decide_notification,
)
from sfconnector.rules.rewards import Problem

WORDS = [
    "advocate",
    "rep_tasks",
    "received",
    "won",
    "lost",
    "reward_paid",
    "subject",
    "body",
    "{advocate.name}",
]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet="{}ab.\n _", max_size=20)
    | st.sampled_from(WORDS),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(values)
def test_compile_reports_but_never_raises(section: object) -> None:
    problems: list[Problem] = []
    compile_notifications(section, problems)
    assert all(p.path[0] == "notifications" and p.message for p in problems)


text_pieces = st.lists(
    st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=8)
    | st.sampled_from(sorted(REFERRAL_PLACEHOLDERS)),
    max_size=8,
)


@given(text_pieces)
def test_valid_templates_round_trip_their_placeholders(pieces: list[str]) -> None:
    text = "".join("{" + p + "}" if p in PLACEHOLDERS else p for p in pieces)
    problems: list[Problem] = []
    template = compile_template(text, REFERRAL_PLACEHOLDERS, ("t",), problems.append)  # type: ignore[arg-type]
    assert problems == [] and template is not None
    assert template.placeholders == tuple(p for p in pieces if p in PLACEHOLDERS)
    # rendering with each placeholder's own name gives the text back; values are never re-interpreted
    assert template.render({name: "{" + name + "}" for name in PLACEHOLDERS}) == text


@given(st.text(max_size=40), st.text(max_size=40))
def test_record_values_are_inserted_verbatim_and_the_subject_stays_one_line(name: str, referral: str) -> None:
    advocate = AdvocateContact("a0", name, "ada@example.com")
    notification = decide_notification(
        StatusChange(ReferralView("lead:1", name=referral), "Lead"), advocate, compile_notifications(None, [])
    )
    assert isinstance(notification, Notification)
    assert "\n" not in notification.subject and "\r" not in notification.subject
    assert referral in notification.body
