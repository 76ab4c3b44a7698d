"""simple-salesforce, unchanged, against the emulator over HTTPS: every REST operation the project uses."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from conftest import control, new_token
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sfemulator.server import Emulator


def users(sf: Salesforce) -> dict[str, dict[str, Any]]:
    rows = sf.query("SELECT Id, Username, IsActive FROM User")["records"]
    return {r["Username"]: r for r in rows}


def queue_id(sf: Salesforce, name: str) -> str:
    rid: str = sf.query(f"SELECT Id FROM Group WHERE Type = 'Queue' AND Name = '{name}'")["records"][0]["Id"]
    return rid


def test_create_retrieve_update_delete_a_lead(sf: Salesforce) -> None:
    created = sf.Lead.create(
        {"FirstName": "Jo", "LastName": "Doe", "Company": "Acme", "Email": "jo@acme.example"}
    )
    assert created["success"] is True and created["errors"] == []
    lead_id = created["id"]
    assert len(lead_id) == 18 and lead_id.startswith("00Q")

    lead = sf.Lead.get(lead_id)
    assert lead["attributes"] == {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}"}
    assert lead["Name"] == "Jo Doe"
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["IsConverted"] is False
    assert lead["CreatedDate"].endswith("+0000")

    assert sf.Lead.update(lead_id, {"Title": "CTO"}, headers={"Sforce-Auto-Assign": "FALSE"}) == 204
    assert sf.Lead.get(lead_id)["Title"] == "CTO"

    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(lead_id)
    with pytest.raises(SalesforceResourceNotFound) as second:
        sf.Lead.delete(lead_id)
    assert second.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_retrieve_accepts_fifteen_char_ids_and_a_field_list(sf: Salesforce) -> None:
    lead_id = sf.Lead.create({"LastName": "Short", "Company": "Acme"})["id"]
    lead = sf.Lead.get(lead_id[:15])
    assert lead["Id"] == lead_id
    limited = sf.restful(f"sobjects/Lead/{lead_id}", params={"fields": "Id,Company"})
    assert set(limited) == {"attributes", "Id", "Company"}


def test_upsert_by_external_id_creates_then_updates(sf: Salesforce) -> None:
    code = "NEW-ADVOCATE-1"
    assert sf.Advocate__c.upsert(f"Referral_Code__c/{code}", {"Name": "Nora"}) == 201
    assert sf.Advocate__c.upsert(f"Referral_Code__c/{code}", {"Name": "Nora B."}) == 200
    advocate = sf.Advocate__c.get_by_custom_id("Referral_Code__c", code)
    assert advocate["Name"] == "Nora B."
    assert advocate["Status__c"] == "Active"  # picklist default from the DX source


def test_upsert_reply_bodies_carry_created_flag(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    token = new_token(emulator_reset, emulator_http)
    url = f"{emulator_reset.base_url}/services/data/v59.0/sobjects/Referral__c/External_Key__c/lead:abc"
    headers = {"Authorization": f"Bearer {token}"}
    first = emulator_http.patch(url, json={"Status__c": "Lead"}, headers=headers)
    assert first.status_code == 201
    assert first.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": True}
    second = emulator_http.patch(url, json={"Status__c": "Converted"}, headers=headers)
    assert second.status_code == 200
    assert second.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": False}
    old = emulator_http.patch(url.replace("v59.0", "v45.0"), json={"Status__c": "Won"}, headers=headers)
    assert old.status_code == 204 and old.content == b""


def test_query_pages_with_next_records_url_and_query_more(sf: Salesforce, emulator_reset: Emulator) -> None:
    records = [{"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "Bulk"} for i in range(200)]
    for _ in range(3):
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    first = sf.query(
        "SELECT Id FROM Lead WHERE Company = 'Bulk'", headers={"Sforce-Query-Options": "batchSize=250"}
    )
    assert first["totalSize"] == 600 and first["done"] is False and len(first["records"]) == 250
    locator = first["nextRecordsUrl"]
    assert locator.startswith("/services/data/v59.0/query/01g")
    second = sf.query_more(locator, identifier_is_url=True, headers={"Sforce-Query-Options": "batchSize=250"})
    assert second["totalSize"] == 600 and len(second["records"]) == 250
    # jsforce takes the last segment and asks under its own version: the locator must still work.
    third = sf.query_more(
        second["nextRecordsUrl"].rsplit("/", 1)[1], headers={"Sforce-Query-Options": "batchSize=250"}
    )
    assert third["done"] is True and "nextRecordsUrl" not in third and len(third["records"]) == 100
    ids = {r["Id"] for page in (first, second, third) for r in page["records"]}
    assert len(ids) == 600


def test_query_all_includes_deleted_records(sf: Salesforce) -> None:
    lead_id = sf.Lead.create({"LastName": "Gone", "Company": "Ghost"})["id"]
    sf.Lead.delete(lead_id)
    assert sf.query("SELECT Id FROM Lead WHERE Company = 'Ghost'")["totalSize"] == 0
    everything = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE Company = 'Ghost'", include_deleted=True)
    assert everything["records"][0]["IsDeleted"] is True


def test_query_follows_parent_relationships(sf: Salesforce) -> None:
    rows = sf.query("SELECT Name, Owner.IsActive FROM Advocate__c WHERE Referral_Code__c = 'EWD-1005'")[
        "records"
    ]
    assert rows[0]["Owner"]["IsActive"] is False
    assert rows[0]["Owner"]["attributes"]["type"] == "User"


def test_malformed_query_is_reported_as_salesforce_does(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FRM Lead")
    assert err.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_describe_global_object_and_metadata(sf: Salesforce) -> None:
    described = sf.describe()
    prefixes = {o["name"]: o["keyPrefix"] for o in described["sobjects"]}
    assert prefixes["Lead"] == "00Q" and prefixes["Account"] == "001" and prefixes["Group"] == "00G"
    assert prefixes["Advocate__c"].startswith("a0")
    fields = {f["name"]: f for f in sf.Advocate__c.describe()["fields"]}
    assert fields["Referral_Code__c"]["externalId"] is True and fields["Referral_Code__c"]["unique"] is True
    assert [v["value"] for v in fields["Program__c"]["picklistValues"]] == ["Customer", "Partner", "Employee"]
    assert fields["Id"]["type"] == "id" and fields["OwnerId"]["referenceTo"] == ["Group", "User"]
    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert opp["IsWon"]["createable"] is False and opp["IsWon"]["updateable"] is False
    assert sf.Lead.metadata()["objectDescribe"]["name"] == "Lead"


def test_limits_and_limit_info_header(sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    leads = sf.Lead  # each attribute access builds a new SFType with its own api_usage
    leads.create({"LastName": "Counted", "Company": "Acme"})
    assert leads.api_usage["api-usage"].total == 100000
    assert leads.api_usage["api-usage"].used == 2
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 3


def test_collections_partial_failure_keeps_the_good_records(sf: Salesforce) -> None:
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Account"}, "Name": "Good Co"},
            {"attributes": {"type": "Contact"}, "FirstName": "No Last Name"},
            {"attributes": {"type": "Contact"}, "LastName": "Fine"},
        ],
    }
    results = sf.restful("composite/sobjects", method="POST", json=body)
    assert results[0]["success"] is True and results[2]["success"] is True
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Good Co'")["totalSize"] == 1


def test_collections_all_or_none_rolls_everything_back(sf: Salesforce) -> None:
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Account"}, "Name": "Rolled Back Co"},
            {"attributes": {"type": "Account"}},
        ],
    }
    results = sf.restful("composite/sobjects", method="POST", json=body)
    assert results[0]["success"] is False and "id" not in results[0]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Rolled Back Co'")["totalSize"] == 0


def test_collections_update_upsert_retrieve_and_delete(sf: Salesforce) -> None:
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(3)],
        },
    )
    ids = [r["id"] for r in created]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "id": ids[0], "Name": "Renamed"},
                {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Name": "Nobody"},
            ],
        },
    )
    assert updated[0] == {"id": ids[0], "success": True, "errors": []}
    assert updated[1]["success"] is False
    upserted = sf.restful(
        "composite/sobjects/Reward__c/External_Key__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Reward__c"}, "External_Key__c": "reward:1", "Amount__c": 50},
                {"attributes": {"type": "Reward__c"}, "External_Key__c": "reward:1", "Amount__c": 75},
            ],
        },
    )
    assert [r["created"] for r in upserted] == [True, False]
    fetched = sf.restful(
        "composite/sobjects/Account", method="POST", json={"ids": [ids[0], ids[1]], "fields": ["Id", "Name"]}
    )
    assert [r["Name"] for r in fetched] == ["Renamed", "A1"]
    deleted = sf.restful(
        "composite/sobjects", method="DELETE", params={"ids": ",".join(ids), "allOrNone": "false"}
    )
    assert all(r["success"] for r in deleted)
    again = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids[0]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def test_composite_resolves_references_and_returns_each_response(sf: Salesforce) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Composite Co"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Contact",
                "referenceId": "contact",
                "body": {"LastName": "Ref", "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Contact/@{contact.id}?fields=AccountId",
                "referenceId": "read",
            },
        ],
    }
    result = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in result] == [201, 201, 200]
    assert result[0]["httpHeaders"]["Location"].endswith(result[0]["body"]["id"])
    assert result[2]["body"]["AccountId"] == result[0]["body"]["id"]


def test_composite_all_or_none_rolls_back_with_processing_halted(sf: Salesforce) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "ok",
                "body": {"Name": "Halted Co"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Opportunity",
                "referenceId": "bad",
                "body": {"Name": "No stage", "AccountId": "@{ok.id}"},
            },
            {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "after"},
        ],
    }
    result = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert result[0]["httpStatusCode"] == 400
    assert result[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert result[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert result[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Halted Co'")["totalSize"] == 0


def test_composite_subrequest_headers_switch_assignment_off(sf: Salesforce) -> None:
    owner = users(sf)["chitra.rao@sfconnector.test"]["Id"]
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Lead",
                "referenceId": "kept",
                "body": {"LastName": "K", "Company": "C", "OwnerId": owner},
                "httpHeaders": {"Sforce-Auto-Assign": "FALSE"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Lead",
                "referenceId": "assigned",
                "body": {"LastName": "A", "Company": "C", "OwnerId": owner, "Country": "Germany"},
            },
        ]
    }
    result = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    kept = sf.Lead.get(result[0]["body"]["id"])
    assigned = sf.Lead.get(result[1]["body"]["id"])
    assert kept["OwnerId"] == owner
    assert assigned["OwnerId"] == users(sf)["diego.alvarez@sfconnector.test"]["Id"]


def test_assignment_rule_reassigns_on_patch_without_header(sf: Salesforce) -> None:
    people = users(sf)
    rule_owner = people["diego.alvarez@sfconnector.test"]["Id"]
    advocate_owner = people["alice.nguyen@sfconnector.test"]["Id"]
    lead_id = sf.Lead.create({"LastName": "Routed", "Company": "Globex", "Country": "Germany"})["id"]
    assert sf.Lead.get(lead_id)["OwnerId"] == rule_owner

    sf.Lead.update(lead_id, {"OwnerId": advocate_owner})
    assert sf.Lead.get(lead_id)["OwnerId"] == rule_owner  # the rule ran again and took the lead back

    sf.Lead.update(lead_id, {"OwnerId": advocate_owner}, headers={"Sforce-Auto-Assign": "false"})
    assert sf.Lead.get(lead_id)["OwnerId"] == advocate_owner


def test_assignment_rule_can_route_to_a_queue(sf: Salesforce) -> None:
    lead_id = sf.Lead.create({"LastName": "Partner", "Company": "P", "LeadSource": "Partner Referral"})["id"]
    assert sf.Lead.get(lead_id)["OwnerId"] == queue_id(sf, "Referral Desk")


def test_round_robin_entry_spreads_leads_across_reps(sf: Salesforce) -> None:
    owners = [
        sf.Lead.get(sf.Lead.create({"LastName": f"W{i}", "Company": "W", "State": "CA"})["id"])["OwnerId"]
        for i in range(4)
    ]
    people = users(sf)
    expected = {people["alice.nguyen@sfconnector.test"]["Id"], people["bruno.keller@sfconnector.test"]["Id"]}
    assert set(owners) == expected
    assert owners[0] != owners[1]


def test_expired_session_gets_401_invalid_session_id(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    sf.Lead.create({"LastName": "Before", "Company": "Acme"})
    control(emulator_reset, emulator_http, "POST", "sessions/expire")
    with pytest.raises(SalesforceExpiredSession) as err:
        sf.Lead.create({"LastName": "After", "Company": "Acme"})
    assert err.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_session_times_out_when_the_clock_moves(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    sf.query("SELECT Id FROM Lead LIMIT 1")
    control(emulator_reset, emulator_http, "POST", "clock", {"advance_seconds": 7201})
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead LIMIT 1")


def test_spent_allocation_refuses_with_request_limit_exceeded(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    control(emulator_reset, emulator_http, "POST", "limits", {"daily_api_requests": 10, "used": 9})
    sf.query("SELECT Id FROM Lead LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert err.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]


def test_email_simple_action_is_recorded_not_sent(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    inputs = {
        "inputs": [
            {
                "emailAddresses": "grace@advocates.example",
                "emailSubject": "Thanks",
                "emailBody": "Your referral arrived",
                "senderType": "CurrentUser",
            }
        ]
    }
    result = sf.restful("actions/standard/emailSimple", method="POST", json=inputs)
    assert result == [{"actionName": "emailSimple", "errors": None, "isSuccess": True, "outputValues": None}]
    emails = control(emulator_reset, emulator_http, "GET", "emails")
    assert [e["emailSubject"] for e in emails] == ["Thanks"]


def test_platform_event_publish_answers_operation_enqueued(sf: Salesforce) -> None:
    result = sf.Referral_Submitted__e.create({"Referral_Code__c": "GRACE-1001", "Last_Name__c": "Prospect"})
    assert result["success"] is True and result["id"].startswith("e01")
    assert result["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    assert len(result["errors"][0]["message"]) == 36  # the EventUuid


def test_upsert_on_a_field_that_is_not_an_external_id_is_404(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Lead.upsert("Referral_Code__c/X", {"LastName": "N", "Company": "C"})
    assert err.value.content == [
        {
            "message": "Provided external ID field does not exist or is not accessible: Referral_Code__c",
            "errorCode": "NOT_FOUND",
        }
    ]


def test_composite_query_result_feeds_a_later_subrequest(sf: Salesforce) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": "/services/data/v59.0/query?q=SELECT+Id,OwnerId+FROM+Advocate__c+WHERE+Referral_Code__c='ADA-1003'",
                "referenceId": "adv",
            },
            {
                "method": "PATCH",
                "url": "/services/data/v59.0/composite/sobjects/Referral__c/External_Key__c",
                "referenceId": "ref",
                "body": {
                    "allOrNone": False,
                    "records": [
                        {
                            "attributes": {"type": "Referral__c"},
                            "External_Key__c": "lead:composite",
                            "Advocate__c": "@{adv.records[0].Id}",
                            "Routed_Owner__c": "@{adv.records[0].OwnerId}",
                        }
                    ],
                },
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Referral__c/@{nope.id}",
                "referenceId": "bad",
            },
        ],
    }
    result = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert result[0]["httpStatusCode"] == 200 and result[0]["body"]["totalSize"] == 1
    assert result[1]["httpStatusCode"] == 200 and result[1]["body"][0]["created"] is True
    assert result[2]["httpStatusCode"] == 400 and result[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    referral = sf.Referral__c.get_by_custom_id("External_Key__c", "lead:composite")
    assert referral["Advocate__c"] == result[0]["body"]["records"][0]["Id"]
    assert referral["Name"].startswith("REF-")


def test_collection_retrieve_by_get_returns_null_for_missing_ids(sf: Salesforce) -> None:
    account = sf.query("SELECT Id FROM Account WHERE Name = 'Acme Corp'")["records"][0]["Id"]
    rows = sf.restful(
        "composite/sobjects/Account", params={"ids": f"{account},001000000000000AAA", "fields": "Id,Name"}
    )
    assert rows[0]["Name"] == "Acme Corp" and rows[1] is None


def test_composite_batch_runs_independent_subrequests_each_counted(
    sf: Salesforce, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    account = sf.query("SELECT Id FROM Account WHERE Name = 'Initech'")["records"][0]["Id"]
    body = {
        "haltOnError": True,
        "batchRequests": [
            {
                "method": "PATCH",
                "url": f"v59.0/sobjects/Account/{account}",
                "richInput": {"Name": "Initrode"},
            },
            {"method": "GET", "url": f"v59.0/sobjects/Account/{account}?fields=Name"},
            {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {}},
            {"method": "GET", "url": "v59.0/limits"},
        ],
    }
    result = sf.restful("composite/batch", method="POST", json=body)
    assert result["hasErrors"] is True
    assert [r["statusCode"] for r in result["results"]] == [204, 200, 400, 412]
    assert result["results"][1]["result"]["Name"] == "Initrode"
    assert result["results"][3]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"
    assert control(emulator_reset, emulator_http, "GET", "stats")["api_usage"]["used"] == 1 + 4
