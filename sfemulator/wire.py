"""JSON as Salesforce reads and writes it, and the request limits every entry point shares.

    body = parse_json(raw)        # JsonError(message) for anything Salesforce's parser refuses
    raw = dumps(body)             # never NaN or Infinity: a body we send is always valid JSON

Salesforce parses request bodies with Jackson, whose JSON_PARSER_ERROR messages the REST API returns; so
NaN, Infinity and other non-standard tokens are refused, numbers too large for a double stay exact (a field
then refuses them as out of range), and nesting is bounded. The figures and their sources are in
docs/emulator.md, "Input limits".
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

# Non-multipart REST bodies: "limited to 50 MB of text data" (REST API guide, Insert or Update Blob Data);
# the refusal is 400 JSON_PARSER_ERROR "Maximum size of request reached. Maximum size of request is
# 52428800 bytes." (simple-salesforce#195).
MAX_BODY_BYTES = 52_428_800
BODY_TOO_LARGE = f"Maximum size of request reached. Maximum size of request is {MAX_BODY_BYTES} bytes."
# URI plus headers of one REST call (help article 000386264): more is 431, a longer URI alone is 414.
MAX_URI_AND_HEADERS = 16_384
# Salesforce documents no nesting limit [UNCONFIRMED]; Jackson's default (StreamReadConstraints) is 1000.
# The emulator stops at 500 so that its own recursive passes over a body (composite references, the JSON
# encoder) stay far from Python's recursion limit; no client nests a body that deep.
MAX_JSON_DEPTH = 500
# Python refuses to convert longer integer literals (sys.get_int_max_str_digits); they are kept as Decimal.
_MAX_INT_DIGITS = 4000
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class JsonError(ValueError):
    """A body Salesforce's JSON parser refuses; `message` is what JSON_PARSER_ERROR says."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _constant(name: str) -> Any:
    raise JsonError(
        f"Non-standard token '{name}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
    )


def _integer(text: str) -> int | Decimal:
    return int(text) if len(text) <= _MAX_INT_DIGITS else Decimal(text)


def _real(text: str) -> float | Decimal:
    value = float(text)
    if math.isfinite(value):
        return value
    try:
        return Decimal(text)  # 1e400: exact, refused later as out of range by the field it is written to
    except InvalidOperation:  # an exponent beyond any decimal (1e4001000000000000000)
        raise JsonError(f"Numeric value ({text[:100]}) out of range of double") from None


def _depth(text: str) -> int:
    """How deeply arrays and objects nest, skipping strings; linear in the text."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the brackets it has
    depth = deepest = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _syntax_message(exc: json.JSONDecodeError) -> str:
    char = exc.doc[exc.pos] if exc.pos < len(exc.doc) else "EOF"
    return (
        f"Unexpected character ('{char}' (code {ord(char) if len(char) == 1 else -1})): expected a valid value "
        f"(number, String, array, object, 'true', 'false' or 'null') at [line:{exc.lineno}, column:{exc.colno}]"
    )


def parse_json(raw: bytes | str) -> Any:
    """The JSON value of a request body; JsonError for what Salesforce would refuse.

    Numbers are int or float, or Decimal when Python's own types cannot hold them exactly (1e400, a
    5,000-digit integer); NaN and Infinity are refused.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonError("Invalid UTF-8 middle byte") from None
    else:
        text = raw
    depth = _depth(text)
    if depth > MAX_JSON_DEPTH:
        raise JsonError(
            f"Document nesting depth ({depth}) exceeds the maximum allowed ({MAX_JSON_DEPTH}, "
            "from `StreamReadConstraints.getMaxNestingDepth()`)"
        )
    try:
        return json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_real)
    except json.JSONDecodeError as exc:
        raise JsonError(_syntax_message(exc)) from None


def _encode_extra(value: Any) -> Any:
    if isinstance(value, Decimal):  # echoed from a request (a huge Bayeux id, say)
        as_float = float(value)
        return as_float if math.isfinite(as_float) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """A body as Salesforce sends it: compact-enough JSON, never NaN or Infinity (ValueError if asked to)."""
    return json.dumps(value, allow_nan=False, default=_encode_extra).encode()
