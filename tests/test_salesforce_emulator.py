"""Token grants and REST client behaviour against the emulator, over real TLS sockets."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CLIENT_ID, INTEGRATION_USERNAME, sf_settings
from conftest import control_api as control

from sfconnector.errors import InvalidRequest, RecordNotFound, ServerUnavailable
from sfconnector.retry import RetryPolicy
from sfconnector.salesforce import (
    AuthenticationFailed,
    CompositeSubrequest,
    SalesforceClient,
    TokenProvider,
)

USERNAME = INTEGRATION_USERNAME


@pytest.mark.parametrize("method", ["jwt", "client_credentials", "password"])
def test_each_grant_obtains_a_token_for_the_emulator_instance(org: Any, method: str) -> None:
    """JWT bearer, client credentials and password grants each yield a usable token."""
    tokens = TokenProvider(sf_settings(org, method))
    token = tokens.token()
    assert token.access_token and token.instance_url.startswith("https://")
    client = SalesforceClient(sf_settings(org, method), tokens)
    users = client.query(f"SELECT Id, Username FROM User WHERE Username = '{USERNAME}'")
    assert [u["Username"] for u in users] == [USERNAME]


@pytest.mark.parametrize(
    ("method", "override"),
    [
        ("client_credentials", {"client_secret": "wrong-secret"}),
        ("password", {"password": "wrong-password"}),
        ("jwt", {"username": "nobody@sfconnector.test"}),
    ],
)
def test_refused_grants_raise_authentication_failed(org: Any, method: str, override: dict[str, str]) -> None:
    """Wrong credentials give AuthenticationFailed with Salesforce's error code, never the secret."""
    with pytest.raises(AuthenticationFailed) as info:
        TokenProvider(sf_settings(org, method, **override)).token()
    assert info.value.error
    assert "wrong-" not in str(info.value)


def test_expired_sessions_are_refreshed_transparently(org: Any, client: SalesforceClient) -> None:
    """After the emulator expires every session, the next call re-authenticates once and succeeds."""
    client.query("SELECT Id FROM User LIMIT 1")
    tokens: TokenProvider = client._tokens
    before = tokens.grants_issued
    control(org, "POST", "sessions/expire")
    assert client.query("SELECT Id FROM User LIMIT 1")
    client.limits()
    assert tokens.grants_issued == before + 1


def test_create_update_describe_and_not_found(client: SalesforceClient) -> None:
    """create returns an id, update applies, describe lists fields, unknown ids raise RecordNotFound."""
    lead_id = client.create(
        "Lead", {"LastName": "Nakamura", "Company": "Kite Ltd", "Referral_Code__c": "GRACE-1001"}
    )
    client.update("Lead", lead_id, {"Referral_Channel__c": "Card"})
    (row,) = client.query(f"SELECT Id, Referral_Channel__c FROM Lead WHERE Id = '{lead_id}'")
    assert row["Referral_Channel__c"] == "Card"
    assert "Referral_Code__c" in {f["name"] for f in client.describe("Lead")["fields"]}
    with pytest.raises(RecordNotFound):
        client.update("Lead", lead_id[:5] + "0000009999", {"LastName": "x"})  # a 15-character id nobody has
    with pytest.raises(InvalidRequest):
        client.update("Lead", lead_id, {"No_Such_Field__c": "x"})


def test_collections_create_update_upsert_in_request_order(client: SalesforceClient) -> None:
    """Collections return one SaveResult per record, failures in place, upsert created flags."""
    created = client.collection_create(
        [
            {"attributes": {"type": "Lead"}, "LastName": "One", "Company": "A"},
            {"attributes": {"type": "Lead"}, "Company": "missing last name"},
            {"attributes": {"type": "Lead"}, "LastName": "Three", "Company": "C"},
        ]
    )
    assert [r.success for r in created] == [True, False, True]
    assert created[1].id is None and created[1].errors
    updated = client.collection_update(
        [{"attributes": {"type": "Lead"}, "id": r.id, "Company": "Renamed"} for r in created if r.id]
    )
    assert all(r.success for r in updated)
    rows = [
        {"External_Key__c": "lead:T1", "Status__c": "Lead"},
        {"External_Key__c": "lead:T2", "Status__c": "Lead"},
    ]
    first = client.collection_upsert("Referral__c", "External_Key__c", rows)
    again = client.collection_upsert("Referral__c", "External_Key__c", rows)
    assert [r.created for r in first] == [True, True]
    assert [r.created for r in again] == [False, False]
    assert [r.id for r in first] == [r.id for r in again]


def test_composite_runs_subrequests_in_one_call(client: SalesforceClient) -> None:
    """A composite of a create, a reference to it and a query is one API call with per-subrequest answers."""
    calls = client.api_calls
    answers = client.composite(
        [
            CompositeSubrequest("POST", "sobjects/Lead", "newLead", {"LastName": "Ref", "Company": "R"}),
            CompositeSubrequest(
                "GET", "query?q=SELECT+Id,+LastName+FROM+Lead+WHERE+Id+=+'@{newLead.id}'", "q"
            ),
        ]
    )
    assert client.api_calls == calls + 1
    assert [a.status for a in answers] == [201, 200]
    assert answers[1].body["records"][0]["LastName"] == "Ref"


def test_query_follows_pages(client: SalesforceClient) -> None:
    """Small pages are followed to the end: every record comes back once."""
    client.collection_create(
        [{"attributes": {"type": "Lead"}, "LastName": f"P{i}", "Company": "Paging"} for i in range(450)]
    )
    rows = client.query("SELECT Id, LastName FROM Lead WHERE Company = 'Paging'", batch_size=200)
    assert sorted(r["LastName"] for r in rows) == sorted(f"P{i}" for i in range(450))
    assert len({r["Id"] for r in rows}) == 450


def test_email_simple_action(client: SalesforceClient) -> None:
    """emailSimple returns one result per input."""
    results = client.email_simple(
        [
            {
                "emailAddresses": "grace@advocates.example",
                "emailSubject": "Thanks",
                "emailBody": "Your referral arrived",
            }
        ]
    )
    assert [r.success for r in results] == [True]


def test_limit_info_is_tracked(client: SalesforceClient) -> None:
    """api_usage reflects Sforce-Limit-Info after calls."""
    client.query("SELECT Id FROM User LIMIT 1")
    first = client.api_usage
    client.query("SELECT Id FROM User LIMIT 1")
    assert first is not None and client.api_usage is not None
    assert client.api_usage.max == first.max and client.api_usage.used > first.used


def test_injected_503_is_retried_for_reads_and_raised_when_persistent(
    org: Any, client: SalesforceClient
) -> None:
    """Reads ride out a transient 503 under their retry policy and raise ServerUnavailable when it persists."""
    control(
        org,
        "POST",
        "faults",
        {
            "method": "GET",
            "path": "/query",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "message": "down",
            "count": 2,
        },
    )
    assert client.query("SELECT Id FROM User LIMIT 1")
    control(
        org,
        "POST",
        "faults",
        {
            "method": "GET",
            "path": "/limits",
            "status": 503,
            "errorCode": "SERVER_UNAVAILABLE",
            "message": "down",
            "count": 50,
        },
    )
    strict = SalesforceClient(sf_settings(org), client._tokens, read_retry=RetryPolicy("t", attempts=2))
    with pytest.raises(ServerUnavailable):
        strict.limits()


def test_refresh_token_grant(org: Any) -> None:
    """A refresh token issued to the connected app yields access tokens."""
    issued = control(org, "POST", "refresh-tokens", {"username": USERNAME, "client_id": CLIENT_ID})
    settings = sf_settings(
        org, "refresh_token", refresh_token=issued["refresh_token"], client_secret="demo-secret"
    )
    client = SalesforceClient(settings, TokenProvider(settings))
    assert client.query("SELECT Id FROM User LIMIT 1")


def test_async_get_token_shares_the_providers_token(org: Any) -> None:
    """get_token() from asyncio returns the same token the threads use, fetched once."""
    import asyncio

    tokens = TokenProvider(sf_settings(org))

    async def main() -> list[tuple[str, str]]:
        return await asyncio.gather(*(tokens.get_token() for _ in range(5)))

    results = asyncio.run(main())
    assert len(set(results)) == 1 and results[0][1] == org.base_url
    assert tokens.grants_issued == 1
    assert tokens.token().access_token == results[0][0]


def test_long_queries_travel_in_a_composite_body(client: SalesforceClient) -> None:
    """A SOQL statement too long for a request line still runs (through Composite), pages included."""
    created = client.collection_create(
        [{"attributes": {"type": "Lead"}, "LastName": f"Long{i}", "Company": "Long"} for i in range(300)]
    )
    ids = [r.id for r in created if r.id]
    in_list = ",".join(f"'{i}'" for i in ids)
    soql = f"SELECT Id FROM Lead WHERE Id IN ({in_list}) AND Company = 'Long'"
    assert len(soql) > 6000
    rows = client.query(soql)
    assert sorted(r["Id"] for r in rows) == sorted(ids)


def test_oversized_soql_is_refused_before_sending(client: SalesforceClient) -> None:
    """Beyond Salesforce's 100,000 characters the client refuses with a clear InvalidRequest."""
    calls = client.api_calls
    with pytest.raises(InvalidRequest, match="100000"):
        client.query("SELECT Id FROM Lead WHERE Name = '" + "x" * 100_000 + "'")
    assert client.api_calls == calls
