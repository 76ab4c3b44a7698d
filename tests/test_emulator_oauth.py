"""Logins against the emulator: OAuth grants (with simple-salesforce's own token parsing), revocation, SOAP."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
import requests
from conftest import control
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession
from simple_salesforce.login import soap_login, token_login

from sfconnector.clock import system_clock
from sfemulator.server import Emulator

CLIENT_ID = "sfconnector-demo"
SECRET = "demo-secret"
USERNAME = "integration@sfconnector.test"
PASSWORD = "demo-password"


def post_token(emu: Emulator, http: requests.Session, data: dict[str, str], **kw: Any) -> requests.Response:
    return http.post(f"{emu.base_url}/services/oauth2/token", data=data, **kw)


def assertion(emu: Emulator, **claims: Any) -> str:
    key = (emu.tls_dir / "jwt-key.pem").read_bytes()
    payload = {
        "iss": CLIENT_ID,
        "sub": USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": f"{system_clock().timestamp() + 180:.0f}",
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="RS256")


def check_token_body(emu: Emulator, body: dict[str, Any]) -> None:
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == emu.base_url and not body["instance_url"].endswith("/")
    org_id, user_id = body["id"].rsplit("/", 2)[-2:]
    assert body["id"] == f"{emu.base_url}/id/{org_id}/{user_id}"
    assert user_id.startswith("005") and org_id.startswith("00D")
    assert (
        body["issued_at"].isdigit()
        and abs(int(body["issued_at"]) - system_clock().timestamp() * 1000) < 60_000
    )
    assert "refresh_token" not in body


def test_password_grant_and_the_token_works_for_rest(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    data = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "username": USERNAME,
        "password": PASSWORD,
    }
    response = post_token(emulator_reset, emulator_http, data)
    assert response.status_code == 200
    body = response.json()
    check_token_body(emulator_reset, body)
    sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=emulator_http)
    assert sf.query("SELECT COUNT() FROM Advocate__c")["totalSize"] == 6


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        ({"password": "wrong"}, "invalid_grant", "authentication failure"),
        ({"username": "nobody@x.test"}, "invalid_grant", "authentication failure"),
        ({"username": "erin.walsh@sfconnector.test"}, "invalid_grant", "authentication failure"),
        ({"client_id": "other"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
        ({"grant_type": "magic"}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_password_grant_errors(
    emulator_reset: Emulator,
    emulator_http: requests.Session,
    change: dict[str, str],
    error: str,
    description: str,
) -> None:
    data = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        **change,
    }
    response = post_token(emulator_reset, emulator_http, data)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_jwt_bearer_with_the_key_in_the_tls_dir_through_simple_salesforce(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    token, instance = token_login(
        f"{emulator_reset.base_url}/services/oauth2/token",
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion(emulator_reset)},
        "login",
        CLIENT_ID,
        None,
        None,
        emulator_http,
    )
    assert instance == emulator_reset.base_url.removeprefix("https://")
    sf = Salesforce(instance_url=emulator_reset.base_url, session_id=token, session=emulator_http)
    assert sf.query("SELECT Id FROM User WHERE Username = 'integration@sfconnector.test'")["totalSize"] == 1


def test_jwt_audience_may_be_the_emulator_itself(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion(emulator_reset, aud=emulator_reset.base_url),
    }
    response = post_token(emulator_reset, emulator_http, data)
    assert response.status_code == 200
    check_token_body(emulator_reset, response.json())
    assert response.json()["scope"] == "api"


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
        ({"exp": f"{system_clock().timestamp() - 10:.0f}"}, "invalid_grant", "expired authorization code"),
        ({"exp": None}, "invalid_grant", "invalid assertion"),
        ({"iss": "unknown-app"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "alice.nguyen@sfconnector.test"}, "invalid_grant", "user hasn't approved this consumer"),
        ({"sub": "nobody@sfconnector.test"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_jwt_bearer_errors(
    emulator_reset: Emulator,
    emulator_http: requests.Session,
    claims: dict[str, Any],
    error: str,
    description: str,
) -> None:
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion(emulator_reset, **claims),
    }
    response = post_token(emulator_reset, emulator_http, data)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_jwt_signed_by_another_key_is_refused(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = jwt.encode(
        {
            "iss": CLIENT_ID,
            "sub": USERNAME,
            "aud": "https://login.salesforce.com",
            "exp": int(system_clock().timestamp()) + 60,
        },
        other,
        algorithm="RS256",
    )
    data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged}
    response = post_token(emulator_reset, emulator_http, data)
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_client_credentials_with_basic_auth_runs_as_the_integration_user(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    response = post_token(
        emulator_reset,
        emulator_http,
        {"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    body = response.json()
    check_token_body(emulator_reset, body)
    sf = Salesforce(
        instance_url=emulator_reset.base_url, session_id=body["access_token"], session=emulator_http
    )
    me = sf.query(f"SELECT Username FROM User WHERE Id = '{body['id'].rsplit('/', 1)[1]}'")["records"][0]
    assert me["Username"] == USERNAME


def test_client_credentials_in_the_form_and_a_wrong_secret(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    ok = post_token(
        emulator_reset,
        emulator_http,
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
    )
    assert ok.status_code == 200
    bad = post_token(
        emulator_reset,
        emulator_http,
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "x"},
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_refresh_token_grant(emulator_reset: Emulator, emulator_http: requests.Session) -> None:
    refresh = control(emulator_reset, emulator_http, "POST", "refresh-tokens", {"username": USERNAME})[
        "refresh_token"
    ]
    data = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "refresh_token": refresh,
    }
    response = post_token(emulator_reset, emulator_http, data)
    assert response.status_code == 200
    check_token_body(emulator_reset, response.json())
    data["refresh_token"] = "stale"
    stale = post_token(emulator_reset, emulator_http, data)
    assert stale.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_token_endpoint_accepts_a_chunked_body(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    body = f"grant_type=password&client_id={CLIENT_ID}&client_secret={SECRET}&username={USERNAME}&password={PASSWORD}"

    def chunks() -> Any:
        yield body[:20].encode()
        yield body[20:].encode()

    response = emulator_http.post(
        f"{emulator_reset.base_url}/services/oauth2/token",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


def test_revoked_token_is_refused(emulator_reset: Emulator, emulator_http: requests.Session) -> None:
    data = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "username": USERNAME,
        "password": PASSWORD,
    }
    token = post_token(emulator_reset, emulator_http, data).json()["access_token"]
    revoked = emulator_http.post(f"{emulator_reset.base_url}/services/oauth2/revoke", data={"token": token})
    assert revoked.status_code == 200
    sf = Salesforce(instance_url=emulator_reset.base_url, session_id=token, session=emulator_http)
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()


def test_token_calls_count_as_kind_token_but_not_as_api_usage(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    post_token(emulator_reset, emulator_http, data)
    stats = control(emulator_reset, emulator_http, "GET", "stats")
    assert stats["by_kind"]["token"] == 1
    assert stats["api_usage"]["used"] == 0 and stats["total"] == 0


SOAP_BODY = """<?xml version="1.0" encoding="utf-8" ?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
    <soapenv:Header><urn:CallOptions><urn:client>simple-salesforce</urn:client>
        <urn:defaultNamespace>sf</urn:defaultNamespace></urn:CallOptions></soapenv:Header>
    <soapenv:Body><urn:login><urn:username>{username}</urn:username><urn:password>{password}</urn:password>
    </urn:login></soapenv:Body>
</soapenv:Envelope>"""

JSFORCE_BODY = """<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header/><se:Body>
<login xmlns="urn:partner.soap.sforce.com"><username>{username}</username><password>{password}</password></login>
</se:Body></se:Envelope>"""


@pytest.mark.parametrize("template", [SOAP_BODY, JSFORCE_BODY], ids=["simple-salesforce", "jsforce"])
def test_soap_login_parsed_by_simple_salesforce(
    emulator_reset: Emulator, emulator_http: requests.Session, template: str
) -> None:
    session_id, instance = soap_login(
        f"{emulator_reset.base_url}/services/Soap/u/59.0",
        template.format(username=USERNAME, password=PASSWORD),
        {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"},
        None,
        emulator_http,
    )
    assert instance == emulator_reset.base_url.removeprefix("https://")
    sf = Salesforce(instance_url=emulator_reset.base_url, session_id=session_id, session=emulator_http)
    assert sf.limits()["DailyApiRequests"]["Max"] == 100000


def test_soap_login_fault(emulator_reset: Emulator, emulator_http: requests.Session) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        soap_login(
            f"{emulator_reset.base_url}/services/Soap/u/59.0",
            SOAP_BODY.format(username=USERNAME, password="wrong"),
            {"content-type": "text/xml", "SOAPAction": "login"},
            None,
            emulator_http,
        )
    assert err.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token; or user locked out." in str(err.value)
