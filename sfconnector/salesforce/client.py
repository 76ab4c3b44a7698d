"""Synchronous Salesforce REST client (the pipeline calls it through ``asyncio.to_thread``).

simple-salesforce, built with ``session_id`` + ``instance_url`` so the login URL (the emulator's included) is
ours to choose, supplies the base URL and the ``requests`` session; every request goes through one send path,
:meth:`SalesforceClient._send`, which:

- adds ``Authorization``, ``Sforce-Call-Options: client=<client_name>`` (so the daemon recognises its own
  writes in CDC ``changeOrigin``) and, on every write, ``Sforce-Auto-Assign: FALSE`` (without it a REST
  create or update of a Lead re-runs the active assignment rules and can take the owner we just set);
- reads ``Sforce-Limit-Info`` from every response, errors included (:attr:`api_usage`);
- on ``401 INVALID_SESSION_ID`` invalidates the token, re-authenticates and sends once more;
- translates every failure into :mod:`sfconnector.errors` (403 REQUEST_LIMIT_EXCEEDED -> RequestLimitExceeded,
  5xx / UNABLE_TO_LOCK_ROW / no answer -> retryable, 400 -> InvalidRequest).

Reads (query, describe, limits) are retried under ``read_retry``; writes are never retried here: the outbox
writer decides, because only it knows whether a write can be safely repeated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import requests
import structlog
from simple_salesforce import Salesforce

from sfconnector.errors import InvalidRequest, SalesforceApiError, SessionExpired
from sfconnector.retry import SALESFORCE_READ, RetryPolicy

from ._types import (
    ActionResult,
    ApiErrorItem,
    ApiUsage,
    CompositeSubrequest,
    CompositeSubresponse,
    SalesforceSettings,
    SaveResult,
    Token,
)
from .auth import TokenProvider
from .errors import error_from_body, error_from_response, error_from_transport, parse_error_items
from .limits import parse_limit_info

_log = structlog.get_logger("sfconnector.salesforce.client")

COLLECTION_CHUNK = 200  # sObject Collections accept at most 200 records per call
COMPOSITE_MAX = 25  # Composite accepts at most 25 subrequests
MAX_SOQL_CHARS = 100_000  # Salesforce's limit on one SOQL statement
LONG_QUERY_URL_CHARS = 6_000  # URL-encoded SOQL longer than this goes in a Composite body instead of the URI


class SalesforceClient:
    """REST calls against one org with one token provider."""

    def __init__(
        self,
        settings: SalesforceSettings,
        tokens: TokenProvider,
        *,
        read_retry: RetryPolicy = SALESFORCE_READ,
        session: requests.Session | None = None,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._read_retry = read_retry
        self._session = session or requests.Session()
        if session is None:
            self._session.verify = settings.verify
        self._lock = threading.Lock()
        self._sf: Salesforce | None = None
        self._sf_token: str | None = None
        self._api_usage: ApiUsage | None = None
        self._calls = 0

    # -- introspection ----------------------------------------------------------------------------------

    @property
    def api_usage(self) -> ApiUsage | None:
        """Usage from the last ``Sforce-Limit-Info`` header seen (None before any)."""
        return self._api_usage

    @property
    def api_calls(self) -> int:
        """How many HTTP requests this client has sent to the REST API (each counts against the allocation)."""
        return self._calls

    @property
    def api_version(self) -> str:
        return self._settings.api_version

    def data_path(self, relative: str) -> str:
        """``/services/data/vXX.X/<relative>``: the form Composite subrequest URLs take."""
        return f"/services/data/v{self._settings.api_version}/{relative.lstrip('/')}"

    def close(self) -> None:
        self._session.close()

    # -- queries ----------------------------------------------------------------------------------------

    def query(self, soql: str, *, batch_size: int | None = None) -> list[dict[str, Any]]:
        """Every record of ``soql``, following ``nextRecordsUrl`` page by page.

        ``batch_size`` (200-2000) asks for smaller pages via ``Sforce-Query-Options``.
        """
        return self._read_retry.call(self._query_pages, "query/", soql, batch_size)

    def query_all(self, soql: str, *, batch_size: int | None = None) -> list[dict[str, Any]]:
        """As :meth:`query`, including deleted and archived records (queryAll)."""
        return self._read_retry.call(self._query_pages, "queryAll/", soql, batch_size)

    def _query_pages(self, endpoint: str, soql: str, batch_size: int | None) -> list[dict[str, Any]]:
        if len(soql) > MAX_SOQL_CHARS:
            raise InvalidRequest(
                f"SOQL statement of {len(soql)} characters; Salesforce accepts {MAX_SOQL_CHARS}"
            )
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        encoded = quote_plus(soql)
        if len(encoded) > LONG_QUERY_URL_CHARS:
            # Too long for a request line (Salesforce: 16 KB of URI and headers): a Composite body carries it.
            (answer,) = self.composite([CompositeSubrequest("GET", f"{endpoint}?q={encoded}", "longQuery")])
            if not answer.ok:
                raise error_from_body(answer.status, answer.body)
            page = answer.body if isinstance(answer.body, dict) else {}
        else:
            page = self._json(self._send("GET", endpoint, params={"q": soql}, headers=headers))
        records: list[dict[str, Any]] = list(page.get("records", []))
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = self._json(self._send("GET", str(page["nextRecordsUrl"]), headers=headers))
            records.extend(page.get("records", []))
        return records

    def describe(self, sobject: str) -> dict[str, Any]:
        result: dict[str, Any] = self._read_retry.call(
            lambda: self._json(self._send("GET", f"sobjects/{_segment(sobject)}/describe"))
        )
        return result

    def limits(self) -> dict[str, Any]:
        result: dict[str, Any] = self._read_retry.call(lambda: self._json(self._send("GET", "limits/")))
        return result

    # -- single-record writes ---------------------------------------------------------------------------

    def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Insert one record; its new Id."""
        body = self._json(self._send("POST", f"sobjects/{_segment(sobject)}/", json=dict(fields)))
        return str(body["id"])

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self._send("PATCH", f"sobjects/{_segment(sobject)}/{_segment(record_id)}", json=dict(fields))

    # -- sObject Collections ----------------------------------------------------------------------------

    def collection_create(
        self, records: Sequence[Mapping[str, Any]], all_or_none: bool = False, *, auto_assign: bool = False
    ) -> list[SaveResult]:
        """Insert records (each with ``attributes.type``), 200 per call; results in request order.

        ``auto_assign`` lets the org's active assignment rules choose the owner of created leads (the one
        write that sends ``Sforce-Auto-Assign: TRUE``)."""
        _require_types(records)
        headers = {"Sforce-Auto-Assign": "TRUE"} if auto_assign else None
        return self._collection("POST", "composite/sobjects", records, all_or_none, headers=headers)

    def collection_update(
        self, records: Sequence[Mapping[str, Any]], all_or_none: bool = False
    ) -> list[SaveResult]:
        """Update records (each with ``attributes.type`` and ``id``), 200 per call."""
        _require_types(records)
        if any(not (r.get("id") or r.get("Id")) for r in records):
            raise InvalidRequest("collection_update: every record needs an id")
        return self._collection("PATCH", "composite/sobjects", records, all_or_none)

    def collection_upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool = False,
    ) -> list[SaveResult]:
        """Upsert records of one type by an external id field (each record carries that field's value)."""
        typed = []
        for record in records:
            if record.get(external_id_field) in (None, ""):
                raise InvalidRequest(f"collection_upsert: a record has no {external_id_field} value")
            typed.append(
                {"attributes": {"type": sobject}, **{k: v for k, v in record.items() if k != "attributes"}}
            )
        path = f"composite/sobjects/{_segment(sobject)}/{_segment(external_id_field)}"
        return self._collection("PATCH", path, typed, all_or_none)

    def _collection(
        self,
        method: str,
        path: str,
        records: Sequence[Mapping[str, Any]],
        all_or_none: bool,
        headers: Mapping[str, str] | None = None,
    ) -> list[SaveResult]:
        results: list[SaveResult] = []
        for start in range(0, len(records), COLLECTION_CHUNK):
            chunk = [dict(r) for r in records[start : start + COLLECTION_CHUNK]]
            body = self._json(
                self._send(method, path, json={"allOrNone": all_or_none, "records": chunk}, headers=headers)
            )
            results.extend(parse_save_results(body))
        return results

    # -- composite and actions --------------------------------------------------------------------------

    def composite(
        self, subrequests: Sequence[CompositeSubrequest], all_or_none: bool = False
    ) -> list[CompositeSubresponse]:
        """One Composite call (one API call) of at most 25 subrequests; subresponses in request order."""
        if not subrequests:
            return []
        if len(subrequests) > COMPOSITE_MAX:
            raise InvalidRequest(
                f"composite: {len(subrequests)} subrequests, at most {COMPOSITE_MAX} allowed"
            )
        payload = {
            "allOrNone": all_or_none,
            "compositeRequest": [self._subrequest_json(s) for s in subrequests],
        }
        body = self._json(self._send("POST", "composite", json=payload))
        out = []
        for item in body.get("compositeResponse", []):
            out.append(
                CompositeSubresponse(
                    reference_id=str(item.get("referenceId", "")),
                    status=int(item.get("httpStatusCode", 0)),
                    body=item.get("body"),
                    http_headers=dict(item.get("httpHeaders") or {}),
                )
            )
        return out

    def _subrequest_json(self, sub: CompositeSubrequest) -> dict[str, Any]:
        url = sub.url if sub.url.startswith("/") else self.data_path(sub.url)
        headers = dict(sub.http_headers or {})
        if sub.method.upper() != "GET":
            headers.setdefault("Sforce-Auto-Assign", "FALSE")
        entry: dict[str, Any] = {"method": sub.method.upper(), "url": url, "referenceId": sub.reference_id}
        if sub.body is not None:
            entry["body"] = sub.body
        if headers:
            entry["httpHeaders"] = headers
        return entry

    def email_simple(self, inputs: Sequence[Mapping[str, Any]]) -> list[ActionResult]:
        """Send emails through the ``emailSimple`` invocable action; one result per input."""
        if not inputs:
            return []
        # When some inputs fail, Salesforce answers 400 with the per-input results: the others were sent,
        # so that answer is read per input, not taken as a failed call (which would send them again).
        body = self._json(
            self._send(
                "POST",
                "actions/standard/emailSimple",
                json={"inputs": [dict(i) for i in inputs]},
                per_item_statuses=frozenset({400}),
            )
        )
        return parse_action_results(body)

    # -- the one send path ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        per_item_statuses: frozenset[int] = frozenset(),
    ) -> requests.Response:
        """Send one request; refresh the token once on INVALID_SESSION_ID; raise translated errors.

        A status in ``per_item_statuses`` whose body is a list (one result per input) is an answer, not an
        error."""
        token = self._tokens.token()
        for attempt in (1, 2):
            sf = self._simple_salesforce(token)
            url = self._url(sf, path)
            sent = {
                **sf.headers,
                **(headers or {}),
                "Accept": "application/json",
                "Sforce-Call-Options": f"client={self._settings.client_name}",
            }
            sent.pop("X-PrettyPrint", None)
            if method != "GET":  # FALSE unless the caller asked for the org's assignment rules
                sent["Sforce-Auto-Assign"] = (headers or {}).get("Sforce-Auto-Assign", "FALSE")
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=sent,
                    json=json,
                    params=params,
                    timeout=self._settings.timeout_s,
                    # explicit per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
                    verify=self._settings.ca_bundle or None,
                )
            except requests.RequestException as exc:
                raise error_from_transport(exc, method, url) from exc
            finally:
                with self._lock:
                    self._calls += 1
            usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
            if usage is not None:
                self._api_usage = usage
            _log.debug(
                "salesforce.response",
                method=method,
                path=url.split("?", 1)[0],
                status=response.status_code,
                elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            )
            if response.status_code < 300:
                return response
            if response.status_code in per_item_statuses and _is_result_list(response):
                return response
            error = error_from_response(response)
            if isinstance(error, SessionExpired) and attempt == 1:
                self._tokens.invalidate(token.access_token)
                token = self._tokens.token()
                _log.info("salesforce.session_refreshed", path=url.split("?", 1)[0])
                continue
            _log.warning(
                "salesforce.error",
                method=method,
                path=url.split("?", 1)[0],
                status=error.status,
                error_code=error.error_code,
                retryable=error.retryable,
            )
            raise error
        raise SessionExpired("session still invalid after re-authentication")  # pragma: no cover

    def _simple_salesforce(self, token: Token) -> Salesforce:
        with self._lock:
            if self._sf is None or self._sf_token != token.access_token:
                self._sf = Salesforce(
                    instance_url=token.instance_url,
                    session_id=token.access_token,
                    session=self._session,
                    version=self._settings.api_version,
                )
                self._sf_token = token.access_token
            return self._sf

    @staticmethod
    def _url(sf: Salesforce, path: str) -> str:
        if path.startswith(("https://", "http://")):
            return path
        if path.startswith("/"):
            # nextRecordsUrl and other absolute paths are used verbatim on the instance
            return f"https://{sf.sf_instance}{path}"
        return f"{sf.base_url}{path}"

    @staticmethod
    def _json(response: requests.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise SalesforceApiError(
                f"unreadable JSON from {response.request.method} {response.url.split('?', 1)[0]}",
                status=response.status_code,
                retryable=True,
            ) from exc


def _segment(value: str) -> str:
    return quote(value, safe="")


def _require_types(records: Sequence[Mapping[str, Any]]) -> None:
    for record in records:
        attributes = record.get("attributes")
        if not isinstance(attributes, Mapping) or not attributes.get("type"):
            raise InvalidRequest("sObject Collections: every record needs attributes.type")


def _error_items(raw: Any) -> tuple[ApiErrorItem, ...]:
    return tuple(parse_error_items(raw)) if raw else ()


def parse_save_results(body: Any) -> list[SaveResult]:
    """SaveResults from a collections answer (a list) or a single create/upsert answer (a dict)."""
    items = body if isinstance(body, list) else [body]
    results = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        created = item.get("created")
        results.append(
            SaveResult(
                id=str(item["id"]) if item.get("id") else None,
                success=bool(item.get("success")),
                created=bool(created) if created is not None else None,
                errors=_error_items(item.get("errors")),
            )
        )
    return results


def _is_result_list(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, list)
        and bool(body)
        and all(isinstance(i, Mapping) and "isSuccess" in i for i in body)
    )


def parse_action_results(body: Any) -> list[ActionResult]:
    items = body if isinstance(body, list) else []
    return [
        ActionResult(
            success=bool(item.get("isSuccess")),
            errors=_error_items(item.get("errors")),
            output_values=item.get("outputValues"),
        )
        for item in items
        if isinstance(item, Mapping)
    ]
