"""Logins: the OAuth 2.0 token endpoint (password, refresh_token, JWT bearer, client_credentials),
token revocation, the identity URL and SOAP `login()`; bodies as Salesforce sends them (notes §1)."""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
import math
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import jwt
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from cryptography import x509

from sfemulator.edge import json_response, read_body, soap_fault
from sfemulator.edge import oauth_error as _oauth_error
from sfemulator.identity import ConnectedApp, Session, same_secret
from sfemulator.settings import STATE_KEY, EmulatorState

LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
_SOAP_VERSION_RE = re.compile(r"^(\d{1,2})\.0$")
SOAP_MIN_VERSION, SOAP_MAX_VERSION = 20, 67  # as the REST API (sfemulator.rest)


def token_body(
    state: EmulatorState, session: Session, app: ConnectedApp | None, scope: str | None
) -> dict[str, Any]:
    base = state.settings.base_url.rstrip("/")
    issued = str(int(session.issued_at.timestamp() * 1000))
    identity = f"{base}/id/{state.org.org_id}/{session.user_id}"
    secret = (app.client_secret if app else "").encode()
    signature = base64.b64encode(
        hmac.new(secret, (identity + issued).encode(), hashlib.sha256).digest()
    ).decode()
    body: dict[str, Any] = {
        "access_token": session.token,
        "instance_url": base,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": signature,
    }
    if scope:
        body["scope"] = scope
    return body


async def _form(request: web.Request) -> dict[str, str]:
    """The token request's parameters, read as a servlet reads them: bytes that are not valid in the
    charset become U+FFFD, and a body that cannot be read at all (an unknown charset, a broken multipart
    or gzip stream) has no parameters, so it is refused as a request without a grant [UNCONFIRMED]."""
    try:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        raw = await read_body(request)
        charset = request.charset or "utf-8"
        codecs.lookup(charset)
        text = raw.decode(charset, errors="replace")
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace"))
    except (ValueError, LookupError, HttpProcessingError):  # a broken transport stream goes to the edge
        return {}


async def token(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    state.org.stats.count("token", api_call=False)
    fields = await _form(request)
    grant = fields.get("grant_type", "")
    if grant == "password":
        return _password(state, fields)
    if grant == "refresh_token":
        return _refresh(state, fields)
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _jwt_bearer(state, fields)
    if grant == "client_credentials":
        return _client_credentials(state, fields, request.headers.get("Authorization"))
    return _oauth_error("unsupported_grant_type", "grant type not supported")


def _app(state: EmulatorState, client_id: str) -> ConnectedApp | None:
    return state.org.identity.apps.get(client_id)


def _active_user(state: EmulatorState, username: str) -> dict[str, Any] | None:
    user = state.org.user_by_username(username)
    return user if user and user.get("IsActive") else None


def _password(state: EmulatorState, f: dict[str, str]) -> web.Response:
    app = _app(state, f.get("client_id", ""))
    if app is None:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if not same_secret(f.get("client_secret", ""), app.client_secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    user = _active_user(state, f.get("username", ""))
    if user is None or not state.org.identity.check_password(user["Id"], f.get("password", "")):
        return _oauth_error("invalid_grant", "authentication failure")
    session = state.org.identity.new_session(user["Id"], app.client_id)
    return json_response(200, token_body(state, session, app, None))


def _refresh(state: EmulatorState, f: dict[str, str]) -> web.Response:
    app = _app(state, f.get("client_id", ""))
    if app is None:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if "client_secret" in f and not same_secret(f["client_secret"], app.client_secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    found = state.org.identity.refresh_tokens.get(f.get("refresh_token", ""))
    if found is None or found[1] != app.client_id or not state.org.is_active_user(found[0]):
        return _oauth_error("invalid_grant", "expired access/refresh token")
    session = state.org.identity.new_session(found[0], app.client_id)
    return json_response(200, token_body(state, session, app, None))


def _jwt_bearer(state: EmulatorState, f: dict[str, str]) -> web.Response:
    assertion = f.get("assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return _oauth_error("invalid_grant", "invalid assertion")
    app = _app(state, str(claims.get("iss", "")))
    if app is None:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if header.get("alg") != "RS256" or app.certificate_pem is None:
        return _oauth_error("invalid_grant", "invalid assertion")
    try:
        public_key = x509.load_pem_x509_certificate(app.certificate_pem).public_key()
        jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except (jwt.PyJWTError, ValueError):
        return _oauth_error("invalid_grant", "invalid assertion")
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    allowed = {*LOGIN_AUDIENCES, state.settings.base_url.rstrip("/")}
    if not any(isinstance(a, str) and a.rstrip("/") in allowed for a in audiences):
        return _oauth_error("invalid_grant", "audience is invalid")
    try:
        exp = float(claims["exp"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return _oauth_error("invalid_grant", "invalid assertion")
    if not math.isfinite(exp):  # PyJWT reads NaN and Infinity; no real expiry is either
        return _oauth_error("invalid_grant", "invalid assertion")
    if exp <= state.org.clock().timestamp():
        return _oauth_error("invalid_grant", "expired authorization code")
    username = str(claims.get("sub") or claims.get("prn") or "")
    user = state.org.user_by_username(username)
    if user is None or (app.preauthorized is not None and username.lower() not in app.preauthorized):
        return _oauth_error("invalid_grant", "user hasn't approved this consumer")
    if not user.get("IsActive"):
        return _oauth_error("invalid_grant", "inactive user")
    session = state.org.identity.new_session(user["Id"], app.client_id)
    return json_response(200, token_body(state, session, app, "api"))


def _client_credentials(state: EmulatorState, f: dict[str, str], authorization: str | None) -> web.Response:
    client_id, secret = f.get("client_id", ""), f.get("client_secret", "")
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
            return _oauth_error("invalid_client", "invalid client credentials")
        client_id, _, secret = decoded.partition(":")
    app = _app(state, client_id)
    if app is None:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    if not same_secret(secret, app.client_secret):
        return _oauth_error("invalid_client", "invalid client credentials")
    user = _active_user(state, app.run_as) if app.run_as else None
    if user is None:
        return _oauth_error("invalid_grant", "no client credentials user enabled")
    session = state.org.identity.new_session(user["Id"], app.client_id)
    return json_response(200, token_body(state, session, app, "api"))


async def revoke(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    form = await request.post() if request.method == "POST" else request.query
    given = str(form.get("token") or "")
    if not given or not state.org.identity.revoke(given):
        return _oauth_error("unsupported_token_type", "this token type is not supported")
    return web.Response(status=200)


async def identity_url(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    auth = request.headers.get("Authorization", "")
    user_id = state.org.authenticate(auth.split(" ", 1)[1]) if " " in auth else None
    if user_id is None:
        return web.Response(status=403, text="Bad_OAuth_Token")
    found = state.org.get(request.match_info["user"])
    if found is None or found[0] != "User":
        return web.Response(status=404, text="Bad_Id")
    user = found[1]
    base = state.settings.base_url.rstrip("/")
    return json_response(
        200,
        {
            "id": f"{base}/id/{state.org.org_id}/{user['Id']}",
            "user_id": user["Id"],
            "organization_id": state.org.org_id,
            "username": user.get("Username"),
            "display_name": user.get("Name"),
            "email": user.get("Email"),
            "active": bool(user.get("IsActive")),
            "user_type": "STANDARD",
            "urls": {"rest": f"{base}/services/data/v{{version}}/"},
        },
    )


# --- SOAP login ------------------------------------------------------------------------------------


def _soap_fault(code: str, message: str) -> web.Response:
    return soap_fault(code, message, kind="LoginFault")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


async def soap_login(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    state.org.stats.count("token", api_call=False)
    match = _SOAP_VERSION_RE.match(request.match_info["version"])
    if match is None or not SOAP_MIN_VERSION <= int(match.group(1)) <= SOAP_MAX_VERSION:
        # UNSUPPORTED_API_VERSION as Salesforce words it (IlluminatedCloud#1820, lwc-soql-builder#30).
        return soap_fault("UNSUPPORTED_API_VERSION", "Invalid Api version specified on URL")
    version = f"{match.group(1)}.0"
    raw = await read_body(request)
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, ValueError, LookupError):  # not XML, or an encoding Python does not know
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    values: dict[str, str] = {}
    login_seen = False
    for el in root.iter():
        name = _local(el.tag)
        if name == "login":
            login_seen = True
        elif name in ("username", "password") and name not in values:
            values[name] = el.text or ""
    if not login_seen:
        return _soap_fault("UNKNOWN_EXCEPTION", "The SOAP body does not contain a login request.")
    user = _active_user(state, values.get("username", ""))
    if user is None or not state.org.identity.check_password(user["Id"], values.get("password", "")):
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    session = state.org.identity.new_session(user["Id"], None)
    base = state.settings.base_url.rstrip("/")
    org_id = state.org.org_id
    org_row = state.org.get(org_id)
    org_name = org_row[1].get("Name", "") if org_row else ""
    server_url = f"{base}/services/Soap/u/{version}/{org_id[:15]}"
    body = f"""<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<metadataServerUrl>{base}/services/Soap/m/{version}/{org_id[:15]}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>{server_url}</serverUrl>\
<sessionId>{escape(session.token)}</sessionId><userId>{user["Id"]}</userId><userInfo>\
<accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol>\
<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><organizationId>{org_id}</organizationId>\
<organizationMultiCurrency>false</organizationMultiCurrency><organizationName>{escape(org_name)}</organizationName>\
<sessionSecondsValid>{state.org.identity.session_seconds}</sessionSecondsValid>\
<userEmail>{escape(str(user.get("Email", "")))}</userEmail><userFullName>{escape(str(user.get("Name", "")))}</userFullName>\
<userId>{user["Id"]}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale>\
<userName>{escape(str(user.get("Username", "")))}</userName><userTimeZone>GMT</userTimeZone>\
<userType>Standard</userType></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
    return web.Response(status=200, body=body.encode(), content_type="text/xml", charset="UTF-8")
