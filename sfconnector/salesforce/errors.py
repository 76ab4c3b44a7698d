"""Translation of Salesforce answers into the error tree of :mod:`sfconnector.errors`.

This is where ``requests`` exceptions and Salesforce error bodies enter; nothing above it catches a library
exception type. Per-record errors inside collection results are classified with :func:`item_retryable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from sfconnector.errors import AuthError, SalesforceApiError, ServerUnavailable, api_error

from ._types import ApiErrorItem

# Per-record statusCodes after which the same write can succeed later.
RETRYABLE_ITEM_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",  # a sibling failed; this record itself was fine
        "PROCESSING_HALTED",  # composite: another subrequest failed
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "QUERY_TIMEOUT",
        "REQUEST_RUNNING_TOO_LONG",
    }
)


class AuthenticationFailed(AuthError):
    """The token endpoint refused the grant; carries Salesforce's ``error``/``error_description``.

    Never carries the secret that was sent.
    """

    def __init__(self, error: str, error_description: str = "", status: int | None = None) -> None:
        self.error_description = error_description
        self.status = status
        super().__init__(error, error_description)


def item_retryable(errors: Iterable[ApiErrorItem]) -> bool:
    """True when every error of a failed record is transient (so the record should be written again)."""
    items = list(errors)
    return bool(items) and all(e.status_code in RETRYABLE_ITEM_CODES for e in items)


def parse_error_items(body: Any) -> list[ApiErrorItem]:
    """Error items from a Salesforce error body (an array of {message, errorCode|statusCode, fields})."""
    raw = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        code = str(entry.get("errorCode") or entry.get("statusCode") or "")
        fields = entry.get("fields") or ()
        items.append(
            ApiErrorItem(
                status_code=code,
                message=str(entry.get("message") or ""),
                fields=tuple(str(f) for f in fields) if isinstance(fields, list) else (),
            )
        )
    return items


def error_from_body(status: int | None, body: Any, fallback_text: str = "") -> SalesforceApiError:
    """The error for a non-2xx answer (also used for failed composite subresponses)."""
    items = parse_error_items(body)
    if not items:
        return api_error(status, "", (fallback_text or f"HTTP {status}")[:500])
    first = items[0]
    if len(items) > 1:
        # Several errors: classify by the first, keep every message.
        message = "; ".join(f"{i.status_code}: {i.message}" for i in items)
        err = api_error(status, first.status_code, message, first.fields)
    else:
        err = api_error(status, first.status_code, first.message, first.fields)
    return err


def error_from_response(response: requests.Response) -> SalesforceApiError:
    """Translate a non-2xx REST response."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    return error_from_body(response.status_code, body, response.text[:500] if body is None else "")


def error_from_transport(exc: requests.RequestException, method: str, url: str) -> SalesforceApiError:
    """A request that got no answer (connection refused or reset, timeout, TLS failure).

    A certificate that does not verify is a configuration problem (wrong CA bundle, interception proxy),
    not a passing outage: it is not retryable, and says where to look.
    """
    path = url.split("?", 1)[0]
    if isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return SalesforceApiError(
            f"{method} {path}: the server's TLS certificate does not verify against the trusted CAs "
            "(check salesforce.ca_bundle)",
            error_code="CERTIFICATE_VERIFY_FAILED",
            retryable=False,
        )
    return ServerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}")
