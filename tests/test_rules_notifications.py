"""Advocate notifications and rep tasks: config, templates, opt-out, idempotency keys."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from sfconnector.rules.notifications import (
    AdvocateContact,
    Notification,
    NotificationSkipped,
    NotificationTemplates,
    ReferralView,
    RewardView,
    StatusChange,
    compile_notifications,
    decide_notification,
    decide_rep_task,
)
from sfconnector.rules.rewards import Problem

ADVOCATE = AdvocateContact("a00000000000001AAA", "Ada Lovelace", "ada@example.com", referral_code="ADA-1")
REFERRAL = ReferralView(
    "lead:00Q000000000001AAA",
    name="Grace Hopper",
    company="Navy",
    channel="Card",
    lead_id="00Q000000000001AAA",
    contact_id="003000000000001AAA",
    opportunity_id="006000000000001AAA",
    owner_name="Sam Rep",
)
REWARD = RewardView(
    "reward:006000000000001AAA:base", Decimal("1000"), "Gift Card", "Approved", date(2026, 12, 20)
)


def compiled(section: object = None) -> NotificationTemplates:
    problems: list[Problem] = []
    templates = compile_notifications(section, problems)
    assert problems == []
    return templates


def change(status: str, previous: str | None = None, reward: RewardView | None = None) -> StatusChange:
    return StatusChange(REFERRAL, status, previous, reward)


@pytest.mark.parametrize(
    ("status", "previous", "event", "subject"),
    [
        ("Lead", None, "received", "We received your referral: Grace Hopper"),
        ("Converted", "Lead", "converted", "Your referral Grace Hopper is now an opportunity"),
        ("Won", "Converted", "won", "Your referral Grace Hopper bought!"),
    ],
)
def test_default_config_tells_advocate_about_referral_steps(
    status: str, previous: str | None, event: str, subject: str
) -> None:
    notification = decide_notification(change(status, previous), ADVOCATE, compiled())
    assert notification == Notification(
        key=f"notify:lead:00Q000000000001AAA:{status}",
        event=event,
        advocate_id=ADVOCATE.id,
        recipient="ada@example.com",
        subject=subject,
        body=notification.body if notification else "",
    )
    assert isinstance(notification, Notification) and notification.body.startswith("Hi Ada,")


@pytest.mark.parametrize(
    ("status", "previous"), [("Lost", "Converted"), ("Rejected", "Lead"), ("Won", "Won")]
)
def test_default_config_is_silent_on_losses_and_non_changes(status: str, previous: str) -> None:
    assert decide_notification(change(status, previous), ADVOCATE, compiled()) is None


def test_reward_approved_and_paid_use_reward_key_and_fields() -> None:
    approved = decide_notification(change("Approved", "Pending Approval", REWARD), ADVOCATE, compiled())
    assert isinstance(approved, Notification)
    assert approved.key == "notify:reward:006000000000001AAA:base:Approved"
    assert approved.subject == "Your reward of 1,000.00 is approved"
    assert (
        "Gift Card reward of 1,000.00 for referring Grace Hopper is approved and payable from 2026-12-20"
        in (approved.body)
    )
    paid = decide_notification(change("Paid", "Approved", REWARD), ADVOCATE, compiled())
    assert isinstance(paid, Notification) and paid.key.endswith(":Paid")
    assert decide_notification(change("Pending Approval", None, REWARD), ADVOCATE, compiled()) is None


@pytest.mark.parametrize(
    ("advocate", "reason"),
    [
        (AdvocateContact("a0", "Ada", "ada@example.com", email_opt_out=True), "opted out"),
        (AdvocateContact("a0", "Ada", None), "no email address"),
        (AdvocateContact("a0", "Ada", "   "), "no email address"),
        (AdvocateContact("a0", "Ada", "ada at example"), "not a usable address"),
    ],
)
def test_opt_out_or_missing_email_skips_with_reason(advocate: AdvocateContact, reason: str) -> None:
    skipped = decide_notification(change("Lead"), advocate, compiled())
    assert isinstance(skipped, NotificationSkipped)
    assert skipped.key == "notify:lead:00Q000000000001AAA:Lead"
    assert reason in skipped.reason


def test_configured_events_replace_defaults_and_custom_templates_render() -> None:
    templates = compiled(
        {
            "advocate": {
                "lost": {"subject": "About {referral.name}", "body": "Sorry {advocate.name}: {{no luck}}"},
                "won": True,
                "received": False,
            }
        }
    )
    lost = decide_notification(change("Lost", "Converted"), ADVOCATE, templates)
    assert isinstance(lost, Notification)
    assert (lost.subject, lost.body) == ("About Grace Hopper", "Sorry Ada Lovelace: {no luck}")
    assert decide_notification(change("Won", "Converted"), ADVOCATE, templates) is not None
    assert decide_notification(change("Lead"), ADVOCATE, templates) is None
    assert decide_notification(change("Converted", "Lead"), ADVOCATE, templates) is None


def test_newlines_in_values_cannot_break_the_subject() -> None:
    referral = ReferralView("lead:1", name="Evil\r\nBcc: x@y.z")
    notification = decide_notification(StatusChange(referral, "Lead"), ADVOCATE, compiled())
    assert isinstance(notification, Notification)
    assert notification.subject == "We received your referral: Evil Bcc: x@y.z"


@pytest.mark.parametrize(
    ("section", "path", "fragment"),
    [
        (
            {"advocate": {"won": {"subject": "Hi {advocate.nmae}"}}},
            ("notifications", "advocate", "won", "subject"),
            "did you mean 'advocate.name'",
        ),
        (
            {"advocate": {"won": {"body": "{reward.amount}"}}},
            ("notifications", "advocate", "won", "body"),
            "only known in reward",
        ),
        (
            {"advocate": {"won": {"body": "{ advocate.name }"}}},
            ("notifications", "advocate", "won", "body"),
            "bad placeholder",
        ),
        (
            {"advocate": {"won": {"body": "{advocate.name"}}},
            ("notifications", "advocate", "won", "body"),
            "bad placeholder",
        ),
        (
            {"advocate": {"won": {"body": "closing } brace"}}},
            ("notifications", "advocate", "won", "body"),
            "without its",
        ),
        (
            {"advocate": {"won": {"subject": "two\nlines"}}},
            ("notifications", "advocate", "won", "subject"),
            "one line",
        ),
        (
            {"advocate": {"won": {"subject": ""}}},
            ("notifications", "advocate", "won", "subject"),
            "non-empty",
        ),
        ({"advocate": {"wonn": True}}, ("notifications", "advocate", "wonn"), "did you mean 'won'"),
        ({"advocate": {"won": "yes"}}, ("notifications", "advocate", "won"), "expected true"),
        ({"rep_tasks": {"lost": True}}, ("notifications", "rep_tasks", "lost"), "unknown key"),
        ({"emails": {}}, ("notifications", "emails"), "unknown key"),
        ([], ("notifications",), "must be a mapping"),
    ],
)
def test_compile_reports_template_problems_with_path(
    section: Any, path: tuple[str, ...], fragment: str
) -> None:
    problems: list[Problem] = []
    compile_notifications(section, problems)
    assert any(p.path == path and fragment in f"{p.message} {p.hint}" for p in problems), problems


def test_rep_task_received_says_call_the_advocate_first() -> None:
    task = decide_rep_task(change("Lead"), ADVOCATE, "005000000000001AAA", compiled())
    assert task is not None
    assert task.key == "task:lead:00Q000000000001AAA:received"
    assert task.subject == "Referral from Ada Lovelace: call them first"
    assert "Call Ada first" in task.description
    assert (task.owner_id, task.who_id, task.what_id) == ("005000000000001AAA", "00Q000000000001AAA", None)


def test_rep_task_won_says_thank_them_on_the_opportunity() -> None:
    task = decide_rep_task(change("Won", "Converted"), ADVOCATE, "005000000000001AAA", compiled())
    assert task is not None
    assert task.subject == "Grace Hopper won: thank Ada Lovelace"
    assert (task.who_id, task.what_id) == ("003000000000001AAA", "006000000000001AAA")


@pytest.mark.parametrize(
    ("status", "owner", "reward"),
    [("Converted", "005x", None), ("Lead", None, None), ("Approved", "005x", REWARD)],
)
def test_no_rep_task_for_other_changes_or_without_owner(
    status: str, owner: str | None, reward: RewardView | None
) -> None:
    assert (
        decide_rep_task(
            change(status, "Lead" if status != "Lead" else None, reward), ADVOCATE, owner, compiled()
        )
        is None
    )


def test_rep_task_ignores_email_opt_out() -> None:
    opted_out = AdvocateContact("a0", "Ada", None, email_opt_out=True)
    assert decide_rep_task(change("Lead"), opted_out, "005x", compiled()) is not None
