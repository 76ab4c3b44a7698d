"""Error paths of the REST API: status, body shape (a JSON array) and errorCode, as Salesforce reports them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from conftest import control, new_token

from sfemulator.server import Emulator

V = "/services/data/v59.0"


@pytest.fixture
def api(emulator_reset: Emulator, emulator_http: requests.Session) -> dict[str, Any]:
    token = new_token(emulator_reset, emulator_http)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def query(soql: str) -> list[dict[str, Any]]:
        r = emulator_http.get(f"{emulator_reset.base_url}{V}/query", params={"q": soql}, headers=headers)
        rows: list[dict[str, Any]] = r.json()["records"]
        return rows

    ids = {
        "inactive_rep": query("SELECT Id FROM User WHERE IsActive = false")[0]["Id"],
        "account": query("SELECT Id FROM Account LIMIT 1")[0]["Id"],
        "user": query("SELECT Id FROM User WHERE IsActive = true LIMIT 1")[0]["Id"],
    }
    lead = emulator_http.post(
        f"{emulator_reset.base_url}{V}/sobjects/Lead", json={"LastName": "L", "Company": "C"}, headers=headers
    ).json()["id"]
    ids["lead"] = lead
    ids["lead_bad_suffix"] = lead[:15] + "ZZZ"
    return {"headers": headers, "ids": ids, "base": emulator_reset.base_url, "http": emulator_http}


CASES: list[tuple[str, str, str, Any, int, str, str | None]] = [
    # (name, method, path, body, status, errorCode, message)
    (
        "unknown id",
        "GET",
        "/sobjects/Lead/00Q5g00000ZZZZZ",
        None,
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    ),
    ("bad checksum", "GET", "/sobjects/Lead/{lead_bad_suffix}", None, 400, "MALFORMED_ID", None),
    ("id of another object", "GET", "/sobjects/Lead/{account}", None, 400, "MALFORMED_ID", None),
    (
        "segment that is no id",
        "GET",
        "/sobjects/Lead/rid",
        None,
        404,
        "NOT_FOUND",
        "Provided external ID field does not exist or is not accessible: rid",
    ),
    (
        "unknown field",
        "POST",
        "/sobjects/Lead/",
        {"LastName": "x", "Company": "y", "foo": 1},
        400,
        "INVALID_FIELD",
        "No such column 'foo' on sobject of type Lead",
    ),
    (
        "required fields",
        "POST",
        "/sobjects/Lead",
        {"FirstName": "x"},
        400,
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [LastName, Company]",
    ),
    (
        "derived field",
        "POST",
        "/sobjects/Opportunity",
        {"Name": "o", "StageName": "Prospecting", "CloseDate": "2026-12-01", "IsWon": True},
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        None,
    ),
    (
        "restricted picklist",
        "POST",
        "/sobjects/Advocate__c",
        {"Name": "x", "Program__c": "Bogus"},
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Program: bad value for restricted picklist field: Bogus",
    ),
    (
        "unknown stage",
        "POST",
        "/sobjects/Opportunity",
        {"Name": "o", "StageName": "Dreaming", "CloseDate": "2026-12-01"},
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        None,
    ),
    (
        "duplicate unique value",
        "POST",
        "/sobjects/Advocate__c",
        {"Name": "x", "Referral_Code__c": "grace-1001"},
        400,
        "DUPLICATE_VALUE",
        None,
    ),
    (
        "inactive owner",
        "POST",
        "/sobjects/Lead",
        {"LastName": "x", "Company": "y", "OwnerId": "{inactive_rep}"},
        400,
        "INACTIVE_OWNER_OR_USER",
        None,
    ),
    (
        "owner that is an account",
        "POST",
        "/sobjects/Advocate__c",
        {"Name": "x", "OwnerId": "{account}"},
        400,
        "FIELD_INTEGRITY_EXCEPTION",
        None,
    ),
    (
        "malformed owner",
        "POST",
        "/sobjects/Advocate__c",
        {"Name": "x", "OwnerId": "bogus"},
        400,
        "MALFORMED_ID",
        None,
    ),
    (
        "bad email",
        "POST",
        "/sobjects/Lead",
        {"LastName": "x", "Company": "y", "Email": "nope"},
        400,
        "INVALID_EMAIL_ADDRESS",
        "Email: invalid email address: nope",
    ),
    ("bad number", "POST", "/sobjects/Reward__c", {"Amount__c": "lots"}, 400, "JSON_PARSER_ERROR", None),
    (
        "bad date",
        "POST",
        "/sobjects/Reward__c",
        {"Payable_On__c": "2026-13-45"},
        400,
        "JSON_PARSER_ERROR",
        None,
    ),
    (
        "too long",
        "POST",
        "/sobjects/Lead",
        {"LastName": "x", "Company": "y" * 256},
        400,
        "STRING_TOO_LONG",
        None,
    ),
    ("unknown object", "POST", "/sobjects/Nope__c", {"Name": "x"}, 404, "NOT_FOUND", None),
    ("not json", "POST", "/sobjects/Lead", "{not json", 400, "JSON_PARSER_ERROR", None),
    ("array body", "POST", "/sobjects/Lead", [], 400, "JSON_PARSER_ERROR", None),
    ("unknown soql column", "GET", "/query?q=SELECT+Bacon__c+FROM+Account", None, 400, "INVALID_FIELD", None),
    ("soql syntax", "GET", "/query?q=SELECT+Id+FRM+Lead", None, 400, "MALFORMED_QUERY", None),
    ("no query", "GET", "/query", None, 400, "MALFORMED_QUERY", None),
    ("stale locator", "GET", "/query/01g000000000000AAA-2000", None, 400, "INVALID_QUERY_LOCATOR", None),
    (
        "bad external id field",
        "PATCH",
        "/sobjects/Advocate__c/Foo__c/1",
        {"Name": "x"},
        404,
        "NOT_FOUND",
        "Provided external ID field does not exist or is not accessible: Foo__c",
    ),
    ("users cannot be deleted", "DELETE", "/sobjects/User/{user}", None, 400, "DELETE_FAILED", None),
    ("update unknown id", "PATCH", "/sobjects/Lead/00Q5g00000ZZZZZ", {"Title": "x"}, 404, "NOT_FOUND", None),
    ("wrong method", "PUT", "/sobjects/Lead/{lead}", {"Title": "x"}, 405, "METHOD_NOT_ALLOWED", None),
    (
        "too many subrequests",
        "POST",
        "/composite",
        {
            "compositeRequest": [
                {"method": "GET", "url": f"{V}/limits", "referenceId": f"r{i}"} for i in range(26)
            ]
        },
        400,
        "LIMIT_EXCEEDED",
        None,
    ),
    (
        "too many records",
        "POST",
        "/composite/sobjects",
        {"allOrNone": False, "records": [{"attributes": {"type": "Account"}, "Name": "x"}] * 201},
        400,
        "EXCEEDED_ID_LIMIT",
        None,
    ),
    ("unknown resource", "GET", "/nothing-here", None, 404, "NOT_FOUND", None),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status", "code", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_error_path(
    api: dict[str, Any],
    name: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    message: str | None,
) -> None:
    ids = api["ids"]
    url = api["base"] + V + path.format(**ids)
    if isinstance(body, str):
        data = body.encode()
    elif body is None:
        data = None
    else:
        data = json.dumps(body).replace('"{', "\u0000").replace('}"', "\u0001")
        for key, value in ids.items():
            data = data.replace("\u0000" + key + "\u0001", f'"{value}"')
        data = data.encode()
    headers = {**api["headers"], "Sforce-Auto-Assign": "FALSE"}
    response = api["http"].request(method, url, data=data, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload, list) and len(payload) == 1, payload
    assert payload[0]["errorCode"] == code
    assert isinstance(payload[0]["message"], str) and payload[0]["message"]
    if message is not None:
        assert payload[0]["message"] == message
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert response.headers["Content-Type"].startswith("application/json")


def test_unauthenticated_call_is_401_with_the_array_body(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    response = emulator_http.get(
        f"{emulator_reset.base_url}{V}/limits", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_required_field_error_lists_its_fields(api: dict[str, Any]) -> None:
    response = api["http"].post(
        f"{api['base']}{V}/sobjects/Account", json={"Phone": "1"}, headers=api["headers"]
    )
    assert response.json() == [
        {
            "message": "Required fields are missing: [Name]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["Name"],
        }
    ]


def test_converted_lead_refuses_updates(api: dict[str, Any], emulator_reset: Emulator) -> None:
    lead = api["ids"]["lead"]
    control(emulator_reset, api["http"], "POST", f"leads/{lead}/convert", {"createOpportunity": False})
    response = api["http"].patch(
        f"{api['base']}{V}/sobjects/Lead/{lead}", json={"Title": "x"}, headers=api["headers"]
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert response.json()[0]["message"] == "cannot reference converted lead"


def test_second_delete_is_entity_is_deleted(api: dict[str, Any]) -> None:
    url = f"{api['base']}{V}/sobjects/Lead/{api['ids']['lead']}"
    assert api["http"].delete(url, headers=api["headers"]).status_code == 204
    second = api["http"].delete(url, headers=api["headers"])
    assert second.status_code == 404
    assert second.json() == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]


def test_versions_list_needs_no_session_and_carries_no_limit_header(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    for path in ("/services/data", "/services/data/"):
        response = emulator_http.get(emulator_reset.base_url + path)
        assert response.status_code == 200
        assert "Sforce-Limit-Info" not in response.headers
        versions = response.json()
        assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
        assert versions[0]["version"] == "20.0" and versions[0]["label"] == "Winter '11"


def test_failed_calls_still_count_against_the_allocation(
    api: dict[str, Any], emulator_reset: Emulator
) -> None:
    before = control(emulator_reset, api["http"], "GET", "stats")["api_usage"]["used"]
    api["http"].get(f"{api['base']}{V}/sobjects/Lead/rid", headers=api["headers"])
    after = control(emulator_reset, api["http"], "GET", "stats")["api_usage"]["used"]
    assert after == before + 1


def test_create_with_an_id_is_refused(api: dict[str, Any]) -> None:
    body = {"Id": api["ids"]["lead"], "LastName": "x", "Company": "y"}
    response = api["http"].post(f"{api['base']}{V}/sobjects/Lead", json=body, headers=api["headers"])
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert response.json()[0]["message"] == "cannot specify Id in an insert call"


def test_clearing_the_owner_is_refused_and_null_checkbox_is_false(api: dict[str, Any]) -> None:
    url = f"{api['base']}{V}/sobjects/Lead/{api['ids']['lead']}"
    headers = {**api["headers"], "Sforce-Auto-Assign": "FALSE"}
    response = api["http"].patch(url, json={"OwnerId": None}, headers=headers)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert api["http"].patch(url, json={"HasOptedOutOfEmail": None}, headers=headers).status_code == 204
    assert api["http"].get(url, headers=headers).json()["HasOptedOutOfEmail"] is False
