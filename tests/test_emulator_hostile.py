"""Hostile input answered as Salesforce answers it (issue #9): one regression test per hole a probe found.

Every test talks to the running emulator over HTTPS and checks the status and body Salesforce sends; the
sources of those answers are in docs/emulator.md ("Input limits" and "Hostile input").
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import requests
from conftest import new_token
from hostile_support import V, assert_still_serving, bayeux, shape_problem
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sfemulator.server import Emulator


@pytest.fixture
def api(emulator_reset: Emulator, emulator_http: requests.Session) -> Api:
    return Api(emulator_reset, emulator_http)


class Api:
    """Raw HTTPS calls as the integration user."""

    def __init__(self, emulator: Emulator, http: requests.Session) -> None:
        self.emulator = emulator
        self.http = http
        self.token = new_token(emulator, http)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        url = path if path.startswith("https://") else f"{self.emulator.base_url}{V}{path}"
        response = self.http.request(method, url, headers=headers, timeout=30, **kw)
        problem = shape_problem(response)
        assert problem is None, problem
        return response

    def raw(self, method: str, path: str, body: bytes, **headers: str) -> requests.Response:
        return self.call(method, path, data=body, headers={"Content-Type": "application/json", **headers})

    def query(self, soql: str) -> requests.Response:
        return self.call("GET", "/query", params={"q": soql})

    def create_lead(self, last_name: str = "Hopper", **fields: Any) -> str:
        response = self.call(
            "POST", "/sobjects/Lead/", json={"LastName": last_name, "Company": "C", **fields}
        )
        assert response.status_code == 201, response.text
        lead_id: str = response.json()["id"]
        return lead_id

    def lead_count(self) -> int:
        count: int = self.query("SELECT COUNT() FROM Lead").json()["totalSize"]
        return count

    def root(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A call outside the REST API (OAuth, SOAP, CometD), checked for its protocol's shape."""
        return self.call(method, f"{self.emulator.base_url}{path}", **kw)


def error(response: requests.Response) -> dict[str, Any]:
    [item] = response.json()
    assert isinstance(item, dict)
    return item


# --- SOQL errors that were not SoqlError -----------------------------------------------------------------


def test_misspelt_select_is_malformed_query_with_the_caret_block(api: Api) -> None:
    response = api.query("SELEC Id FROM Lead")
    assert response.status_code == 400
    assert error(response) == {
        "message": "\nSELEC Id FROM Lead\n^\nERROR at Row:1:Column:1\nunexpected token: 'SELEC'",
        "errorCode": "MALFORMED_QUERY",
    }


def test_misspelt_select_through_simple_salesforce_raises_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELEC Id FROM Lead")
    assert raised.value.status == 400
    assert raised.value.content[0]["errorCode"] == "MALFORMED_QUERY"


@pytest.mark.parametrize("literal", ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+10:00"])
def test_datetime_literal_past_the_calendar_is_an_unexpected_token(api: Api, literal: str) -> None:
    response = api.query(f"SELECT Id FROM Lead WHERE CreatedDate > {literal}")
    assert response.status_code == 400
    assert error(response)["errorCode"] == "MALFORMED_QUERY"
    assert error(response)["message"].endswith(f"unexpected token: '{literal}'")


@pytest.mark.parametrize("literal", ["N_DAYS_AGO:99999999999", "LAST_N_MONTHS:2147483648"])
def test_date_literal_n_beyond_a_java_int_is_an_unexpected_token(api: Api, literal: str) -> None:
    response = api.query(f"SELECT Id FROM Lead WHERE CreatedDate = {literal}")
    assert response.status_code == 400
    assert error(response)["errorCode"] == "MALFORMED_QUERY"
    assert error(response)["message"].endswith(f"unexpected token: '{literal.split(':')[1]}'")


def test_date_literal_reaching_past_the_calendar_covers_every_record(api: Api) -> None:
    api.create_lead()
    everyone = api.lead_count()
    soql = "SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:2147483647"
    assert api.query(soql).json()["totalSize"] == everyone
    soql = "SELECT COUNT() FROM Lead WHERE CreatedDate > NEXT_N_DAYS:2147483647"
    assert api.query(soql).json()["totalSize"] == 0


def _composite_query(api: Api, soql: str) -> dict[str, Any]:
    """A query as a composite subrequest: its URL travels in the body, so it may be longer than a URI."""
    body = {"compositeRequest": [{"method": "GET", "url": f"{V}/query?q={soql}", "referenceId": "q"}]}
    [sub] = api.call("POST", "/composite", json=body).json()["compositeResponse"]
    assert isinstance(sub, dict)
    return sub


def _nested_or_not(levels: int) -> str:
    condition = "Name = 'x'"
    for _ in range(levels):
        condition = f"(Name = 'y' OR NOT {condition})"
    return condition


@pytest.mark.parametrize("where", ["NOT " * 3000 + "Name = 'x'", _nested_or_not(3000)])
def test_filters_nested_thousands_deep_are_query_too_complicated(api: Api, where: str) -> None:
    sub = _composite_query(api, f"SELECT Id FROM Lead WHERE {where}")
    assert sub["httpStatusCode"] == 400
    assert sub["body"] == [
        {
            "message": "Query is either selecting too many fields or the filter conditions are too complicated.",
            "errorCode": "QUERY_TOO_COMPLICATED",
        }
    ]


def test_parentheses_thousands_deep_around_one_comparison_are_answered(api: Api) -> None:
    sub = _composite_query(api, "SELECT Id FROM Lead WHERE " + "(" * 3000 + "Name = 'x'" + ")" * 3000)
    assert sub["httpStatusCode"] == 200 and sub["body"]["totalSize"] == 0


def test_filters_nested_a_hundred_deep_are_answered(api: Api) -> None:
    lead = api.create_lead()
    response = api.query("SELECT Id FROM Lead WHERE " + "NOT " * 99 + "Name = 'nobody'")
    assert response.status_code == 200 and [r["Id"] for r in response.json()["records"]] == [lead]


def test_like_with_many_wildcards_on_a_long_value_answers(api: Api) -> None:
    lead = api.create_lead(Description="a" * 30000)
    response = api.query("SELECT Id FROM Lead WHERE Description LIKE '%a%a%a%a%a%a%a%a%a%a%b'")
    assert response.status_code == 200 and response.json()["totalSize"] == 0
    response = api.query("SELECT Id FROM Lead WHERE Description LIKE '%a%a_a%a%a%a%a%a%a%a%'")
    assert [r["Id"] for r in response.json()["records"]] == [lead]


def test_soql_over_100000_characters_is_refused_with_salesforces_message(api: Api) -> None:
    soql = "SELECT Id FROM Lead WHERE Name IN (" + ",".join(["'xxxxxxxxxx'"] * 9000) + ")"
    assert len(soql) > 100_000
    sub = _composite_query(api, soql)
    assert sub["httpStatusCode"] == 400
    assert sub["body"] == [
        {
            "message": "SOQL statements can not be longer than 100000 characters.",
            "errorCode": "MALFORMED_QUERY",
        }
    ]


# --- PushTopics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("SELECT Id, Name FROM Lead LIMIT 10", "INVALID_FIELD", "'LIMIT' is not allowed"),
        ("SELECT Id, Name FROM Lead ORDER BY Name", "INVALID_FIELD", "'ORDER BY' clause is not allowed"),
        ("SELECT Id FROM Lead WHERE NOT Name = 'x'", "INVALID_FIELD", "'NOT' is not supported"),
        ("SELECT Id, Owner.Name FROM Lead", "INVALID_FIELD", "relationships are not supported"),
        ("SELECT Id, COUNT(Name) FROM Lead", "INVALID_FIELD", "Aggregate queries are not supported"),
        ("SELECT Name FROM Lead", "INVALID_FIELD", None),
        ("SELEC Id FROM Lead", "MALFORMED_QUERY", None),
        ("SELECT Id FROM Lead WHERE " + "NOT " * 200 + "Name = 'x'", "QUERY_TOO_COMPLICATED", None),
        ("SELECT Id FROM Lead WHERE Nope__c = 1", "INVALID_FIELD", None),
    ],
)
def test_pushtopic_with_a_query_salesforce_refuses_is_not_created(
    api: Api, query: str, code: str, message: str | None
) -> None:
    topic = {"Name": "Bad", "Query": query[:1300], "ApiVersion": 59.0}
    response = api.call("POST", "/sobjects/PushTopic/", json=topic)
    assert response.status_code == 400
    assert error(response)["errorCode"] == code
    if message is not None:
        assert error(response)["message"] == message
    assert api.query("SELECT COUNT() FROM PushTopic WHERE Name = 'Bad'").json()["totalSize"] == 0


def test_refused_pushtopic_leaves_subscribe_and_change_events_working(
    api: Api, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/PushTopic",
                "referenceId": "topic",
                "body": {"Name": "Poison", "Query": "SELEC Id FROM Lead", "ApiVersion": 59.0},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "lead",
                "body": {"LastName": "L", "Company": "C"},
            },
        ],
    }
    topic, lead = api.call("POST", "/composite", json=body).json()["compositeResponse"]
    assert topic["httpStatusCode"] == 400 and lead["httpStatusCode"] == 201
    [shake] = bayeux(
        emulator_reset.base_url, emulator_http, api.token, [{"channel": "/meta/handshake", "id": "1"}]
    )
    subscribe = {
        "channel": "/meta/subscribe",
        "clientId": shake["clientId"],
        "subscription": "/topic/Poison",
        "id": "2",
    }
    [reply] = bayeux(emulator_reset.base_url, emulator_http, api.token, [subscribe])
    assert reply["successful"] is False and reply["error"].startswith("400::The channel you requested")
    # The transaction that tried to create the topic still published its lead's change event.
    replay_all = {
        **subscribe,
        "subscription": "/data/LeadChangeEvent",
        "ext": {"replay": {"/data/LeadChangeEvent": -2}},
    }
    assert bayeux(emulator_reset.base_url, emulator_http, api.token, [replay_all])[0]["successful"] is True
    connect = {
        "channel": "/meta/connect",
        "clientId": shake["clientId"],
        "connectionType": "long-polling",
        "id": "3",
    }
    events = bayeux(emulator_reset.base_url, emulator_http, api.token, [connect])[1:]
    ids = [i for e in events for i in e["data"]["payload"]["ChangeEventHeader"]["recordIds"]]
    assert lead["body"]["id"] in ids
    assert_still_serving(emulator_reset.base_url, emulator_http)


# --- wrongly typed JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["/composite", "/composite/batch"])
def test_non_object_subrequest_fails_the_whole_request_before_anything_runs(api: Api, resource: str) -> None:
    create = {"method": "POST", "url": f"{V}/sobjects/Lead", "body": {"LastName": "L", "Company": "C"}}
    if resource == "/composite":
        body: dict[str, Any] = {"compositeRequest": [{**create, "referenceId": "a"}, 5]}
    else:
        body = {"batchRequests": [{**create, "richInput": create.pop("body")}, "x"]}
    before = api.lead_count()
    response = api.call("POST", resource, json=body)
    assert response.status_code == 400 and error(response)["errorCode"] == "JSON_PARSER_ERROR"
    assert api.lead_count() == before


def test_batch_subrequest_that_fails_fails_alone_after_a_committed_one(api: Api) -> None:
    before = api.lead_count()
    body = {
        "batchRequests": [
            {"method": "POST", "url": "v59.0/sobjects/Lead", "richInput": {"LastName": "L", "Company": "C"}},
            {"method": "GET", "url": "v59.0/query?q=SELEC+Id+FROM+Lead"},
            {
                "method": "POST",
                "url": "v59.0/sobjects/Opportunity",
                "richInput": {"Name": "O", "Amount": 1e300},
            },
        ]
    }
    response = api.call("POST", "/composite/batch", json=body)
    assert response.status_code == 200
    created, query, opportunity = response.json()["results"]
    assert created["statusCode"] == 201 and response.json()["hasErrors"] is True
    assert query["statusCode"] == 400 and query["result"][0]["errorCode"] == "MALFORMED_QUERY"
    assert opportunity["statusCode"] == 400
    assert opportunity["result"][0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    assert api.lead_count() == before + 1


@pytest.mark.parametrize("attributes", ["Lead", 5, ["Lead"]])
def test_collection_record_whose_attributes_are_not_an_object_fails_alone(api: Api, attributes: Any) -> None:
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": attributes, "LastName": "Bad", "Company": "C"},
            {"attributes": {"type": "Lead"}, "LastName": "Good", "Company": "C"},
        ],
    }
    bad, good = api.call("POST", "/composite/sobjects", json=body).json()
    assert bad["success"] is False and bad["errors"][0]["statusCode"] == "JSON_PARSER_ERROR"
    assert good["success"] is True


@pytest.mark.parametrize("ids", [5, "00Q000000000000AAA", {"a": 1}])
def test_retrieve_many_with_ids_that_are_not_a_list_is_a_json_parser_error(api: Api, ids: Any) -> None:
    response = api.call("POST", "/composite/sobjects/Lead", json={"ids": ids, "fields": ["Id"]})
    assert response.status_code == 400 and error(response)["errorCode"] == "JSON_PARSER_ERROR"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_numeric_numbers_are_refused_as_json_parser_error(api: Api, token: str) -> None:
    body = '{"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Amount": ' + token + "}"
    response = api.raw("POST", "/sobjects/Opportunity/", body.encode())
    assert response.status_code == 400
    assert error(response) == {
        "message": f"Non-standard token '{token}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow",
        "errorCode": "JSON_PARSER_ERROR",
    }


@pytest.mark.parametrize("number", ["1e400", "9" * 400, "-" + "9" * 400, "1" + "0" * 16])
def test_numbers_beyond_the_fields_precision_are_number_outside_valid_range(api: Api, number: str) -> None:
    body = '{"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Amount": ' + number + "}"
    response = api.raw("POST", "/sobjects/Opportunity/", body.encode())
    assert response.status_code == 400
    item = error(response)
    assert item["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE" and item["fields"] == ["Amount"]
    assert item["message"].startswith("Amount: value outside of valid range on numeric field: ")


def test_amount_within_the_fields_precision_is_stored(api: Api) -> None:
    body = {"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Amount": 99999999999999.5}
    assert api.call("POST", "/sobjects/Opportunity/", json=body).status_code == 201


def test_nan_bayeux_advice_timeout_is_invalid_json(api: Api) -> None:
    body = b'[{"channel": "/meta/handshake", "id": "1", "advice": {"timeout": NaN}}]'
    response = api.root("POST", "/cometd/59.0", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == [{"successful": False, "error": "400::Invalid JSON"}]


# --- bodies and credentials --------------------------------------------------------------------------------


def test_json_nested_a_thousand_deep_is_a_json_parser_error(api: Api) -> None:
    response = api.raw("POST", "/sobjects/Lead/", b'{"LastName": ' + b"[" * 1000 + b"]" * 1000 + b"}")
    assert response.status_code == 400
    assert error(response)["errorCode"] == "JSON_PARSER_ERROR"
    assert error(response)["message"].startswith(
        "Document nesting depth (1001) exceeds the maximum allowed (500"
    )


def test_body_over_50_mb_is_refused_with_salesforces_message(api: Api) -> None:
    body = b'{"LastName": "' + b"x" * 52_428_800 + b'"}'
    response = api.raw("POST", "/sobjects/Lead/", body)
    assert response.status_code == 400
    assert error(response) == {
        "message": "Maximum size of request reached. Maximum size of request is 52428800 bytes.",
        "errorCode": "JSON_PARSER_ERROR",
    }


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_garbage_compressed_rest_body_is_a_400_in_the_rest_shape(api: Api, encoding: str) -> None:
    response = api.raw("POST", "/sobjects/Lead/", b"this is not compressed", **{"Content-Encoding": encoding})
    assert response.status_code == 400 and error(response)["errorCode"] == "JSON_PARSER_ERROR"


def test_gzip_rest_body_is_read(api: Api) -> None:
    body = gzip.compress(json.dumps({"LastName": "Zipped", "Company": "C"}).encode())
    assert api.raw("POST", "/sobjects/Lead/", body, **{"Content-Encoding": "gzip"}).status_code == 201


TOKEN = "/services/oauth2/token"
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "error_code"),
    [
        (b"grant_type=password&client_id=\xff\xfe&username=x&password=y", FORM, "invalid_client_id"),
        (
            b"grant_type=password&client_id=sfconnector-demo&client_secret=%C3%A9%E2%82%AC",
            FORM,
            "invalid_client",
        ),
        (
            "grant_type=password&client_id=sfconnector-demo&client_secret=demo-secret"
            "&username=integration@sfconnector.test&password=démo-пароль".encode(),
            FORM,
            "invalid_grant",
        ),
        (b"grant_type=password", f"{FORM}; charset=klingon", "unsupported_grant_type"),
        (b"--xx\r\nbroken", "multipart/form-data; boundary=xx", "unsupported_grant_type"),
    ],
)
def test_malformed_token_requests_get_oauth_errors(
    api: Api, body: bytes, content_type: str, error_code: str
) -> None:
    response = api.root("POST", TOKEN, data=body, headers={"Content-Type": content_type})
    assert response.status_code == 400 and response.json()["error"] == error_code


@pytest.mark.parametrize(
    "basic", ["Basic é", "Basic !!!not-base64!!!", "Basic " + "w6k=" + ":", "Basic /w=="]
)
def test_client_credentials_with_a_broken_basic_header_is_invalid_client(api: Api, basic: str) -> None:
    response = api.root(
        "POST",
        TOKEN,
        data="grant_type=client_credentials",
        headers={"Content-Type": FORM, "Authorization": basic},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_garbage_gzip_token_request_is_invalid_request(api: Api) -> None:
    response = api.root(
        "POST", TOKEN, data=b"garbage", headers={"Content-Type": FORM, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- answers in Salesforce's shape -------------------------------------------------------------------------


def test_create_with_infinity_is_refused_so_no_answer_or_event_carries_it(
    api: Api, emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    body = b'{"LastName": "L", "Company": "C", "AnnualRevenue": Infinity}'
    assert api.raw("POST", "/sobjects/Lead/", body).status_code == 400
    rows = api.query("SELECT AnnualRevenue FROM Lead WHERE AnnualRevenue != null").json()["records"]
    assert all(isinstance(r["AnnualRevenue"], float | int) for r in rows)
    assert_still_serving(emulator_reset.base_url, emulator_http)


def test_uri_and_headers_up_to_16384_bytes_are_accepted(api: Api) -> None:
    soql = "SELECT Id FROM Lead WHERE Name IN (" + ",".join(["'abcdefgh'"] * 700) + ")"
    response = api.query(soql)
    assert 10_000 < len(response.request.path_url) < 16_000  # over aiohttp's 8,190-byte default
    assert response.status_code == 200
    assert api.call("GET", "/limits", headers={"X-Padding": "p" * 12_000}).status_code == 200


def test_uri_over_16384_bytes_is_414_from_the_front_end(api: Api) -> None:
    response = api.call("GET", "/sobjects/Lead/" + "x" * 17_000)
    assert response.status_code == 414
    assert response.text == "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"


@pytest.mark.parametrize("headers", [{"X-Padding": "p" * 17_000}, {f"X-P{i}": "p" * 100 for i in range(200)}])
def test_headers_over_16384_bytes_are_431_from_the_front_end(api: Api, headers: dict[str, str]) -> None:
    response = api.call("GET", "/limits", headers=headers)
    assert response.status_code == 431
    assert response.text == "<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>"


@pytest.mark.parametrize(
    "path", ["/services/data/foo", "/services/data/v59.0x/limits", "/services/nothing/here"]
)
def test_unknown_paths_are_not_found_in_the_rest_shape(api: Api, path: str) -> None:
    response = api.root("GET", path)
    assert response.status_code == 404
    assert error(response) == {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}


def test_wrong_method_on_the_versions_list_is_method_not_allowed(api: Api) -> None:
    response = api.root("POST", "/services/data/")
    assert response.status_code == 405 and error(response)["errorCode"] == "METHOD_NOT_ALLOWED"


def test_get_of_the_token_endpoint_must_use_post(api: Api) -> None:
    response = api.root("GET", TOKEN)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "must use HTTP POST"}


@pytest.mark.parametrize("version", ["59.0<evil/>", "59.0&amp;", "5.0", "abc"])
def test_soap_login_at_a_bad_version_is_an_unsupported_api_version_fault(api: Api, version: str) -> None:
    envelope = "<Envelope><Body><login><username>u</username><password>p</password></login></Body></Envelope>"
    response = api.root(
        "POST",
        f"/services/Soap/u/{requests.utils.quote(version)}",
        data=envelope,
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
    )
    assert response.status_code == 500
    assert "<faultcode>sf:UNSUPPORTED_API_VERSION</faultcode>" in response.text
    assert "Invalid Api version specified on URL" in response.text
