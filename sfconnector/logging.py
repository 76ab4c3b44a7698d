"""structlog set-up for the daemon: JSON lines when not on a terminal, readable console output when on one.

Event names are stable dotted identifiers (``outbox.retry_scheduled``, ``auth.token_issued``); details go in
fields, never in prose. Context such as the channel or the lead id is bound with ``structlog.contextvars``.

Secrets never reach a log sink: :func:`redact_secrets` runs before rendering in every configuration and
replaces the values of secret-bearing keys (tokens, client secrets, passwords, JWT assertions, Authorization
headers) wherever they sit in the event dict, including nested mappings and lists.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "**redacted**"

# Keys compared after lower-casing and dropping "-" and "_", so "Access-Token", "access_token" and
# "accessToken" all match.
_SECRET_KEYS = frozenset(
    {
        "accesstoken",
        "refreshtoken",
        "token",
        "sessionid",
        "sid",
        "clientsecret",
        "consumersecret",
        "secret",
        "password",
        "passwd",
        "assertion",
        "authorization",
        "privatekey",
        "privatekeypem",
        "securitytoken",
    }
)

# Free text may still carry a bearer token or a form-encoded secret (an exception message quoting a request).
_BEARER = re.compile(r"(?i)\b(bearer|oauth|basic)\s+[A-Za-z0-9._~+/=!\-]{8,}")
_FORM_SECRET = re.compile(r"(?i)\b(access_token|refresh_token|client_secret|password|assertion)=([^&\s\"']+)")
_JSON_SECRET = re.compile(
    r"(?i)\"(access_token|refresh_token|client_secret|password|assertion)\"\s*:\s*\"[^\"]*\""
)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "").replace("_", "") in _SECRET_KEYS


def redact_text(text: str) -> str:
    """Blank out bearer tokens and ``secret=value`` pairs inside free text."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _FORM_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _JSON_SECRET.sub(lambda m: f'"{m.group(1)}": "{REDACTED}"', text)


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _redact(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace secret values in the event dict before any renderer sees them."""
    for key in list(event_dict):
        value = event_dict[key]
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        elif key == "exc_info":
            continue  # rendered later by format_exc_info, which this processor then sees as "exception"
        else:
            event_dict[key] = _redact(value)
    return event_dict


EventListener = Callable[[str, str], None]
_listeners: list[EventListener] = []
_COUNTED_LEVELS = frozenset({"warning", "warn", "error", "critical", "exception"})
# Only stable dotted names (`outbox.retry_scheduled`): a library's free-text warning is not a metric label.
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def add_event_listener(listener: EventListener) -> Callable[[], None]:
    """Call `listener(event, level)` for every warning or error logged; returns the function that stops it.

    The daemon counts them in `sfconnector_log_events_total{event=...}`, so an alert rule can watch any stable
    event name (`routing.target_missing`, `stream.replay_expired`) without parsing logs.
    """
    _listeners.append(listener)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(listener)

    return remove


def notify_event_listeners(
    _logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: tell the listeners about warnings and errors (never fails the log call)."""
    if _listeners and method in _COUNTED_LEVELS:
        event = str(event_dict.get("event", ""))
        if not _EVENT_NAME.fullmatch(event):
            return event_dict
        for listener in list(_listeners):
            with contextlib.suppress(Exception):
                listener(event, method)
    return event_dict


def shared_processors() -> list[Any]:
    """Processors every configuration runs, in order, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        notify_event_listeners,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def configure_logging(level: str = "info", *, json: bool | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog for the process.

    ``json=None`` picks JSON when ``stream`` is not a terminal (journald, files, pipes) and the console renderer
    when it is.
    """
    out = stream if stream is not None else sys.stderr
    use_json = (not out.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    # Libraries logging through the standard library (urllib3, aiohttp, asyncio) get the same rendering
    # and the same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared_processors()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))
    structlog.configure(
        processors=[*shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    """A bound structlog logger; ``name`` becomes the ``logger`` field."""
    log = structlog.get_logger()
    return log.bind(logger=name) if name else log
