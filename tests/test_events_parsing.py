"""Streaming messages as Salesforce delivers them become typed events."""

import pytest

from sfconnector.events import BadEvent, PlatformEvent, RecordChange, is_own_change, parse_message


def _lead_create(origin: str = "com/salesforce/api/rest/59.0;client=webform") -> dict:
    return {
        "channel": "/data/LeadChangeEvent",
        "data": {
            "schema": "abc",
            "payload": {
                "ChangeEventHeader": {
                    "entityName": "Lead",
                    "recordIds": ["00Q5g0000000001EAA"],
                    "changeType": "CREATE",
                    "changeOrigin": origin,
                    "transactionKey": "tx-1",
                    "sequenceNumber": 1,
                    "commitTimestamp": 1700000000000,
                    "commitUser": "0055g0000000001AAA",
                    "commitNumber": 1,
                },
                "Name": {"FirstName": "Ada", "LastName": "Lovelace"},
                "Company": "Analytical",
                "Referral_Code__c": "ab-12",
            },
            "event": {"replayId": 42},
        },
    }


def test_lead_create_is_flattened_with_its_header() -> None:
    event = parse_message(_lead_create())
    assert isinstance(event, RecordChange)
    assert event.entity == "Lead" and event.change_type == "CREATE"
    assert event.fields["LastName"] == "Lovelace" and event.fields["Referral_Code__c"] == "ab-12"
    assert event.replay_id == 42
    assert event.record_ids == ("00Q5g0000000001EAA",)
    assert event.key == "cdc:tx-1:1:Lead"


def test_changed_compound_field_parts_are_reported_by_their_own_name() -> None:
    msg = _lead_create()
    header = msg["data"]["payload"]["ChangeEventHeader"]
    header["changeType"] = "UPDATE"
    header["changedFields"] = ["Name.LastName", "LastModifiedDate"]
    event = parse_message(msg)
    assert isinstance(event, RecordChange)
    assert event.changed_fields == frozenset({"LastName", "LastModifiedDate"})


def test_own_writes_are_recognised_by_client_name_only() -> None:
    assert is_own_change(
        parse_message(_lead_create("com/salesforce/api/rest/59.0;client=sfconnector")), "sfconnector"
    )
    assert not is_own_change(parse_message(_lead_create()), "sfconnector")
    assert not is_own_change(parse_message(_lead_create("com/salesforce/api/rest/59.0")), "sfconnector")


def test_platform_event_keeps_payload_and_uuid() -> None:
    event = parse_message(
        {
            "channel": "/event/Referral_Submitted__e",
            "data": {
                "schema": "x",
                "payload": {"Referral_Code__c": "AB12", "CreatedDate": "2026-11-23T10:00:00.000Z"},
                "event": {"replayId": 7, "EventUuid": "uuid-1"},
            },
        }
    )
    assert isinstance(event, PlatformEvent)
    assert event.event_name == "Referral_Submitted__e"
    assert event.key == "event:uuid-1"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({}, "lacks channel"),
        ({"channel": "/data/LeadChangeEvent", "data": {"payload": {}}}, "replayId"),
        ({"channel": "/data/LeadChangeEvent", "data": {"event": {"replayId": 1}}}, "no payload"),
        (
            {"channel": "/data/LeadChangeEvent", "data": {"event": {"replayId": 1}, "payload": {}}},
            "ChangeEventHeader",
        ),
        (
            {
                "channel": "/data/LeadChangeEvent",
                "data": {
                    "event": {"replayId": 1},
                    "payload": {"ChangeEventHeader": {"changeType": "EXPLODE"}},
                },
            },
            "unknown changeType",
        ),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(message: dict, reason: str) -> None:
    with pytest.raises(BadEvent, match=reason):
        parse_message(message)


def test_event_time_is_read_from_each_kind_of_message() -> None:
    from sfconnector.events import event_time_ms

    assert event_time_ms(_lead_create()) == 1700000000000
    platform = {
        "channel": "/event/X__e",
        "data": {"payload": {"CreatedDate": "2026-11-23T10:00:00.000Z"}, "event": {"replayId": 1}},
    }
    assert event_time_ms(platform) == 1795428000000
    pushtopic = {
        "channel": "/topic/T",
        "data": {"event": {"createdDate": "2026-11-23T10:00:00.000Z", "replayId": 1}},
    }
    assert event_time_ms(pushtopic) == 1795428000000
    assert event_time_ms({"channel": "/x", "data": {"payload": {}}}) is None
