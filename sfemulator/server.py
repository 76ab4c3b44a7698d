"""The emulator's HTTPS server (aiohttp), and `Emulator`, which runs it in a background thread.

with Emulator(tls_dir=tmp, seed="demo") as emu:      # port 0: a free port
    sf = Salesforce(instance_url=emu.base_url, session_id=token, session=session_trusting(emu.ca_path))
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import ipaddress
import json
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from sfemulator import oauth
from sfemulator.control import install_control, reload_seed
from sfemulator.edge import JSON_TYPE, Runner, guard, json_response, read_body
from sfemulator.rest import Call, RestApi, parse_version, versions_list
from sfemulator.settings import STATE_KEY, EmulatorSettings, EmulatorState
from sfemulator.store import Clock, Org, OrgSettings
from sfemulator.tls import TlsFiles, ensure_tls
from sfemulator.wire import MAX_BODY_BYTES, JsonError, parse_json

_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return False


@web.middleware
async def _edge(request: web.Request, handler: Any) -> web.StreamResponse:
    """Loopback guard for the control API; injected faults and latency for everything else."""
    state: EmulatorState = request.app[STATE_KEY]
    path = request.path
    if path.startswith("/_emulator"):
        if not _is_loopback(request.remote):
            return json_response(403, {"error": "the control API answers loopback clients only"})
        response: web.StreamResponse = await handler(request)
        return response
    fault = state.take_fault(request.method, path)
    if fault is not None:
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000.0)
        if fault.status is not None:
            headers = (
                {"Sforce-Limit-Info": state.org.limit_info()} if path.startswith("/services/data/v") else {}
            )
            return json_response(
                fault.status, [{"message": fault.message, "errorCode": fault.error_code}], headers
            )
    if path.startswith(("/services/", "/id/")):
        delay = state.latency_seconds()
        if delay:
            await asyncio.sleep(delay)
    response = await handler(request)
    return response


_VERSIONS_BODY = json.dumps(versions_list()).encode()


async def _versions(request: web.Request) -> web.Response:
    # The versions list needs no session and is not counted, so it carries no Sforce-Limit-Info.
    return web.Response(status=200, body=_VERSIONS_BODY, headers={"Content-Type": JSON_TYPE})


async def _rest(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    org = state.org
    version = parse_version(request.match_info["version"])
    if version is None:
        missing = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        return json_response(404, missing, {"Sforce-Limit-Info": org.limit_info()})
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    user_id = org.authenticate(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
    if user_id is None:
        return json_response(401, _INVALID_SESSION, {"Sforce-Limit-Info": org.limit_info()})
    if not org.consume_api_call():
        return json_response(403, _LIMIT_EXCEEDED, {"Sforce-Limit-Info": org.limit_info()})
    raw = await read_body(request)
    body: Any = None
    if raw.strip():
        try:
            body = parse_json(raw)
        except JsonError as exc:
            org.stats.count("other")
            return json_response(
                400,
                [{"message": exc.message, "errorCode": "JSON_PARSER_ERROR"}],
                {"Sforce-Limit-Info": org.limit_info()},
            )
    raw_path = request.rel_url.raw_path
    tail = raw_path.split("/", 4)[4] if raw_path.count("/") >= 4 else ""
    from urllib.parse import unquote

    call = Call(
        user_id=user_id,
        version=version,
        method="GET" if request.method == "HEAD" else request.method,  # HEAD: GET's headers, no body
        segments=[unquote(seg) for seg in tail.split("/") if seg],
        query={k: v for k, v in request.query.items()},
        body=body,
        headers=request.headers,
    )
    reply = state.rest.dispatch(call)
    org.stats.count(reply.kind or "other")
    headers = {**reply.headers, "Sforce-Limit-Info": org.limit_info()}
    if reply.status == 204 or reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    return json_response(reply.status, reply.body, headers)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[guard, _edge], client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state
    r = app.router
    r.add_get("/services/data", _versions)
    r.add_get("/services/data/", _versions)
    r.add_route("*", r"/services/data/{version:v[^/]+}{tail:(/.*)?}", _rest)
    r.add_post("/services/oauth2/token", oauth.token)
    r.add_route("*", "/services/oauth2/revoke", oauth.revoke)
    r.add_get("/id/{org}/{user}", oauth.identity_url)
    r.add_post("/services/Soap/u/{version}", oauth.soap_login)
    r.add_post("/services/Soap/u/{version}/{org}", oauth.soap_login)
    install_control(app)
    if importlib.util.find_spec("sfemulator.streaming") is not None:
        streaming = importlib.import_module("sfemulator.streaming")
        streaming.install(app, state.org, state.settings)
    return app


def _base_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


class Emulator:
    """One emulator: org, HTTPS server, TLS material. `start()` returns once it accepts connections."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_dir: str | Path | None = None,
        seed: str | dict[str, Any] = "demo",
        latency_ms: int = 0,
        **options: Any,
    ) -> None:
        directory = Path(tls_dir) if tls_dir is not None else Path(tempfile.mkdtemp(prefix="sfemulator-tls-"))
        self.settings = EmulatorSettings(
            host=host, port=port, tls_dir=directory, seed=seed, latency_ms=latency_ms, **options
        )
        self.tls: TlsFiles | None = None
        self.org: Org | None = None
        self.state: EmulatorState | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def tls_dir(self) -> Path:
        return self.settings.tls_dir

    @property
    def ca_path(self) -> Path:
        return self.settings.tls_dir / "ca.pem"

    def prepare(self) -> EmulatorState:
        """TLS files, org and seed, without the server."""
        s = self.settings
        self.tls = ensure_tls(s.tls_dir, (s.host,))
        org = Org(
            settings=OrgSettings(
                query_batch_size=s.query_batch_size,
                session_seconds=s.session_seconds,
            ),
            clock=Clock(s.clock_start),
        )
        org.tls_dir = s.tls_dir
        self.org = org
        self.state = EmulatorState(
            org=org, settings=s, rest=RestApi(org), latency_ms=s.latency_ms, jitter_ms=s.jitter_ms
        )
        reload_seed(self.state)
        return self.state

    async def start_async(self) -> None:
        """Bind and serve on the running loop (the CLI's way)."""
        state = self.state or self.prepare()
        assert self.tls is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        app = build_app(state)
        self._runner = Runner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.host, self.settings.port, ssl_context=context, backlog=1024
        )
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.settings.port = port
        self.settings.base_url = _base_url(self.settings.host, port)

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self, timeout: float = 30.0) -> Emulator:
        """Serve from a background thread; returns once the socket is bound."""
        if self._thread is not None:
            return self
        self.prepare()
        self._thread = threading.Thread(target=self._run, name="sfemulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def restart(self, timeout: float = 30.0) -> None:
        """Stop serving and serve the same org again on the same port (a deploy, or a crash and restart)."""
        self.stop()
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="sfemulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the emulator did not restart: {self._error}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.start_async())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.stop_async())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop thread and return its result (for in-process tests)."""
        if self._loop is None:
            return fn(*args)
        future = asyncio.run_coroutine_threadsafe(_as_coro(fn, *args), self._loop)
        return future.result(timeout=30)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _as_coro(fn: Any, *args: Any) -> Any:
    return fn(*args)


def trusting_session(ca_path: str | Path) -> Any:
    """A requests.Session that trusts the emulator's CA.

    `trust_env` is off because requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment
    override `session.verify`, which would silently ignore the emulator CA.
    """
    import requests

    session = requests.Session()
    session.verify = str(ca_path)
    session.trust_env = False
    return session
