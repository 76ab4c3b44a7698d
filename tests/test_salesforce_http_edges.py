"""Narrow HTTP edge cases of the Salesforce client and token provider, with `responses` (no emulator)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests
import responses

from sfconnector.errors import (
    InvalidRequest,
    RecordLocked,
    RecordNotFound,
    RequestLimitExceeded,
    SalesforceApiError,
    ServerUnavailable,
    SessionExpired,
)
from sfconnector.retry import RetryPolicy, is_retryable, retries_without_sleep
from sfconnector.salesforce import (
    ApiUsage,
    AuthenticationFailed,
    AuthSettings,
    SalesforceClient,
    SalesforceSettings,
    TokenProvider,
)

LOGIN = "https://login.example.test"
INSTANCE = "https://org.example.test"
TOKEN_URL = f"{LOGIN}/services/oauth2/token"
DATA = f"{INSTANCE}/services/data/v62.0"


def settings(method: str = "client_credentials") -> SalesforceSettings:
    return SalesforceSettings(
        login_url=LOGIN,
        auth=AuthSettings(
            method=method, client_id="cid", client_secret="s3cret", username="u@x", password="pw"
        ),  # type: ignore[arg-type]
        client_name="sfconnector-test",
    )


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock, retries_without_sleep():
        yield mock


def token_reply(mock: responses.RequestsMock, *tokens: str) -> None:
    for tok in tokens:
        mock.add(
            responses.POST, TOKEN_URL, json={"access_token": tok, "instance_url": INSTANCE, "id": "x/y/z"}
        )


def client(mock: responses.RequestsMock, *tokens: str) -> tuple[SalesforceClient, TokenProvider]:
    token_reply(mock, *(tokens or ("tok-1",)))
    tp = TokenProvider(settings())
    return SalesforceClient(settings(), tp, read_retry=RetryPolicy("test", attempts=1)), tp


@pytest.mark.parametrize(
    ("status", "body", "error_type", "retryable"),
    [
        (
            503,
            [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server Unavailable"}],
            ServerUnavailable,
            True,
        ),
        (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}], ServerUnavailable, True),
        (502, "<html>bad gateway</html>", ServerUnavailable, True),
        (
            400,
            [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}],
            RecordLocked,
            True,
        ),
        (
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            RequestLimitExceeded,
            True,
        ),
        (400, [{"errorCode": "INVALID_FIELD", "message": "No such column 'foo'"}], InvalidRequest, False),
        (
            400,
            [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token: 'FRM'"}],
            InvalidRequest,
            False,
        ),
        (
            400,
            [
                {
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [Name]",
                    "fields": ["Name"],
                }
            ],
            InvalidRequest,
            False,
        ),
        (
            404,
            [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
            RecordNotFound,
            False,
        ),
        (404, [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}], RecordNotFound, False),
    ],
)
def test_error_answers_translate_to_the_error_tree(
    rsps: responses.RequestsMock, status: int, body: object, error_type: type, retryable: bool
) -> None:
    """Each status/errorCode becomes the right error class, retryable or not."""
    sf, _ = client(rsps)
    kwargs = {"json": body} if not isinstance(body, str) else {"body": body}
    rsps.add(responses.PATCH, f"{DATA}/sobjects/Lead/00Q000000000001AAA", status=status, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SalesforceApiError) as info:
        sf.update("Lead", "00Q000000000001AAA", {"OwnerId": "005000000000001AAA"})
    assert type(info.value) is error_type
    assert info.value.retryable is retryable
    assert info.value.status == status


def test_request_limit_is_not_retried_in_place() -> None:
    """REQUEST_LIMIT_EXCEEDED is retryable later but never by the in-place retry loop."""
    err = RequestLimitExceeded(
        "TotalRequests Limit exceeded.", error_code="REQUEST_LIMIT_EXCEEDED", status=403
    )
    assert err.retryable and not is_retryable(err)
    assert is_retryable(ServerUnavailable("x"))
    assert not is_retryable(InvalidRequest("x"))


def test_connection_failure_is_retryable_server_unavailable(rsps: responses.RequestsMock) -> None:
    """No answer at all (connection refused) is a retryable ServerUnavailable."""
    sf, _ = client(rsps)
    rsps.add(responses.GET, f"{DATA}/limits/", body=requests.ConnectionError("refused"))
    with pytest.raises(ServerUnavailable) as info:
        sf.limits()
    assert info.value.retryable


def test_every_request_carries_call_options_and_writes_carry_auto_assign_false(
    rsps: responses.RequestsMock,
) -> None:
    """Sforce-Call-Options names the client on reads and writes; Sforce-Auto-Assign: FALSE on every write."""
    sf, _ = client(rsps)
    rsps.add(responses.GET, f"{DATA}/query/", json={"totalSize": 0, "done": True, "records": []})
    rsps.add(responses.PATCH, f"{DATA}/sobjects/Lead/00Q1", status=204)
    sf.query("SELECT Id FROM Lead")
    sf.update("Lead", "00Q1", {"OwnerId": "005A"})
    get, patch = [c.request for c in rsps.calls if c.request.url and "/services/data/" in c.request.url]
    assert get.headers["Sforce-Call-Options"] == "client=sfconnector-test"
    assert "Sforce-Auto-Assign" not in get.headers
    assert patch.headers["Sforce-Call-Options"] == "client=sfconnector-test"
    assert patch.headers["Sforce-Auto-Assign"] == "FALSE"
    assert patch.headers["Authorization"] == "Bearer tok-1"


def test_limit_info_is_read_from_every_response_including_errors(rsps: responses.RequestsMock) -> None:
    """api_usage follows Sforce-Limit-Info on successes and on error answers alike."""
    sf, _ = client(rsps)
    assert sf.api_usage is None
    rsps.add(responses.GET, f"{DATA}/limits/", json={}, headers={"Sforce-Limit-Info": "api-usage=10/1000"})
    sf.limits()
    assert sf.api_usage == ApiUsage(10, 1000)
    rsps.add(
        responses.PATCH,
        f"{DATA}/sobjects/Lead/00Q1",
        status=403,
        json=[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
        headers={"Sforce-Limit-Info": "api-usage=1000/1000; per-app-api-usage=17/250(appName=x)"},
    )
    with pytest.raises(RequestLimitExceeded):
        sf.update("Lead", "00Q1", {})
    assert sf.api_usage == ApiUsage(1000, 1000)


def test_invalid_session_refreshes_token_once_and_resends(rsps: responses.RequestsMock) -> None:
    """401 INVALID_SESSION_ID: the token is invalidated, a new one fetched, and the request sent again."""
    sf, tp = client(rsps, "tok-old", "tok-new")
    rsps.add(
        responses.GET,
        f"{DATA}/limits/",
        status=401,
        json=[{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}],
    )
    rsps.add(responses.GET, f"{DATA}/limits/", json={"DailyApiRequests": {"Max": 1, "Remaining": 1}})
    assert sf.limits() == {"DailyApiRequests": {"Max": 1, "Remaining": 1}}
    auths = [
        c.request.headers.get("Authorization") for c in rsps.calls if "/limits/" in (c.request.url or "")
    ]
    assert auths == ["Bearer tok-old", "Bearer tok-new"]
    assert tp.grants_issued == 2


def test_invalid_session_twice_gives_up_with_session_expired(rsps: responses.RequestsMock) -> None:
    """A session refused again right after re-authentication is raised, not looped on."""
    sf, tp = client(rsps, "tok-1", "tok-2", "tok-3")
    for _ in range(3):
        rsps.add(
            responses.PATCH,
            f"{DATA}/sobjects/Lead/00Q1",
            status=401,
            json=[{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}],
        )
    with pytest.raises(SessionExpired):
        sf.update("Lead", "00Q1", {})
    assert tp.grants_issued == 2


def test_concurrent_invalidations_reauthenticate_once(rsps: responses.RequestsMock) -> None:
    """Many threads reporting the same invalid token cause a single new grant."""
    token_reply(rsps, "tok-1", "tok-2", "tok-3", "tok-4")
    tp = TokenProvider(settings())
    first = tp.token()
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def worker() -> None:
        barrier.wait()
        tp.invalidate(first.access_token)
        seen.append(tp.token().access_token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert set(seen) == {"tok-2"}
    assert tp.grants_issued == 2


def test_query_follows_next_records_url_verbatim(rsps: responses.RequestsMock) -> None:
    """query() returns every page, fetching nextRecordsUrl as an absolute path on the instance."""
    sf, _ = client(rsps)
    rsps.add(
        responses.GET,
        f"{DATA}/query/",
        json={
            "totalSize": 3,
            "done": False,
            "nextRecordsUrl": "/services/data/v62.0/query/01gXX-2",
            "records": [
                {"attributes": {"type": "Lead"}, "Id": "1"},
                {"attributes": {"type": "Lead"}, "Id": "2"},
            ],
        },
    )
    rsps.add(
        responses.GET,
        f"{DATA}/query/01gXX-2",
        json={"totalSize": 3, "done": True, "records": [{"attributes": {"type": "Lead"}, "Id": "3"}]},
    )
    assert [r["Id"] for r in sf.query("SELECT Id FROM Lead")] == ["1", "2", "3"]


def test_collection_results_keep_per_record_errors(rsps: responses.RequestsMock) -> None:
    """A 200 collections answer with failed items gives SaveResults carrying statusCode errors."""
    sf, _ = client(rsps)
    rsps.add(
        responses.PATCH,
        f"{DATA}/composite/sobjects",
        json=[
            {"id": "00Q1", "success": True, "errors": []},
            {
                "id": "00Q2",
                "success": False,
                "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}],
            },
        ],
    )
    results = sf.collection_update(
        [{"attributes": {"type": "Lead"}, "id": "00Q1"}, {"attributes": {"type": "Lead"}, "id": "00Q2"}]
    )
    assert [r.success for r in results] == [True, False]
    assert results[1].errors[0].status_code == "UNABLE_TO_LOCK_ROW"
    body = json.loads(rsps.calls[-1].request.body or b"{}")
    assert body["allOrNone"] is False and len(body["records"]) == 2


def test_collections_are_chunked_by_200(rsps: responses.RequestsMock) -> None:
    """450 records go out as 3 calls of at most 200, results in request order."""
    sf, _ = client(rsps)

    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body or b"{}")["records"]
        return 200, {}, json.dumps([{"id": r["Name"], "success": True, "errors": []} for r in records])

    rsps.add_callback(responses.POST, f"{DATA}/composite/sobjects", callback=reply)
    records = [{"attributes": {"type": "Task"}, "Name": str(i)} for i in range(450)]
    results = sf.collection_create(records)
    sizes = [
        len(json.loads(c.request.body or b"{}")["records"])
        for c in rsps.calls
        if "composite" in str(c.request.url)
    ]
    assert sizes == [200, 200, 50]
    assert [r.id for r in results] == [str(i) for i in range(450)]


def test_records_without_type_are_refused_before_sending(rsps: responses.RequestsMock) -> None:
    """collection_create without attributes.type raises InvalidRequest and sends nothing."""
    sf, _ = client(rsps)
    with pytest.raises(InvalidRequest):
        sf.collection_create([{"Name": "x"}])
    assert not [c for c in rsps.calls if "composite" in str(c.request.url)]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "authentication failure"}, "invalid_grant"),
        (
            400,
            {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            "invalid_client_id",
        ),
        (
            401,
            {"error": "invalid_client", "error_description": "invalid client credentials"},
            "invalid_client",
        ),
    ],
)
def test_token_endpoint_refusals_become_authentication_failed(
    rsps: responses.RequestsMock, status: int, body: dict[str, str], error: str
) -> None:
    """A refused grant raises AuthenticationFailed with Salesforce's error fields and without the secret."""
    rsps.add(responses.POST, TOKEN_URL, status=status, json=body)
    with pytest.raises(AuthenticationFailed) as info:
        TokenProvider(settings()).token()
    assert info.value.error == error
    assert info.value.error_description == body["error_description"]
    assert not info.value.retryable
    assert "s3cret" not in str(info.value)


def test_token_endpoint_outage_is_retried_then_succeeds(rsps: responses.RequestsMock) -> None:
    """5xx from the token endpoint is transient: retried under the auth policy."""
    rsps.add(responses.POST, TOKEN_URL, status=503, body="down")
    token_reply(rsps, "tok-ok")
    assert TokenProvider(settings()).token().access_token == "tok-ok"


def test_client_credentials_uses_basic_auth_and_password_grant_sends_fields(
    rsps: responses.RequestsMock,
) -> None:
    """client_credentials sends the id/secret as Basic auth; the password grant posts username/password."""
    token_reply(rsps, "a", "b")
    TokenProvider(settings("client_credentials")).token()
    TokenProvider(settings("password")).token()
    cc, pw = rsps.calls[0].request, rsps.calls[1].request
    assert str(cc.headers["Authorization"]).startswith("Basic ")
    assert "grant_type=client_credentials" in str(cc.body)
    assert "grant_type=password" in str(pw.body) and "username=u%40x" in str(pw.body)


def test_invalidate_never_waits_for_a_login_in_progress(rsps: responses.RequestsMock) -> None:
    """The streaming event loop can report a bad token while another thread is logging in."""
    entered, release = threading.Event(), threading.Event()

    def slow_login(_request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        entered.set()
        release.wait(5)
        return 200, {}, json.dumps({"access_token": "tok-slow", "instance_url": INSTANCE, "id": "x/y/z"})

    rsps.add_callback(responses.POST, TOKEN_URL, callback=slow_login)
    tp = TokenProvider(settings())
    login = threading.Thread(target=tp.token)
    login.start()
    try:
        assert entered.wait(5)
        invalidated = threading.Event()
        threading.Thread(target=lambda: (tp.invalidate("tok-old"), invalidated.set())).start()
        assert invalidated.wait(1), "invalidate() blocked behind the login"
    finally:
        release.set()
        login.join(5)
    assert tp.token().access_token == "tok-slow"


def test_untrusted_certificate_is_a_configuration_error_not_an_outage(rsps: responses.RequestsMock) -> None:
    """A certificate that does not verify is not retried and points at the CA bundle setting."""
    rsps.add(
        responses.POST,
        TOKEN_URL,
        body=requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
    )
    with pytest.raises(SalesforceApiError, match="ca_bundle") as info:
        TokenProvider(settings()).token()
    assert not info.value.retryable
    assert len(rsps.calls) == 1
