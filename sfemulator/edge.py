"""The emulator's HTTP edge: every refusal and every failure in the shape of the protocol it belongs to.

    REST     /services/data/...    [{"message": ..., "errorCode": ...}]
    OAuth    /services/oauth2/...  {"error": ..., "error_description": ...}
    SOAP     /services/Soap/...    a soapenv:Fault (HTTP 500, as SOAP 1.1 and Salesforce answer faults)
    Bayeux   /cometd...            [{"successful": false, "error": "NNN::..."}]
    identity /id/...               plain text (Bad_Id), as Salesforce answers
    control  /_emulator/...        {"error": ...}

`guard` is the outermost middleware: it refuses URI plus headers over Salesforce's 16,384 bytes with the
front end's own HTML pages (414, 431), re-renders aiohttp's plain-text refusals (no route, wrong method, a
body over the size limit, a body that cannot be decoded) in the protocol's shape, and turns any exception
a handler lets escape into a logged traceback and Salesforce's answer for an unknown error. `Runner`
serves the application with parser limits wide enough for those figures, and answers what aiohttp's parser
itself refuses (a request line or header too long, garbage) with the same front-end pages.
"""

from __future__ import annotations

import logging
import secrets
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sfemulator.wire import BODY_TOO_LARGE, MAX_BODY_BYTES, MAX_URI_AND_HEADERS, dumps

log = logging.getLogger("sfemulator.edge")

JSON_TYPE = "application/json;charset=UTF-8"
REST, OAUTH, SOAP, BAYEUX, IDENTITY, CONTROL = "rest", "oauth", "soap", "bayeux", "identity", "control"
# aiohttp's parser limits, a little above the figure so that `guard` (which counts exactly) decides; they
# differ by one so that a LineTooLong says whether the request line (414) or a header (431) overflowed.
_LINE_LIMIT = MAX_URI_AND_HEADERS + 64
_FIELD_LIMIT = MAX_URI_AND_HEADERS + 65
_MAX_HEADERS = MAX_URI_AND_HEADERS // 4  # "a:b\r\n" is the shortest header line


class UnreadableBody(Exception):
    """A body whose Content-Encoding cannot be decoded (not gzip after all, truncated, unknown)."""


def _inflate(data: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        attempts = [16 + zlib.MAX_WBITS]
    elif encoding == "deflate":
        attempts = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped, as the RFC says, or raw as some send
    else:
        raise UnreadableBody(f"unsupported Content-Encoding {encoding!r}")
    for wbits in attempts:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, MAX_BODY_BYTES + 1)
        except zlib.error:
            continue
        if inflater.unconsumed_tail or len(out) > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, len(out))
        if inflater.eof:
            return out
    raise UnreadableBody(f"the body is not valid {encoding}")


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded from its Content-Encoding (gzip, deflate: the REST API's request
    compression), at most MAX_BODY_BYTES before and after decoding.

    aiohttp's own decompression is off (`Runner`): a broken stream is refused here, as a 400 in the
    protocol's shape (`guard`), instead of poisoning the connection.
    """
    return decode_content(await request.read(), request.headers.get("Content-Encoding"))


def decode_content(data: bytes, content_encoding: str | None) -> bytes:
    """`data` decoded from the codings a Content-Encoding header lists (applied in order, undone last first)."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",")]
    for encoding in reversed([e for e in encodings if e and e != "identity"]):
        data = _inflate(data, encoding)
    return data


def protocol_of(path: str) -> str:
    """Which protocol's error shape a path answers in (anything unknown is the REST API's 404)."""
    if path.startswith("/services/oauth2"):
        return OAUTH
    if path.startswith("/services/Soap"):
        return SOAP
    if path.startswith("/cometd"):
        return BAYEUX
    if path.startswith("/id/"):
        return IDENTITY
    if path.startswith("/_emulator"):
        return CONTROL
    return REST


# --- the shapes -----------------------------------------------------------------------------------------


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    out = {"Content-Type": JSON_TYPE, **(headers or {})}
    return web.Response(status=status, body=dumps(body), headers=out)


def rest_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(status, [{"message": message, "errorCode": code}], headers)


def oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return json_response(status, {"error": error, "error_description": description})


_FAULT = """<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope \
xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>\
<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring><detail>\
<sf:{kind} xsi:type="sf:{kind}"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{kind}></detail></soapenv:Fault>\
</soapenv:Body></soapenv:Envelope>"""


def soap_fault(code: str, message: str, kind: str = "UnexpectedErrorFault") -> web.Response:
    """A SOAP fault; `kind` is the fault type in the detail (LoginFault for login errors)."""
    body = _FAULT.format(code=escape(code), message=escape(message), kind=kind)
    return web.Response(status=500, body=body.encode(), content_type="text/xml", charset="UTF-8")


def bayeux_error(status: int, error: str) -> web.Response:
    return web.Response(
        status=status, body=dumps([{"successful": False, "error": error}]), content_type="application/json"
    )


_JETTY_REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


def front_end_page(status: int) -> web.Response:
    """What Salesforce's front end (Jetty) sends before any API sees the request, e.g.
    `<h1>Bad Message 431</h1><pre>reason: Request Header Fields Too Large</pre>` (forcedotcom/cli#63;
    414: sfpowerscripts#860)."""
    body = f"<h1>Bad Message {status}</h1><pre>reason: {_JETTY_REASONS[status]}</pre>"
    response = web.Response(status=status, text=body, content_type="text/html", charset="iso-8859-1")
    response.force_close()
    return response


def unknown_error_id() -> str:
    """Salesforce's ErrorId format: `1717804919-93512 (-1371860698)` (MavensMate-Desktop#149)."""
    return (
        f"{secrets.randbelow(9 * 10**9) + 10**9}-{secrets.randbelow(90000) + 10000} "
        f"(-{secrets.randbelow(9 * 10**9) + 10**9})"
    )


def unknown_exception_body() -> list[dict[str, str]]:
    message = f"An unexpected error occurred. Please include this ErrorId if you contact support: {unknown_error_id()}"
    return [{"message": message, "errorCode": "UNKNOWN_EXCEPTION"}]


def _unknown(protocol: str) -> web.Response:
    if protocol == OAUTH:
        return oauth_error("unknown_error", "retry your request", 500)  # [UNCONFIRMED] description
    if protocol == SOAP:
        return soap_fault("UNKNOWN_EXCEPTION", unknown_exception_body()[0]["message"])
    if protocol == BAYEUX:
        return bayeux_error(500, "500::Internal Server Error")  # [UNCONFIRMED] text
    if protocol == IDENTITY:
        return web.Response(status=500, text="Internal_Error")  # [UNCONFIRMED] text
    if protocol == CONTROL:
        return json_response(500, {"error": "the emulator failed on this request (see its log)"})
    return json_response(500, unknown_exception_body())


def _refused(protocol: str, request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal (no route, wrong method, body too large...) in the protocol's shape."""
    status = exc.status
    if status == 413:
        if protocol == REST:
            return rest_error(400, "JSON_PARSER_ERROR", BODY_TOO_LARGE)
        if protocol == BAYEUX:
            return bayeux_error(413, "413::Maximum Request Size Exceeded")
        if protocol == OAUTH:
            return oauth_error("invalid_request", "request body too large")  # [UNCONFIRMED]
    allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
    if protocol == OAUTH:
        if status == 405 and request.path.rstrip("/") == "/services/oauth2/token":
            # Salesforce's answer to a GET of the token endpoint (amazon-connect-salesforce-cti#43).
            return oauth_error("invalid_request", "must use HTTP POST")
        if status == 405:
            return oauth_error("invalid_request", f"must use HTTP {' or '.join(allowed) or 'POST'}")
        return oauth_error("not_found", "The requested resource does not exist", status)  # [UNCONFIRMED]
    if protocol == SOAP:
        code = "METHOD_NOT_ALLOWED" if status == 405 else "INVALID_OPERATION"  # [UNCONFIRMED]
        return soap_fault(code, exc.reason)
    if protocol == BAYEUX:
        return bayeux_error(status, f"{status}::{exc.reason}")
    if protocol == IDENTITY:
        return web.Response(status=status, text="Bad_Id" if status == 404 else exc.reason)
    if protocol == CONTROL:
        return json_response(status, {"error": exc.reason})
    if status == 405:
        listed = ",".join(m for m in allowed if m != "HEAD") or "GET"
        return rest_error(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are {listed}"
        )
    if status == 404:
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist")
    return rest_error(status, "INVALID_REQUEST" if status < 500 else "UNKNOWN_EXCEPTION", exc.reason)


def _unreadable(protocol: str, exc: Exception) -> web.Response:
    """A body the transport could not decode (a broken gzip or deflate stream, a bad chunk)."""
    log.info("edge.unreadable_body %r", exc)
    response = _unreadable_body(protocol, "Unable to read the request body")  # [UNCONFIRMED] wording
    if not isinstance(exc, UnreadableBody):
        response.force_close()  # a broken transfer: the rest of the stream cannot frame a next request
    return response


def _unreadable_body(protocol: str, message: str) -> web.Response:
    if protocol == OAUTH:
        return oauth_error("invalid_request", message)
    if protocol == SOAP:
        return soap_fault("INVALID_XML", message)
    if protocol == BAYEUX:
        return bayeux_error(400, "400::Invalid JSON")
    if protocol == CONTROL:
        return json_response(400, {"error": message})
    if protocol == IDENTITY:
        return web.Response(status=400, text="Bad_Request")
    return rest_error(400, "JSON_PARSER_ERROR", message)


def _too_large(request: web.Request) -> int | None:
    """414 or 431 when URI plus headers exceed Salesforce's 16,384 bytes, else None."""
    uri = len(request.raw_path.encode("utf-8", "surrogateescape"))
    if uri > MAX_URI_AND_HEADERS:
        return 414
    headers = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)  # "name: value\r\n"
    return 431 if uri + headers > MAX_URI_AND_HEADERS else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No answer leaves the emulator except in the shape of the protocol the path belongs to."""
    protocol = protocol_of(request.path)
    if protocol != CONTROL:
        refused = _too_large(request)
        if refused is not None:
            return front_end_page(refused)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _refused(protocol, request, exc)
    except (UnreadableBody, HttpProcessingError, web.RequestPayloadError) as exc:
        return _unreadable(protocol, exc)
    except Exception:
        log.exception("edge.unexpected_error method=%s path=%s", request.method, request.path)
        return _unknown(protocol)


# --- aiohttp's parser refusals ------------------------------------------------------------------------


class _Protocol(RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses as Salesforce's front end does."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.info("edge.bad_http_message %s", exc.message)
        if isinstance(exc, LineTooLong):
            return front_end_page(414 if exc.args[1] == _LINE_LIMIT else 431)
        if "Too many headers" in exc.message:
            return front_end_page(431)
        return front_end_page(400)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """`web.AppRunner` with parser limits wide enough for Salesforce's URI and header figures."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(
            app,
            max_line_size=_LINE_LIMIT,
            max_field_size=_FIELD_LIMIT,
            max_headers=_MAX_HEADERS,
            auto_decompress=False,  # read_body decodes, and refuses a broken stream in the protocol's shape
            **kwargs,
        )

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = (
            _Server  # the same server, handing out connections that answer in Salesforce's words
        )
        return server
