"""OAuth 2.0 access tokens for one process, shared by the REST client (threads) and streaming (asyncio).

Grants (all POSTed form-encoded to ``<login_url>/services/oauth2/token``):

- ``jwt``: JWT bearer, RS256 assertion ``{iss: client_id, sub: username, aud: login_url, exp: now+3min}``;
- ``client_credentials``: client id and secret as HTTP Basic auth;
- ``refresh_token`` and ``password`` (the password grant is being retired by Salesforce; kept for old orgs).

A token is reused until it is older than ``token_max_age_s``, until a caller forces a refresh, or until a
caller reports it invalid with :meth:`TokenProvider.invalidate`. Re-authentication happens under a lock and
only once per invalid token, however many threads noticed. Tokens and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import jwt
import requests
import structlog

from sfconnector.clock import Clock, system_clock
from sfconnector.errors import ServerUnavailable
from sfconnector.retry import AUTH, RetryPolicy

from ._types import SalesforceSettings, Token
from .errors import AuthenticationFailed, error_from_transport

_log = structlog.get_logger("sfconnector.salesforce.auth")

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_S = 180  # as simple-salesforce: the assertion is used at once, keep it short


class TokenProvider:
    """Thread-safe source of access tokens (one per process)."""

    def __init__(
        self,
        settings: SalesforceSettings,
        session: requests.Session | None = None,
        *,
        retry_policy: RetryPolicy = AUTH,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._clock = clock  # dates the JWT assertion's expiry
        self._session = session or requests.Session()
        if session is None:
            self._session.verify = settings.verify
        self._retry = retry_policy
        # Two locks: re-authenticating (slow, HTTP) holds only _refresh_lock, so invalidate() called from the
        # streaming event loop never waits for a login in progress on another thread.
        self._refresh_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._token: Token | None = None
        self.grants_issued = 0  # how many times a token was obtained (for tests and metrics)

    # -- public -----------------------------------------------------------------------------------------

    def token(self, force_refresh: bool = False) -> Token:
        """The current token, re-authenticating when forced, invalidated or too old."""
        seen = self._token
        if seen is not None and not force_refresh and not self._too_old(seen):
            return seen
        with self._refresh_lock:
            latest = self._token
            # Someone else refreshed while we waited for the lock: their fresh token serves us too.
            if latest is not None and not self._too_old(latest) and (not force_refresh or latest is not seen):
                return latest
            fresh = self._retry.call(self._authenticate)
            with self._state_lock:
                self._token = fresh
            return fresh

    async def get_token(self, force_refresh: bool = False) -> tuple[str, str]:
        """``(access_token, instance_url)`` for asyncio callers; the HTTP work runs in a thread."""
        tok = await asyncio.to_thread(self.token, force_refresh)
        return tok.access_token, tok.instance_url

    def invalidate(self, access_token: str) -> None:
        """Salesforce rejected ``access_token``: forget it, unless it was already replaced."""
        with self._state_lock:
            if self._token is not None and self._token.access_token == access_token:
                self._token = None
                _log.info("auth.token_invalidated", method=self._settings.auth.method)

    def close(self) -> None:
        self._session.close()

    # -- internals --------------------------------------------------------------------------------------

    def _too_old(self, tok: Token) -> bool:
        return time.monotonic() - tok.issued_at >= self._settings.token_max_age_s

    def _grant(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """Form fields and optional Basic auth for the configured grant."""
        auth = self._settings.auth
        if auth.method == "jwt":
            if not auth.private_key_pem or not auth.username:
                raise AuthenticationFailed("invalid_config", "jwt auth needs a username and a private key")
            claims = {
                "iss": auth.client_id,
                "sub": auth.username,
                "aud": auth.audience or self._settings.login_url.rstrip("/"),
                "exp": int(self._clock().timestamp()) + JWT_LIFETIME_S,
            }
            try:
                assertion = jwt.encode(claims, auth.private_key_pem, algorithm="RS256")
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                raise AuthenticationFailed("invalid_config", "the private key cannot sign RS256") from exc
            return {"grant_type": JWT_GRANT, "assertion": assertion}, None
        if auth.method == "client_credentials":
            if not auth.client_secret:
                raise AuthenticationFailed("invalid_config", "client_credentials auth needs a client secret")
            return {"grant_type": "client_credentials"}, (auth.client_id, auth.client_secret)
        if auth.method == "refresh_token":
            if not auth.refresh_token:
                raise AuthenticationFailed("invalid_config", "refresh_token auth needs a refresh token")
            form = {
                "grant_type": "refresh_token",
                "client_id": auth.client_id,
                "refresh_token": auth.refresh_token,
            }
            if auth.client_secret:
                form["client_secret"] = auth.client_secret
            return form, None
        if auth.method == "password":
            if not auth.username or auth.password is None:
                raise AuthenticationFailed("invalid_config", "password auth needs a username and a password")
            form = {
                "grant_type": "password",
                "client_id": auth.client_id,
                "username": auth.username,
                "password": auth.password,
            }
            if auth.client_secret:
                form["client_secret"] = auth.client_secret
            return form, None
        raise AuthenticationFailed("invalid_config", f"unknown auth method {auth.method!r}")

    def _authenticate(self) -> Token:
        form, basic = self._grant()
        url = self._settings.oauth_token_url
        try:
            response = self._session.post(
                url,
                data=form,
                auth=basic,
                headers={"Accept": "application/json"},
                timeout=self._settings.timeout_s,
                # explicit per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
                verify=self._settings.ca_bundle or None,
            )
        except requests.RequestException as exc:
            raise error_from_transport(exc, "POST", url) from exc
        body = _json_or_none(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(
                f"token endpoint answered HTTP {response.status_code}", status=response.status_code
            )
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
            description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
            _log.error(
                "auth.failed",
                method=self._settings.auth.method,
                status=response.status_code,
                error=error or None,
                error_description=description or None,
            )
            raise AuthenticationFailed(
                error or f"http_{response.status_code}", description, status=response.status_code
            )
        instance_url = self._settings.instance_url or str(body.get("instance_url") or "")
        if not instance_url:
            raise AuthenticationFailed("invalid_response", "the token response has no instance_url")
        self.grants_issued += 1
        _log.info(
            "auth.token_issued", method=self._settings.auth.method, instance_url=instance_url.rstrip("/")
        )
        return Token(
            access_token=str(body["access_token"]),
            instance_url=instance_url.rstrip("/"),
            issued_at=time.monotonic(),
            org_id=org_id_of(body.get("id")),
        )


def org_id_of(identity: Any) -> str | None:
    """The org id in a token response's identity URL (``https://.../id/00D.../005...``), if it has one."""
    if not isinstance(identity, str):
        return None
    parts = identity.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "id" and parts[-2].startswith("00D"):
        return parts[-2]
    return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
