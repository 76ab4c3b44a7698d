"""Fidelity of the emulator's REST API to salesforce-notes §2-§3 and §10, over HTTPS against the real emulator:
details a client can tell apart, pinned one by one."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import requests
from conftest import new_token

from sfemulator.ids import to18
from sfemulator.server import Emulator


def rest(emulator: Emulator, http: requests.Session, token: str) -> Any:
    base = f"{emulator.base_url}/services/data/v59.0"

    def call(method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return http.request(method, base + path, headers=headers, timeout=10, **kw)

    return call


def test_upsert_with_update_only_never_creates(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    path = "/sobjects/Advocate__c/Referral_Code__c/NEW-9001"
    refused = call("PATCH", path + "?updateOnly=true", json={"Name": "Nobody"})
    assert refused.status_code == 404
    assert refused.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    assert refused.headers["Sforce-Limit-Info"].startswith("api-usage=")
    count = "/query?q=SELECT+COUNT()+FROM+Advocate__c+WHERE+Referral_Code__c+=+'NEW-9001'"
    assert call("GET", count).json()["totalSize"] == 0
    created = call("PATCH", path, json={"Name": "Newcomer"})
    assert created.status_code == 201 and created.json()["created"] is True
    updated = call("PATCH", path + "?updateOnly=true", json={"Name": "Renamed"})
    assert updated.status_code == 200
    assert updated.json() == {"id": created.json()["id"], "success": True, "errors": [], "created": False}


def test_an_assignment_rule_id_header_runs_the_rule_on_upsert_creates_only(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    reps = {
        r["Username"]: r["Id"]
        for r in call("GET", "/query?q=SELECT+Id,Username+FROM+User+WHERE+IsActive+=+true").json()["records"]
    }
    diego, alice = reps["diego.alvarez@sfconnector.test"], reps["alice.nguyen@sfconnector.test"]
    rule = {"Sforce-Auto-Assign": to18("01Q5g0000000001")}
    path = "/sobjects/Lead/External_Key__c/ext-rule-1"
    body = {"LastName": "Rule", "Company": "Globex", "Country": "Germany", "OwnerId": alice}
    created = call("PATCH", path, json=body, headers=rule)
    assert created.status_code == 201
    lead = created.json()["id"]
    assert call("GET", f"/sobjects/Lead/{lead}").json()["OwnerId"] == diego  # the rule ran on the create
    assert call("PATCH", path, json={"OwnerId": alice}, headers=rule).status_code == 200
    assert call("GET", f"/sobjects/Lead/{lead}").json()["OwnerId"] == alice  # not on the update
    assert call("PATCH", path, json={"OwnerId": alice}).status_code == 200
    assert call("GET", f"/sobjects/Lead/{lead}").json()["OwnerId"] == diego  # TRUE (default) runs on updates


def test_composite_allows_at_most_five_query_or_collection_subrequests(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    query = "/services/data/v59.0/query?q=SELECT+Id+FROM+Account"
    collection = "/services/data/v59.0/composite/sobjects"
    record = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Lead"}, "LastName": "C", "Company": "C"}],
    }

    def composite(count: int) -> requests.Response:
        subs: list[dict[str, Any]] = [
            {"method": "GET", "url": query, "referenceId": f"q{n}"} for n in range(count - 1)
        ]
        subs.append({"method": "POST", "url": collection, "referenceId": "c", "body": record})
        subs.append({"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "plain"})
        return call("POST", "/composite", json={"allOrNone": False, "compositeRequest": subs})

    five = composite(5)
    assert five.status_code == 200
    assert [r["httpStatusCode"] for r in five.json()["compositeResponse"]] == [200, 200, 200, 200, 200, 200]
    six = composite(6)
    assert six.status_code == 400 and six.json()[0]["errorCode"] == "LIMIT_EXCEEDED"
    leads = call("GET", "/query?q=SELECT+COUNT()+FROM+Lead+WHERE+Company+=+'C'").json()["totalSize"]
    assert leads == 1  # the refused request wrote nothing


def test_eighteen_character_ids_are_case_insensitive(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    lead = call("POST", "/sobjects/Lead/", json={"LastName": "Case", "Company": "C"}).json()["id"]
    owner = call("GET", "/query?q=SELECT+Id+FROM+User+WHERE+IsActive+=+true+LIMIT+1").json()["records"][0][
        "Id"
    ]
    assert lead != lead.lower() and owner != owner.lower()
    fetched = call("GET", f"/sobjects/Lead/{lead.lower()}?fields=Id")
    assert fetched.status_code == 200 and fetched.json()["Id"] == lead
    update = call(
        "PATCH",
        f"/sobjects/Lead/{lead.upper()}",
        json={"OwnerId": owner.lower()},
        headers={"Sforce-Auto-Assign": "FALSE"},
    )
    assert update.status_code == 204
    found = call("GET", f"/query?q=SELECT+OwnerId+FROM+Lead+WHERE+Id+=+'{lead.lower()}'").json()["records"]
    assert [r["OwnerId"] for r in found] == [owner]
    # The 15-character form stays case-sensitive, and a suffix that cannot fit the id is still malformed.
    assert call("GET", f"/sobjects/Lead/{lead[:15].swapcase()}").status_code == 404
    assert call("GET", f"/sobjects/Lead/{lead[:15]}ZZZ").json()[0]["errorCode"] == "MALFORMED_ID"


def test_query_all_pages_continue_under_query_and_include_deleted_rows(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    token = new_token(emulator_reset, emulator_http)
    call = rest(emulator_reset, emulator_http, token)
    ids: list[str] = []
    for batch in range(2):
        records = [
            {"attributes": {"type": "Lead"}, "LastName": f"P{batch}-{n}", "Company": "Paged"}
            for n in range(150)
        ]
        ids += [
            r["id"]
            for r in call("POST", "/composite/sobjects", json={"allOrNone": True, "records": records}).json()
        ]
    assert call("DELETE", f"/composite/sobjects?ids={','.join(ids[:100])}&allOrNone=true").status_code == 200
    small = {"Sforce-Query-Options": "batchSize=200"}
    soql = "SELECT Id, IsDeleted FROM Lead WHERE Company = 'Paged'"
    assert call("GET", f"/query?q={soql}", headers=small).json()["totalSize"] == 200
    first = call("GET", f"/queryAll?q={soql}", headers=small).json()
    assert first["totalSize"] == 300 and first["done"] is False and len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")  # not /queryAll/ (notes §2.4)
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    auth = {"Authorization": f"Bearer {token}", **small}
    # Used verbatim (simple-salesforce), or as a last segment under another version and queryAll (jsforce).
    pages = [
        emulator_http.get(f"{emulator_reset.base_url}{path}", headers=auth, timeout=10).json()
        for path in (first["nextRecordsUrl"], f"/services/data/v45.0/queryAll/{locator}")
    ]
    for page in pages:
        assert page["totalSize"] == 300 and page["done"] is True and "nextRecordsUrl" not in page
    rows = first["records"] + pages[0]["records"]
    assert sorted(r["Id"] for r in rows) == sorted(ids)
    assert sum(r["IsDeleted"] for r in rows) == 100
    assert pages[1]["records"] == pages[0]["records"]


def test_composite_without_all_or_none_halts_only_the_dependents_of_a_failure(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    url = "/services/data/v59.0/sobjects"
    subs = [
        {"method": "POST", "url": f"{url}/Lead", "referenceId": "bad", "body": {"LastName": "NoCompany"}},
        {
            "method": "POST",
            "url": f"{url}/Task",
            "referenceId": "task",
            "body": {"Subject": "x", "WhoId": "@{bad.id}"},
        },
        {
            "method": "POST",
            "url": f"{url}/Lead",
            "referenceId": "good",
            "body": {"LastName": "Ok", "Company": "C"},
        },
    ]
    reply = call("POST", "/composite", json={"allOrNone": False, "compositeRequest": subs})
    assert reply.status_code == 200
    bad, task, good = reply.json()["compositeResponse"]
    assert bad["httpStatusCode"] == 400 and bad["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert task["httpStatusCode"] == 400 and task["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert task["body"][0]["message"].startswith(
        "Invalid reference specified. No value for bad.id found in bad"
    )
    assert good["httpStatusCode"] == 201 and good["body"]["success"] is True
    assert call("GET", f"/sobjects/Lead/{good['body']['id']}?fields=LastName").json()["LastName"] == "Ok"


def test_jsforce_soap_login_chunked_with_an_empty_soap_action(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    envelope = (
        '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header/><se:Body>'
        '<login xmlns="urn:partner.soap.sforce.com"><username>integration@sfconnector.test</username>'
        "<password>demo-password</password></login></se:Body></se:Envelope>"
    )

    def chunks() -> Any:  # no Content-Length: Transfer-Encoding chunked (notes §10)
        yield envelope[:40].encode()
        yield envelope[40:].encode()

    reply = emulator_http.post(
        f"{emulator_reset.base_url}/services/Soap/u/59.0",
        data=chunks(),
        headers={"Content-Type": "text/xml", "SOAPAction": '""'},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.request.headers.get("Transfer-Encoding") == "chunked"
    root = ElementTree.fromstring(reply.content)
    unprefixed = {
        el.tag.rsplit("}", 1)[-1]: el.text for el in root.iter() if not el.tag.startswith("{urn:fault")
    }
    assert unprefixed["serverUrl"].startswith(emulator_reset.base_url + "/services/Soap/u/59.0/")
    assert unprefixed["passwordExpired"] == "false"
    assert unprefixed["organizationId"].startswith("00D") and unprefixed["userId"].startswith("005")
    token = unprefixed["sessionId"]
    limits = emulator_http.get(
        f"{emulator_reset.base_url}/services/data/v59.0/limits", headers={"Authorization": f"Bearer {token}"}
    )
    assert limits.status_code == 200
    wrong = emulator_http.post(
        f"{emulator_reset.base_url}/services/Soap/u/59.0",
        data=envelope.replace("demo-password", "nope"),
        headers={"Content-Type": "text/xml", "SOAPAction": '""'},
        timeout=10,
    )
    assert wrong.status_code >= 400
    fault = ElementTree.fromstring(wrong.content).find(".//faultstring")
    assert fault is not None and "INVALID_LOGIN" in (fault.text or "")


def test_email_simple_takes_the_newer_recipient_inputs(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    token = new_token(emulator_reset, emulator_http)
    call = rest(emulator_reset, emulator_http, token)
    newer = {"recipientAddresses": "grace@advocates.example", "emailSubject": "Hi", "emailBody": "Thanks"}
    reply = emulator_http.post(
        f"{emulator_reset.base_url}/services/data/v65.0/actions/standard/emailSimple",
        json={"inputs": [newer]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.json() == [
        {"actionName": "emailSimple", "errors": None, "isSuccess": True, "outputValues": None}
    ]
    nobody = call(
        "POST", "/actions/standard/emailSimple", json={"inputs": [{"emailSubject": "Hi", "emailBody": "x"}]}
    )
    assert (
        nobody.status_code == 400 and nobody.json()[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    )


def test_an_assignment_rule_id_header_runs_the_rule_on_collection_upsert_creates_only(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    call = rest(emulator_reset, emulator_http, new_token(emulator_reset, emulator_http))
    reps = {
        r["Username"]: r["Id"]
        for r in call("GET", "/query?q=SELECT+Id,Username+FROM+User+WHERE+IsActive+=+true").json()["records"]
    }
    diego, alice = reps["diego.alvarez@sfconnector.test"], reps["alice.nguyen@sfconnector.test"]
    existing = {"LastName": "Old", "Company": "G", "Country": "Germany", "External_Key__c": "ext-old"}
    call(
        "PATCH",
        "/sobjects/Lead/External_Key__c/ext-old",
        json=existing,
        headers={"Sforce-Auto-Assign": "FALSE"},
    )

    def lead(key: str) -> dict[str, Any]:
        body = {
            "LastName": key,
            "Company": "G",
            "Country": "Germany",
            "OwnerId": alice,
            "External_Key__c": key,
        }
        return {"attributes": {"type": "Lead"}, **body}

    reply = call(
        "PATCH",
        "/composite/sobjects/Lead/External_Key__c",
        json={"allOrNone": True, "records": [lead("ext-old"), lead("ext-new")]},
        headers={"Sforce-Auto-Assign": to18("01Q5g0000000001")},
    )
    assert [r["created"] for r in reply.json()] == [False, True]
    owners = call("GET", "/query?q=SELECT+External_Key__c,OwnerId+FROM+Lead+WHERE+Company+=+'G'").json()[
        "records"
    ]
    assert {r["External_Key__c"]: r["OwnerId"] for r in owners} == {"ext-old": alice, "ext-new": diego}
