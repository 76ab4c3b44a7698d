"""The control API under /_emulator/: what tests, benchmarks and the demo do to the org from outside.

Loopback peers only, no authentication (the server refuses other peers with 403). Changes made here carry
no API name (`Commit.api` is None), like edits made in the Salesforce UI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sfemulator.edge import json_response, read_body
from sfemulator.errors import DmlError
from sfemulator.oauth import token_body
from sfemulator.seed import SeedError, load_seed, resolve_seed
from sfemulator.settings import STATE_KEY, EmulatorState, Fault
from sfemulator.store import WriteContext
from sfemulator.wire import parse_json

CONTROL_HELP = """\
Control API (loopback only, no auth; JSON in and out):
  POST   /_emulator/reset                 back to the start seed: records, sessions, stats, faults, latency
  POST   /_emulator/seed                  load another seed: {"seed": "demo"|"empty"|{...}} or {"path": FILE}
  POST   /_emulator/leads/{id}/convert    convert a lead as a rep would: {"createOpportunity": true,
                                          "opportunityName": "...", "convertedStatus": "Closed - Converted",
                                          "accountId": optional existing account}
  POST   /_emulator/records/{id}/undelete restore a deleted record from the recycle bin
  POST   /_emulator/faults                fail the next N matching requests: {"method": "POST", "path": regex,
                                          "status": 503, "errorCode": "SERVER_UNAVAILABLE", "message": "...",
                                          "count": 1, "delay_ms": 0}  (status null: only delay)
  DELETE /_emulator/faults                drop every pending fault   (GET lists them)
  POST   /_emulator/latency               {"ms": 50, "jitter_ms": 10} added to every API call
  POST   /_emulator/sessions/expire       every access token becomes invalid (401 INVALID_SESSION_ID)
  POST   /_emulator/sessions              {"username": "..."}: a token response without a login (for tests)
  POST   /_emulator/refresh-tokens        {"username": "...", "client_id": "..."}: a refresh token
  POST   /_emulator/limits                {"daily_api_requests": N, "used": M}
  POST   /_emulator/clock                 {"advance_seconds": S}: move the org's clock forward
  GET    /_emulator/stats                 API calls counted as Salesforce counts them: total, by kind; events
  GET    /_emulator/emails                emailSimple calls received (DELETE clears)
  GET    /_emulator/queries               the SOQL log (DELETE clears)
  POST   /_emulator/streaming/forget-clients | gap | expire | disconnect   streaming faults (CometD)
"""

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _state(request: web.Request) -> EmulatorState:
    state: EmulatorState = request.app[STATE_KEY]
    return state


def _bad(message: str, status: int = 400) -> web.Response:
    return json_response(status, {"error": message})


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    if not raw.strip():
        return {}
    data = parse_json(raw)  # JsonError is a ValueError: a 400 below
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _guarded(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except (ValueError, KeyError, TypeError, ArithmeticError, re.error, SeedError) as exc:
            return _bad(str(exc) if not isinstance(exc, KeyError) else f"missing {exc}")

    return wrapped


def reload_seed(state: EmulatorState) -> None:
    """Reset the org and load the configured seed again."""
    state.org.reset()
    load_seed(state.org, resolve_seed(state.settings.seed))
    if state.settings.daily_api_requests is not None:
        state.org.api_limit = state.settings.daily_api_requests
    state.rest.reset()
    state.faults.clear()
    state.latency_ms = state.settings.latency_ms
    state.jitter_ms = state.settings.jitter_ms


async def reset(request: web.Request) -> web.Response:
    reload_seed(_state(request))
    return json_response(200, {"reset": True})


async def seed(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    if "path" in body:
        spec: Any = str(Path(body["path"]))
    elif "seed" in body:
        spec = body["seed"]
    else:
        spec = body
    resolved = resolve_seed(spec)
    previous = state.settings.seed
    state.settings.seed = resolved
    try:
        reload_seed(state)
    except SeedError:
        state.settings.seed = previous
        reload_seed(state)
        raise
    return json_response(
        200, {"seeded": True, "records": {k: len(v) for k, v in state.org.tables.items() if v}}
    )


async def convert_lead(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    org = state.org
    lead_id = request.match_info["id"]
    found = org.get(lead_id)
    if found is None or found[0] != "Lead":
        return json_response(
            404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        )
    user = str(body.get("userId") or "")
    if not org.is_active_user(user):
        owner = str(found[1].get("OwnerId", ""))
        user = owner if org.is_active_user(owner) else org.integration_user_id or owner
    try:
        with org.transaction(WriteContext(user_id=user, api=None, auto_assign=False)) as tx:
            result = tx.convert_lead(lead_id, body)
    except DmlError as exc:
        return json_response(
            400, [{"message": exc.message, "errorCode": exc.status_code, "fields": exc.fields}]
        )
    return json_response(200, result)


async def undelete(request: web.Request) -> web.Response:
    state = _state(request)
    org = state.org
    try:
        with org.transaction(WriteContext(user_id=org.integration_user_id or "", api=None)) as tx:
            rid = tx.undelete(request.match_info["id"])
    except DmlError as exc:
        return json_response(
            exc.http_status, [{"message": exc.message, "errorCode": exc.status_code, "fields": exc.fields}]
        )
    return json_response(200, {"id": rid, "success": True, "errors": []})


async def add_fault(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    status = body.get("status", 503)
    fault = Fault(
        method=str(body["method"]).upper() if body.get("method") else None,
        path=re.compile(str(body.get("path", ".*"))),
        status=int(status) if status is not None else None,
        error_code=str(body.get("errorCode") or "SERVER_UNAVAILABLE"),
        message=str(body.get("message") or "Server Unavailable"),
        count=int(body.get("count", 1)),
        delay_ms=int(body.get("delay_ms", 0)),
    )
    if fault.count < 1:
        raise ValueError("count must be at least 1")
    state.faults.append(fault)
    return json_response(200, {"faults": [f.describe() for f in state.faults]})


async def list_faults(request: web.Request) -> web.Response:
    return json_response(200, {"faults": [f.describe() for f in _state(request).faults]})


async def clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return json_response(200, {"faults": []})


async def latency(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    state.latency_ms = max(0, int(body.get("ms", 0)))
    state.jitter_ms = max(0, int(body.get("jitter_ms", 0)))
    return json_response(200, {"ms": state.latency_ms, "jitter_ms": state.jitter_ms})


async def expire_sessions(request: web.Request) -> web.Response:
    return json_response(200, {"expired": _state(request).org.identity.expire_all()})


def _user_for(state: EmulatorState, body: dict[str, Any]) -> dict[str, Any]:
    from sfemulator.seed import INTEGRATION_USERNAME

    username = str(body.get("username") or INTEGRATION_USERNAME)
    user = state.org.user_by_username(username)
    if user is None or not user.get("IsActive"):
        raise ValueError(f"no active user {username!r}")
    return user


async def new_session(request: web.Request) -> web.Response:
    state = _state(request)
    user = _user_for(state, await _body(request))
    session = state.org.identity.new_session(user["Id"], None)
    return json_response(200, token_body(state, session, None, "api"))


async def new_refresh_token(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    user = _user_for(state, body)
    client_id = str(body.get("client_id") or next(iter(state.org.identity.apps), ""))
    if client_id not in state.org.identity.apps:
        raise ValueError(f"no connected app {client_id!r}")
    return json_response(200, {"refresh_token": state.org.identity.new_refresh_token(user["Id"], client_id)})


async def limits(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    if "daily_api_requests" in body:
        state.org.api_limit = int(body["daily_api_requests"])
    if "used" in body:
        state.org.api_used = int(body["used"])
    return json_response(200, {"daily_api_requests": state.org.api_limit, "used": state.org.api_used})


async def clock(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _body(request)
    state.org.clock.advance(float(body.get("advance_seconds", 0)))
    return json_response(200, {"now": state.org.now_iso()})


async def stats(request: web.Request) -> web.Response:
    state = _state(request)
    body = state.org.stats.as_json()
    body["api_usage"] = {"used": state.org.api_used, "max": state.org.api_limit}
    return json_response(200, body)


async def emails(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "DELETE":
        state.org.emails.clear()
    return json_response(200, state.org.emails)


async def queries(request: web.Request) -> web.Response:
    state = _state(request)
    if request.method == "DELETE":
        state.org.queries.clear()
    return json_response(200, state.org.queries)


def install_control(app: web.Application) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/_emulator/reset", reset),
        ("POST", "/_emulator/seed", seed),
        ("POST", "/_emulator/leads/{id}/convert", convert_lead),
        ("POST", "/_emulator/records/{id}/undelete", undelete),
        ("POST", "/_emulator/faults", add_fault),
        ("GET", "/_emulator/faults", list_faults),
        ("DELETE", "/_emulator/faults", clear_faults),
        ("POST", "/_emulator/latency", latency),
        ("POST", "/_emulator/sessions/expire", expire_sessions),
        ("POST", "/_emulator/sessions", new_session),
        ("POST", "/_emulator/refresh-tokens", new_refresh_token),
        ("POST", "/_emulator/limits", limits),
        ("POST", "/_emulator/clock", clock),
        ("GET", "/_emulator/stats", stats),
        ("GET", "/_emulator/emails", emails),
        ("DELETE", "/_emulator/emails", emails),
        ("GET", "/_emulator/queries", queries),
        ("DELETE", "/_emulator/queries", queries),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))
