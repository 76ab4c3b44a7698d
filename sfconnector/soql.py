"""The one way the daemon builds SOQL: every value is quoted and escaped, never pasted in.

    soql("SELECT Id FROM Lead WHERE Email = {email} AND Status IN {statuses}",
         email=address, statuses=["Open", "Working"])
    soql("SELECT Id FROM Advocate__c WHERE Name LIKE {p}", p=Like.prefix(typed))
    for chunk in chunked_in(lead_ids):
        soql("SELECT Id, OwnerId FROM Lead WHERE Id IN {ids}", ids=IdList(chunk))

Escapes follow Salesforce's table for quoted strings (SOQL "Quoted String Escape Sequences"): `\\n \\r \\t
\\b \\f \\" \\' \\\\`; `\\%` and `\\_` only in LIKE patterns. There is deliberately no unquoted or "literal"
placeholder: field and object names belong in the template, which is code, not data. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import string
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeVar

_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
)
_LIKE_ESCAPES = str.maketrans({"%": "\\%", "_": "\\_"})
_ID_RE = re.compile(r"[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Values of an IN list per query: keeps a GET /query/?q=... well under Salesforce's URI limits.
DEFAULT_IN_CHARS = 2000

T = TypeVar("T")
LikeMatch = Literal["exact", "prefix", "suffix", "contains"]


@dataclass(frozen=True)
class Like:
    """A LIKE pattern whose text is matched literally (its % and _ escaped), with optional wildcards."""

    text: str
    match: LikeMatch = "exact"

    @classmethod
    def prefix(cls, text: str) -> Like:
        return cls(text, "prefix")

    @classmethod
    def suffix(cls, text: str) -> Like:
        return cls(text, "suffix")

    @classmethod
    def contains(cls, text: str) -> Like:
        return cls(text, "contains")


@dataclass(frozen=True)
class IdList:
    """A parenthesised list of record ids, validated when quoted (see `id_list`)."""

    ids: Sequence[str]


SoqlValue = (
    str
    | bool
    | int
    | float
    | Decimal
    | dt.date
    | dt.datetime
    | None
    | Like
    | IdList
    | Sequence[object]
    | Set[object]
)


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def quote(value: object) -> str:
    """A SOQL literal for `value`: strings quoted and escaped, numbers, true/false, null, dates and
    datetimes (timezone-aware, written in UTC), and sequences or sets as an IN list `('a','b')`.

    Raises ValueError for values SOQL cannot express: naive datetimes, NaN/infinity, empty lists,
    nested lists and unknown types.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{_escape(value)}'"
    if isinstance(value, Like):
        return like(value.text, value.match)
    if isinstance(value, IdList):
        return id_list(value.ids)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return _number(value)
    if isinstance(value, dt.datetime):
        return _datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Sequence | Set) and not isinstance(value, bytes | bytearray):
        items = sorted(value, key=repr) if isinstance(value, Set) else list(value)
        if not items:
            raise ValueError("an IN list needs at least one value")
        if any(_is_list(item) for item in items):
            raise ValueError("IN lists cannot be nested")
        return "(" + ",".join(quote(item) for item in items) + ")"
    raise ValueError(f"cannot express a {type(value).__name__} in SOQL")


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence | Set | IdList) and not isinstance(value, str | bytes | bytearray)


def _number(value: float | Decimal) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"SOQL has no literal for {value}")
        return repr(value)
    if not value.is_finite():
        raise ValueError(f"SOQL has no literal for {value}")
    # Plain notation: SOQL number literals have no exponent.
    return format(value, "f")


def _datetime(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime values must be timezone-aware (SOQL datetimes carry an offset)")
    utc = value.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def like(value: str, match: LikeMatch = "exact") -> str:
    """A quoted LIKE pattern matching `value` literally (its % and _ escaped), plus the wildcards `match` asks for."""
    body = _escape(value).translate(_LIKE_ESCAPES)
    if match in ("suffix", "contains"):
        body = "%" + body
    if match in ("prefix", "contains"):
        body += "%"
    return f"'{body}'"


def _checksum(id15: str) -> str:
    suffix = ""
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        suffix += _SUFFIX_ALPHABET[sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")]
    return suffix


def is_record_id(value: object) -> bool:
    """True for a 15-character id or an 18-character id whose suffix matches its first 15 characters."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        return False
    return len(value) == 15 or value[15:] == _checksum(value[:15])


def id_list(ids: Iterable[str]) -> str:
    """`('001...','001...')` for record ids, each checked to be a real 15/18-character id (ValueError if not).

    Duplicates are dropped, order is kept.
    """
    unique: list[str] = []
    seen: set[str] = set()
    for record_id in ids:
        if not is_record_id(record_id):
            raise ValueError(f"not a Salesforce record id: {record_id!r}")
        if record_id not in seen:
            seen.add(record_id)
            unique.append(record_id)
    if not unique:
        raise ValueError("an IN list needs at least one id")
    return "(" + ",".join(f"'{i}'" for i in unique) + ")"


def chunked_in(values: Iterable[T], max_chars: int = DEFAULT_IN_CHARS) -> list[list[T]]:
    """Split values into groups whose quoted IN list `('a','b',…)` stays within `max_chars` characters.

    Quote each group with `quote` (or `IdList` for ids). A single value too long for the limit raises
    ValueError rather than producing a query Salesforce would refuse.
    """
    chunks: list[list[T]] = []
    current: list[T] = []
    size = 2  # the parentheses
    for value in values:
        width = len(quote(value))
        if width + 2 > max_chars:
            raise ValueError(f"one value is {width} characters quoted, over the {max_chars}-character limit")
        extra = width + (1 if current else 0)
        if current and size + extra > max_chars:
            chunks.append(current)
            current, size = [], 2
            extra = width
        current.append(value)
        size += extra
    if current:
        chunks.append(current)
    return chunks


_FORMATTER = string.Formatter()


def soql(template: str, **params: object) -> str:
    """Fill `{name}` placeholders in a SOQL template with `quote(params[name])`.

    `{{` and `}}` are literal braces. Positional (`{}`), attribute/index (`{a.b}`), conversion (`{a!r}`)
    and format-spec (`{a:literal}`) placeholders are refused, as are missing and unused parameters:
    there is no way to put an unquoted value into a query.
    """
    out: list[str] = []
    used: set[str] = set()
    for literal_text, name, spec, conversion in _FORMATTER.parse(template):
        out.append(literal_text)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must be a plain {{name}}: values are always quoted")
        if name not in params:
            raise ValueError(f"no value given for {{{name}}}")
        used.add(name)
        out.append(quote(params[name]))
    unused = set(params) - used
    if unused:
        raise ValueError(f"parameters not used by the template: {', '.join(sorted(unused))}")
    return "".join(out)
