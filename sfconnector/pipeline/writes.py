"""Outbox entries for what the rules decide to tell people: a rep's Task, an advocate's email.

One shape for both, whichever step decided them (routing, lifecycle, rewards), so a Task is always created
once by its key and an email always goes through emailSimple with the same inputs.
"""

from __future__ import annotations

from datetime import date

from sfconnector.rules.notifications import Notification, RepTask
from sfconnector.state import OutboxEntry

TASK_KEY_FIELD = "External_Key__c"


def rep_task_entry(
    task: RepTask, today: date, *, priority: str = "Normal", depends_on: str | None = None
) -> OutboxEntry:
    """The rep's Task, created once (looked up by its key first, so a crash never doubles it)."""
    fields = {
        "Subject": task.subject,
        "Description": task.description,
        "OwnerId": task.owner_id,
        "WhoId": task.who_id,
        "Status": "Not Started",
        "Priority": priority,
        "ActivityDate": today.isoformat(),
        TASK_KEY_FIELD: task.key,
    }
    if task.what_id:
        fields["WhatId"] = task.what_id
    return OutboxEntry(
        key=task.key,
        op="create_once",
        sobject="Task",
        fields=fields,
        external_id_field=TASK_KEY_FIELD,
        depends_on=depends_on,
    )


def email_entry(notification: Notification) -> OutboxEntry:
    """The advocate's email through the emailSimple action, at most once per key."""
    return OutboxEntry(
        key=notification.key,
        op="email",
        sobject="",
        fields={
            "emailAddresses": notification.recipient,
            "emailSubject": notification.subject,
            "emailBody": notification.body,
            "senderType": "CurrentUser",
        },
    )
