"""Settings and result types shared by the Salesforce I/O edge (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AuthMethod = Literal["jwt", "client_credentials", "refresh_token", "password"]


@dataclass(frozen=True)
class AuthSettings:
    """How to obtain an access token; secrets are already resolved to strings by the config layer."""

    method: AuthMethod
    client_id: str
    username: str | None = None
    private_key_pem: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    password: str | None = None
    audience: str | None = None  # JWT aud; defaults to the login URL

    def __repr__(self) -> str:  # never show secrets, even in a traceback's locals
        return (
            f"AuthSettings(method={self.method!r}, client_id={self.client_id!r}, username={self.username!r})"
        )


@dataclass(frozen=True)
class SalesforceSettings:
    """Where and how to reach the org."""

    login_url: str
    auth: AuthSettings
    api_version: str = "62.0"
    instance_url: str | None = None  # None: use the instance_url from the token response
    ca_bundle: str | None = None  # PEM file of a private CA (the emulator's); None: system trust store
    client_name: str = "sfconnector"  # Sforce-Call-Options client=..., recognised in CDC changeOrigin
    token_url: str | None = None  # override of <login_url>/services/oauth2/token
    token_max_age_s: float = 3600.0  # re-authenticate proactively after this long
    timeout_s: float = 30.0  # per HTTP request

    @property
    def oauth_token_url(self) -> str:
        return self.token_url or f"{self.login_url.rstrip('/')}/services/oauth2/token"

    @property
    def verify(self) -> str | bool:
        return self.ca_bundle or True


@dataclass(frozen=True)
class Token:
    """An access token and the instance it is valid for."""

    access_token: str = field(repr=False)
    instance_url: str
    issued_at: float  # time.monotonic() when we received it (age checks must not jump with the wall clock)
    org_id: str | None = None  # from the identity URL (`id`: .../id/<OrgId>/<UserId>) of the token response


@dataclass(frozen=True)
class ApiUsage:
    """From the last ``Sforce-Limit-Info: api-usage=used/max`` header."""

    used: int
    max: int

    @property
    def fraction(self) -> float:
        return self.used / self.max if self.max > 0 else 0.0


@dataclass(frozen=True)
class ApiErrorItem:
    """One error of a per-record result (``statusCode`` in SaveResults, ``errorCode`` elsewhere)."""

    status_code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SaveResult:
    """Per-record outcome of a create/update/upsert (collections return one per record, in request order)."""

    id: str | None
    success: bool
    created: bool | None = None
    errors: tuple[ApiErrorItem, ...] = ()


@dataclass(frozen=True)
class ActionResult:
    """Per-input outcome of an invocable action (emailSimple)."""

    success: bool
    errors: tuple[ApiErrorItem, ...] = ()
    output_values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CompositeSubrequest:
    """One subrequest of a Composite call; ``url`` relative to ``/services/data/vXX.X/`` or absolute path."""

    method: str
    url: str
    reference_id: str
    body: Any = None
    http_headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class CompositeSubresponse:
    """One subresponse of a Composite call."""

    reference_id: str
    status: int
    body: Any
    http_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
