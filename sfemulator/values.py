"""Field values as the REST API accepts and returns them (JSON-ready, typed per field)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sfemulator.errors import DmlError
from sfemulator.ids import looks_like_id, to18
from sfemulator.schema import FieldDef

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_datetime(value: dt.datetime) -> str:
    """The REST form of a datetime: `2026-11-23T04:30:13.000+0000` (always UTC, milliseconds)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime:
    """Accept the ISO-8601 forms clients send: `Z`, `+0000`, `+00:00`, with or without fraction."""
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(.*[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)([+-]\d{2})(\d{2})$", s)
    if m:
        s = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    parsed = dt.datetime.fromisoformat(s)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _json_error(f: FieldDef, type_name: str, value: Any) -> DmlError:
    kind = "VALUE_STRING" if isinstance(value, str) else "VALUE_NUMBER_INT"
    if isinstance(value, bool):
        kind = "VALUE_TRUE" if value else "VALUE_FALSE"
    elif isinstance(value, float):
        kind = "VALUE_NUMBER_FLOAT"
    elif isinstance(value, dict | list):
        kind = "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"
    return DmlError(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {type_name} from {kind} value {value} "
        "or request may be missing a required field",
        [f.name],
    )


def _exact_number(f: FieldDef, value: Any) -> Decimal:
    """A JSON number (or numeric string) exactly, as Salesforce reads it before checking the field's range;
    NaN and infinities are not numbers a field can hold."""
    type_name = "int" if f.type == "int" else "double"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise _json_error(f, type_name, value)
    try:
        exact = Decimal(
            value.strip() if isinstance(value, str) else repr(value) if isinstance(value, float) else value
        )
    except InvalidOperation:
        raise _json_error(f, type_name, value) from None
    if not exact.is_finite() or (isinstance(value, str) and "_" in value):
        raise _json_error(f, type_name, value)
    return exact


def coerce(f: FieldDef, value: Any) -> Any:
    """The stored form of `value` for field `f`, or DmlError as Salesforce would report it.

    Empty strings become null, as Salesforce stores them.
    """
    if value is None or (isinstance(value, str) and value == "" and f.type != "boolean"):
        return None
    t = f.type
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _json_error(f, "boolean", value)
    if t in ("double", "currency", "percent", "int"):
        exact = _exact_number(f, value)
        if f.precision and abs(exact) >= Decimal(10) ** (f.precision - f.scale):
            # As Salesforce words it, e.g. "Normalized Score: value outside of valid range on numeric
            # field: 100.0" (a Bulk API capture in the Salesforce developer forums).
            raise DmlError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{f.label}: value outside of valid range on numeric field: {value}",
                [f.name],
            )
        if t == "int":
            if exact != exact.to_integral_value():
                raise _json_error(f, "int", value)
            return int(exact)
        number = float(exact)
        if f.scale:
            number = round(number, f.scale)
        return number
    if t == "date":
        if not isinstance(value, str) or not _DATE_RE.match(value[:10]):
            raise _json_error(f, "date", value)
        try:
            return dt.date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            raise _json_error(f, "date", value) from None
    if t == "datetime":
        if not isinstance(value, str):
            raise _json_error(f, "datetime", value)
        try:
            return format_datetime(parse_datetime(value))
        except (ValueError, OverflowError):  # not a datetime, or one past the end of the calendar in UTC
            raise _json_error(f, "datetime", value) from None
    if isinstance(value, dict | list):
        raise _json_error(f, "String", value)
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if t in ("id", "reference"):
        if not looks_like_id(text):
            raise DmlError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {text}", [f.name])
        return to18(text)
    if t == "email" and not _EMAIL_RE.match(text):
        raise DmlError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {text}", [f.name])
    if t == "picklist" and f.restricted and text not in f.picklist_values:
        raise DmlError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{f.label}: bad value for restricted picklist field: {text}",
            [f.name],
        )
    if f.length and len(text) > f.length:
        raise DmlError(
            "STRING_TOO_LONG",
            f"{f.label}: data value too large: {text[:80]} (max length={f.length})",
            [f.name],
        )
    return text
