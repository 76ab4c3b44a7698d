"""PushTopic rules: which changed fields notify, by NotifyForFields, and the WHERE evaluation fallback."""

from __future__ import annotations

import pytest

from sfemulator.streaming._pushtopic import compile_topic, matches

QUERY = "SELECT Id, LastName, Email FROM Lead WHERE LeadSource = 'Partner Referral' AND Rating != 'Cold'"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("All", None),
        ("Referenced", {"id", "lastname", "email", "leadsource", "rating"}),
        ("Select", {"id", "lastname", "email"}),
        ("Where", {"leadsource", "rating"}),
    ],
)
def test_notify_for_fields_names_the_fields_whose_change_notifies(
    mode: str, expected: set[str] | None
) -> None:
    topic = compile_topic({"Id": "0IF000000000001AAA", "Name": "T", "Query": QUERY, "NotifyForFields": mode})
    assert topic is not None
    notifying = topic.fields_that_notify()
    assert (None if notifying is None else set(notifying)) == expected


def test_operation_flags_and_inactive_topics() -> None:
    topic = compile_topic({"Name": "T", "Query": QUERY, "NotifyForOperationDelete": False, "IsActive": False})
    assert topic is not None
    assert topic.notify == {"CREATE", "UPDATE", "UNDELETE"} and not topic.active
    assert topic.select == ("Id", "LastName", "Email")


def test_unparseable_query_makes_no_topic() -> None:
    assert compile_topic({"Name": "Broken", "Query": "SELECT FROM"}) is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"LeadSource": "partner referral", "Rating": "Hot"}, True),
        ({"LeadSource": "Partner Referral", "Rating": None}, True),
        ({"LeadSource": "Partner Referral", "Rating": "cold"}, False),
        ({"LeadSource": "Web", "Rating": "Hot"}, False),
    ],
)
def test_where_fallback_evaluates_like_soql(record: dict[str, object], expected: bool) -> None:
    topic = compile_topic({"Name": "T", "Query": QUERY})
    assert topic is not None
    assert matches(topic.where, record) is expected
