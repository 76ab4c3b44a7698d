"""What a Salesforce answer looks like, per protocol, and whether the emulator is still well after abuse.

Shared by the regression tests for hostile input and the fuzz test: `shape_problem(protocol, response)` says
what is wrong with an answer (None when it is in Salesforce's shape), `assert_still_serving` checks that
the emulator answers a query and delivers a change event.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from typing import Any

import requests

from sfemulator.edge import protocol_of

V = "/services/data/v59.0"
FRONT_END_STATUSES = (400, 414, 431)


def strict_json(text: str) -> Any:
    """JSON as a strict client reads it: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _is_front_end_page(response: requests.Response) -> bool:
    return response.status_code in FRONT_END_STATUSES and response.text.startswith(
        f"<h1>Bad Message {response.status_code}</h1>"
    )


def _rest_errors(body: Any, key: str = "errorCode") -> str | None:
    if not isinstance(body, list) or not body:
        return f"an error body must be a non-empty JSON list, got {body!r:.200}"
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            return f"an error needs a message: {item!r:.200}"
        if not isinstance(item.get(key), str) or not item[key].isupper():
            return f"an error needs an upper-case {key}: {item!r:.200}"
        if "fields" in item and not isinstance(item["fields"], list):
            return f"fields must be a list: {item!r:.200}"
        if item[key] == "UNKNOWN_EXCEPTION":
            return f"an input reached the emulator's unknown-error path: {item!r:.300}"
    return None


def _save_results(body: Any) -> str | None:
    """sObject Collections results: a list of SaveResults (or records / nulls for retrieve)."""
    if not isinstance(body, list):
        return None
    for item in body:
        if isinstance(item, dict) and item.get("success") is False:
            problem = _rest_errors(item.get("errors"), key="statusCode")
            if problem:
                return problem
    return None


def _action_results(body: Any) -> bool:
    """An invocable action's answer: one result per input, 400 when one failed (notes §7)."""
    return (
        isinstance(body, list) and bool(body) and all(isinstance(r, dict) and "actionName" in r for r in body)
    )


def _rest_body(status: int, body: Any) -> str | None:
    if _action_results(body):
        for result in body:
            if result.get("isSuccess") is False:
                problem = _rest_errors(result.get("errors"), key="statusCode")
                if problem:
                    return problem
        return None
    if status >= 400:
        return _rest_errors(body)
    if status == 300:
        return None if isinstance(body, list) and all(isinstance(u, str) for u in body) else "300 needs URLs"
    if isinstance(body, dict) and isinstance(body.get("compositeResponse"), list):
        for sub in body["compositeResponse"]:
            problem = _rest_body(int(sub.get("httpStatusCode", 0)), sub.get("body"))
            if problem:
                return f"composite subrequest {sub.get('referenceId')}: {problem}"
        return None
    if isinstance(body, dict) and isinstance(body.get("results"), list) and "hasErrors" in body:
        for sub in body["results"]:
            problem = _rest_body(int(sub.get("statusCode", 0)), sub.get("result"))
            if problem:
                return f"batch subrequest: {problem}"
        return None
    return _save_results(body)


def shape_problem(response: requests.Response, path: str | None = None) -> str | None:
    """What is not Salesforce-shaped about an answer, or None. `path` defaults to the request's."""
    protocol = protocol_of(path or requests.utils.urlparse(response.request.url).path or "/")
    status = response.status_code
    if _is_front_end_page(response):
        return None
    if status >= 500 and protocol != "soap":
        return f"{status} from {protocol}: {response.text[:300]}"
    text = response.text
    if protocol == "soap":
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            return f"SOAP answer is not well-formed XML ({exc}): {text[:300]}"
        if status == 200:
            return None if "loginResponse" in text else f"SOAP 200 without loginResponse: {text[:300]}"
        code = next((el.text for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "faultcode"), None)
        if status != 500 or not code or not code.startswith("sf:"):
            return f"SOAP refusal must be a 500 fault with an sf: code: {status} {text[:300]}"
        return "a SOAP input reached the unknown-error path" if code == "sf:UNKNOWN_EXCEPTION" else None
    if protocol == "identity":
        return None if status < 500 else f"identity URL {status}"
    if status == 204 or response.request.method == "HEAD":
        return None if not response.content else f"{status} with a body"
    try:
        body = strict_json(text) if text.strip() else None
    except ValueError as exc:
        return f"{protocol} answer is not strict JSON ({exc}): {text[:300]}"
    if protocol == "oauth":
        if status >= 400:
            ok = isinstance(body, dict) and isinstance(body.get("error"), str)
            ok = ok and isinstance(body.get("error_description"), str)
            return None if ok else f"OAuth error must be {{error, error_description}}: {text[:300]}"
        return None if status == 200 or not text else f"OAuth {status}"
    if protocol == "bayeux":
        if not isinstance(body, list) or not all(isinstance(m, dict) for m in body):
            return f"Bayeux answer must be a JSON array of messages: {text[:300]}"
        for message in body:
            if message.get("successful") is False:
                error = message.get("error")
                if not isinstance(error, str) or "::" not in error or not error.split("::")[0].isdigit():
                    return f"Bayeux error must be 'NNN::text': {message!r:.300}"
                if error.startswith("5"):
                    return f"a Bayeux input reached an internal error: {message!r:.300}"
        return None
    if protocol == "control":
        return None
    return _rest_body(status, body)


# --- the emulator after abuse -------------------------------------------------------------------------


def token(base_url: str, http: requests.Session) -> str:
    response = http.post(f"{base_url}/_emulator/sessions", json={}, timeout=10)
    response.raise_for_status()
    value: str = response.json()["access_token"]
    return value


def bayeux(base_url: str, http: requests.Session, auth: str, messages: list[dict[str, Any]]) -> Any:
    response = http.post(
        f"{base_url}/cometd/59.0",
        json=messages,
        headers={"Authorization": f"Bearer {auth}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_still_serving(base_url: str, http: requests.Session) -> None:
    """The emulator answers a query, and a lead created now arrives as a change event on /data/LeadChangeEvent."""
    auth = token(base_url, http)
    headers = {"Authorization": f"Bearer {auth}"}
    query = http.get(
        f"{base_url}{V}/query",
        params={"q": "SELECT Id FROM User LIMIT 1"},
        headers=headers,
        timeout=30,
    )
    assert query.status_code == 200 and query.json()["totalSize"] == 1, query.text
    [shake] = bayeux(base_url, http, auth, [{"channel": "/meta/handshake", "version": "1.0", "id": "h"}])
    client = shake["clientId"]
    channel = "/data/LeadChangeEvent"
    subscribe = {"channel": "/meta/subscribe", "clientId": client, "subscription": channel, "id": "s"}
    assert bayeux(base_url, http, auth, [subscribe])[0]["successful"] is True
    connect = {"channel": "/meta/connect", "clientId": client, "connectionType": "long-polling", "id": "c"}
    bayeux(base_url, http, auth, [connect])  # the first connect is answered at once
    created = http.post(
        f"{base_url}{V}/sobjects/Lead/",
        json={"LastName": "After the storm", "Company": "Still here"},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    lead_id = created.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = bayeux(base_url, http, auth, [{**connect, "advice": {"timeout": 5000}}])
        for event in replies:
            header = event.get("data", {}).get("payload", {}).get("ChangeEventHeader", {})
            if lead_id in header.get("recordIds", []):
                return
    raise AssertionError(f"no change event for lead {lead_id}")
