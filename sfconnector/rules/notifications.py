"""Advocate notifications and rep tasks: which status changes say something, to whom, in what words.

`compile_notifications` turns the parsed `notifications:` section into frozen `NotificationTemplates`:

    notifications:
      advocate:                 # absent: the defaults (received, converted, won, reward_approved, reward_paid)
        received: true          # the built-in template
        won: {subject: "{referral.name} bought!", body: "Thanks, {advocate.first_name}: a reward is on its way."}
        lost: false             # present: exactly the events listed as true or with a template are sent
      rep_tasks:                # absent: received and won
        received: true

Templates use `{group.field}` placeholders from a known set (`PLACEHOLDERS`); `reward.*` only in the reward
events. An unknown placeholder or a stray brace is a reported problem at compile time, never a surprise at
send time; `{{` and `}}` write literal braces. Values are substituted as plain text: no format specs, no
attribute access.

`decide_notification` gives at most one notification per record and status: its idempotency key is
`notify:<referral or reward external key>:<status>`, so the outbox drops a replay's second email. An advocate who
opted out (Email_Opt_Out__c) or has no usable email gets none, and the decision says why (`NotificationSkipped`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

from sfconnector.rules.rewards import (
    ConfigPath,
    Reporter,
    ReportProblem,
    as_report,
    check_keys,
    did_you_mean,
    money,
)

AdvocateEvent = Literal["received", "converted", "won", "lost", "rejected", "reward_approved", "reward_paid"]
ADVOCATE_EVENTS: tuple[AdvocateEvent, ...] = (
    "received",
    "converted",
    "won",
    "lost",
    "rejected",
    "reward_approved",
    "reward_paid",
)
REP_TASK_EVENTS: tuple[AdvocateEvent, ...] = ("received", "won")
REWARD_EVENTS = frozenset({"reward_approved", "reward_paid"})

REFERRAL_EVENT_BY_STATUS: Mapping[str, AdvocateEvent] = MappingProxyType(
    {"Lead": "received", "Converted": "converted", "Won": "won", "Lost": "lost", "Rejected": "rejected"}
)
REWARD_EVENT_BY_STATUS: Mapping[str, AdvocateEvent] = MappingProxyType(
    {"Approved": "reward_approved", "Paid": "reward_paid"}
)

REFERRAL_PLACEHOLDERS = frozenset(
    {
        "advocate.name",
        "advocate.first_name",
        "advocate.email",
        "advocate.referral_code",
        "advocate.program",
        "referral.name",
        "referral.company",
        "referral.channel",
        "referral.status",
        "owner.name",
    }
)
NO_PERSON = "Our team"  # what {owner.name} says when no one person owns the referral

REWARD_PLACEHOLDERS = frozenset({"reward.amount", "reward.type", "reward.status", "reward.payable_on"})
PLACEHOLDERS = REFERRAL_PLACEHOLDERS | REWARD_PLACEHOLDERS

_PLACEHOLDER = re.compile(r"\{([a-z_]+\.[a-z_]+)\}")


# ---------------------------------------------------------------------------------------------------------------
# templates


@dataclass(frozen=True)
class Template:
    """Literal text and placeholder names, alternating: ("Hi ", "advocate.name", "!") starts with text."""

    parts: tuple[str, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(values.get(part, "") if i % 2 else part for i, part in enumerate(self.parts))


def compile_template(
    text: str, allowed: frozenset[str], path: ConfigPath, report: ReportProblem
) -> Template | None:
    parts: list[str] = []
    literal: list[str] = []
    ok = True
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(ch)
            i += 2
            continue
        if ch == "{":
            match = _PLACEHOLDER.match(text, i)
            if match is None:
                end = text.find("}", i)
                shown = text[i : end + 1] if end >= 0 else text[i : i + 20]
                report(
                    path,
                    f"bad placeholder {shown!r}",
                    "write {group.field}, e.g. {advocate.name}; {{ for a '{'",
                )
                ok = False
                i = end + 1 if end >= 0 else len(text)
                continue
            name = match.group(1)
            if name not in allowed:
                hint: str | None
                if name in PLACEHOLDERS:
                    hint = "reward fields are only known in reward_approved and reward_paid templates"
                else:
                    hint = did_you_mean(name, sorted(allowed))
                report(path, f"unknown placeholder {{{name}}}", hint)
                ok = False
            parts.extend(("".join(literal), name))
            literal = []
            i = match.end()
            continue
        if ch == "}":
            report(path, "a '}' without its '{'", "write }} for a literal '}'")
            ok = False
        literal.append(ch)
        i += 1
    parts.append("".join(literal))
    return Template(tuple(parts)) if ok else None


@dataclass(frozen=True)
class MessageTemplate:
    subject: Template
    body: Template


@dataclass(frozen=True)
class NotificationTemplates:
    """The compiled `notifications:` section: one message per enabled event."""

    advocate: Mapping[str, MessageTemplate]
    rep_tasks: Mapping[str, MessageTemplate]


_DEFAULT_ADVOCATE: dict[AdvocateEvent, tuple[str, str]] = {
    "received": (
        "We received your referral: {referral.name}",
        "Hi {advocate.first_name}, thank you for referring {referral.name}. {owner.name} will call you first "
        "to hear about them.",
    ),
    "converted": (
        "Your referral {referral.name} is now an opportunity",
        "Hi {advocate.first_name}, good news: {referral.name} is talking to us about a purchase.",
    ),
    "won": (
        "Your referral {referral.name} bought!",
        "Hi {advocate.first_name}, {referral.name} became a customer. Your reward is on its way.",
    ),
    "lost": (
        "An update on your referral {referral.name}",
        "Hi {advocate.first_name}, {referral.name} decided not to go ahead this time. Thank you for the "
        "introduction.",
    ),
    "rejected": (
        "An update on your referral {referral.name}",
        "Hi {advocate.first_name}, we could not accept the referral of {referral.name} into the program.",
    ),
    "reward_approved": (
        "Your reward of {reward.amount} is approved",
        "Hi {advocate.first_name}, your {reward.type} reward of {reward.amount} for referring {referral.name} "
        "is approved and payable from {reward.payable_on}.",
    ),
    "reward_paid": (
        "Your reward of {reward.amount} has been paid",
        "Hi {advocate.first_name}, your {reward.type} reward of {reward.amount} for referring {referral.name} "
        "has been paid. Thank you!",
    ),
}
DEFAULT_ADVOCATE_EVENTS: tuple[AdvocateEvent, ...] = (  # sent when `advocate:` is absent
    "received",
    "converted",
    "won",
    "reward_approved",
    "reward_paid",
)
_DEFAULT_REP: dict[AdvocateEvent, tuple[str, str]] = {
    "received": (
        "Referral from {advocate.name}: call them first",
        "{referral.name} ({referral.company}) was referred by {advocate.name} ({advocate.email}) via "
        "{referral.channel}. Call {advocate.first_name} first to pre-qualify the lead.",
    ),
    "won": (
        "{referral.name} won: thank {advocate.name}",
        "The referral {referral.name} from {advocate.name} closed won. Thank {advocate.first_name} personally.",
    ),
}


def _allowed(event: str) -> frozenset[str]:
    return PLACEHOLDERS if event in REWARD_EVENTS else REFERRAL_PLACEHOLDERS


def _compile_group(
    data: object,
    events: tuple[AdvocateEvent, ...],
    defaults: Mapping[AdvocateEvent, tuple[str, str]],
    default_on: tuple[AdvocateEvent, ...],
    path: ConfigPath,
    report: ReportProblem,
) -> Mapping[str, MessageTemplate]:
    def builtin(event: AdvocateEvent) -> MessageTemplate:
        subject, body = defaults[event]
        # The built-ins pass the same validation; a problem here is reported, not raised.
        s = compile_template(subject, _allowed(event), (*path, event, "subject"), report)
        b = compile_template(body, _allowed(event), (*path, event, "body"), report)
        return MessageTemplate(s or Template(("",)), b or Template(("",)))

    if data is None:
        return MappingProxyType({event: builtin(event) for event in default_on})
    if not isinstance(data, Mapping):
        report(
            path,
            "expected a mapping of event to true, false or {subject, body}",
            f"events: {', '.join(events)}",
        )
        return MappingProxyType({})
    check_keys(data, events, path, report)
    compiled: dict[str, MessageTemplate] = {}
    for event in events:
        if event not in data:
            continue
        raw = data[event]
        here = (*path, event)
        if raw is False or raw is None:
            continue
        if raw is True:
            compiled[event] = builtin(event)
            continue
        if not isinstance(raw, Mapping):
            report(here, "expected true, false or {subject, body}", None)
            continue
        check_keys(raw, ("subject", "body"), here, report)
        default_subject, default_body = defaults[event]
        texts: list[Template | None] = []
        for part, fallback in (("subject", default_subject), ("body", default_body)):
            text = raw.get(part, fallback)
            if not isinstance(text, str) or not text.strip():
                report((*here, part), f"the {part} must be non-empty text", None)
                texts.append(None)
                continue
            if part == "subject" and "\n" in text.strip():
                report((*here, part), "a subject is one line", None)
                texts.append(None)
                continue
            texts.append(compile_template(text, _allowed(event), (*here, part), report))
        subject, body = texts
        if subject is not None and body is not None:
            compiled[event] = MessageTemplate(subject, body)
    return MappingProxyType(compiled)


def compile_notifications(
    data: object, report: Reporter, path: ConfigPath = ("notifications",)
) -> NotificationTemplates:
    """Compile the parsed `notifications:` section; every problem goes to `report`, nothing raises."""
    rep = as_report(report)
    if data is not None and not isinstance(data, Mapping):
        rep(path, "the notifications section must be a mapping", "keys: advocate, rep_tasks")
        data = None
    section: Mapping[object, object] = data or {}
    if section:
        check_keys(section, ("advocate", "rep_tasks"), path, rep)
    return NotificationTemplates(
        advocate=_compile_group(
            section.get("advocate"),
            ADVOCATE_EVENTS,
            _DEFAULT_ADVOCATE,
            DEFAULT_ADVOCATE_EVENTS,
            (*path, "advocate"),
            rep,
        ),
        rep_tasks=_compile_group(
            section.get("rep_tasks"),
            REP_TASK_EVENTS,
            _DEFAULT_REP,
            REP_TASK_EVENTS,
            (*path, "rep_tasks"),
            rep,
        ),
    )


# ---------------------------------------------------------------------------------------------------------------
# facts and decisions


@dataclass(frozen=True)
class AdvocateContact:
    """The advocate as a recipient. `first_name` falls back to the first word of `name` (Advocate__c has Name only)."""

    id: str
    name: str | None
    email: str | None
    email_opt_out: bool = False
    first_name: str | None = None
    referral_code: str | None = None
    program: str | None = None


@dataclass(frozen=True)
class ReferralView:
    """The referral a change is about; `key` is its Referral__c External_Key__c."""

    key: str
    name: str | None = None
    company: str | None = None
    channel: str | None = None
    status: str | None = None
    lead_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    owner_name: str | None = None


@dataclass(frozen=True)
class RewardView:
    key: str
    amount: Decimal
    type: str | None
    status: str
    payable_on: date | None = None


@dataclass(frozen=True)
class StatusChange:
    """A referral's status changed, or (with `reward`) a reward's. `previous_status` None: the record is new."""

    referral: ReferralView
    status: str
    previous_status: str | None = None
    reward: RewardView | None = None


@dataclass(frozen=True)
class Notification:
    key: str
    event: str
    advocate_id: str
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True)
class NotificationSkipped:
    """The change would tell the advocate, but must not: `reason` says why (for logs and `explain`)."""

    key: str
    event: str
    advocate_id: str
    reason: str


@dataclass(frozen=True)
class RepTask:
    """A Task for the rep who owns the advocate; `who_id`/`what_id` as on Task (lead or contact / opportunity)."""

    key: str
    event: str
    owner_id: str
    subject: str
    description: str
    who_id: str | None
    what_id: str | None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _event(change: StatusChange) -> AdvocateEvent | None:
    if change.status == change.previous_status:
        return None
    table = REWARD_EVENT_BY_STATUS if change.reward is not None else REFERRAL_EVENT_BY_STATUS
    return table.get(change.status)


def _values(change: StatusChange, advocate: AdvocateContact) -> dict[str, str]:
    referral = change.referral
    name = (advocate.name or "").strip()
    values = {
        "advocate.name": name,
        "advocate.first_name": (advocate.first_name or (name.split()[0] if name else "")).strip(),
        "advocate.email": advocate.email or "",
        "advocate.referral_code": advocate.referral_code or "",
        "advocate.program": advocate.program or "",
        "referral.name": referral.name or "",
        "referral.company": referral.company or "",
        "referral.channel": referral.channel or "",
        "referral.status": referral.status or "",
        # No person yet (a queue has the lead, or the org's rules have still to assign it): no name is promised.
        "owner.name": referral.owner_name or NO_PERSON,
    }
    if change.reward is not None:
        reward = change.reward
        values.update(
            {
                "reward.amount": money(reward.amount),
                "reward.type": reward.type or "",
                "reward.status": reward.status,
                "reward.payable_on": reward.payable_on.isoformat() if reward.payable_on else "",
            }
        )
    return values


def _one_line(text: str) -> str:
    # Values come from Salesforce records; a newline in a name must not break the subject line.
    return " ".join(text.split())


def decide_notification(
    change: StatusChange, advocate: AdvocateContact, templates: NotificationTemplates
) -> Notification | NotificationSkipped | None:
    """The email this change sends the advocate; None when the config says nothing for it."""
    event = _event(change)
    if event is None or event not in templates.advocate:
        return None
    record_key = change.reward.key if change.reward is not None else change.referral.key
    key = f"notify:{record_key}:{change.status}"
    if advocate.email_opt_out:
        return NotificationSkipped(
            key, event, advocate.id, "advocate opted out of program emails (Email_Opt_Out__c)"
        )
    email = (advocate.email or "").strip()
    if not email:
        return NotificationSkipped(
            key, event, advocate.id, "advocate has no email address (Email__c is empty)"
        )
    if not _EMAIL.match(email):
        return NotificationSkipped(
            key, event, advocate.id, f"advocate email {email!r} is not a usable address"
        )
    template = templates.advocate[event]
    values = _values(change, advocate)
    return Notification(
        key=key,
        event=event,
        advocate_id=advocate.id,
        recipient=email,
        subject=_one_line(template.subject.render(values)),
        body=template.body.render(values),
    )


def decide_rep_task(
    change: StatusChange, advocate: AdvocateContact, owner_id: str | None, templates: NotificationTemplates
) -> RepTask | None:
    """The Task for the advocate's owner ("call them first", "thank them"); one per referral and event."""
    event = _event(change)
    if event is None or change.reward is not None or event not in templates.rep_tasks or not owner_id:
        return None
    template = templates.rep_tasks[event]
    values = _values(change, advocate)
    referral = change.referral
    return RepTask(
        key=f"task:{referral.key}:{event}",
        event=event,
        owner_id=owner_id,
        subject=_one_line(template.subject.render(values))[:255],
        description=template.body.render(values),
        who_id=referral.lead_id if event == "received" else (referral.contact_id or referral.lead_id),
        what_id=None if event == "received" else referral.opportunity_id,
    )
