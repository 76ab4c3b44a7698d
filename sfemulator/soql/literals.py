"""SOQL literals: string escapes exactly as Salesforce defines them, LIKE patterns, dates and datetimes."""

from __future__ import annotations

import datetime as dt
import re

# Salesforce's escape table (SOQL "Quoted String Escape Sequences"); \% and \_ only inside LIKE.
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LIKE_ESCAPES = frozenset("%_")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


class EscapeError(ValueError):
    """An illegal backslash sequence; `sequence` is what Salesforce quotes in its message."""

    def __init__(self, sequence: str) -> None:
        super().__init__(sequence)
        self.sequence = sequence


def _unescape(body: str, *, like: bool) -> list[tuple[str, bool]]:
    """Characters of a quoted literal's body, each flagged True when it is a LIKE wildcard."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append((ch, like and ch in _LIKE_ESCAPES))
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < n else ""
        if nxt in _SIMPLE_ESCAPES:
            out.append((_SIMPLE_ESCAPES[nxt], False))
            i += 2
        elif like and nxt in _LIKE_ESCAPES:
            out.append((nxt, False))
            i += 2
        elif nxt == "u" and _HEX4.fullmatch(body, i + 2, i + 6):
            out.append((chr(int(body[i + 2 : i + 6], 16)), False))
            i += 6
        else:
            raise EscapeError("\\" + nxt)
    return _join_surrogates(out)


def _join_surrogates(chars: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Salesforce strings are UTF-16: \\uD83D\\uDE00 is one character, so pair surrogates up."""
    if not any("\ud800" <= c <= "\udfff" for c, _ in chars):
        return chars
    out: list[tuple[str, bool]] = []
    for c, wild in chars:
        if out and "\udc00" <= c <= "\udfff" and "\ud800" <= out[-1][0] <= "\udbff":
            high = out.pop()[0]
            c = chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(c) - 0xDC00))
        out.append((c, wild))
    return out


def decode_string(body: str) -> str:
    """The value of a quoted literal's body (quotes removed); raises EscapeError on an illegal escape."""
    if "\\" not in body:
        return body
    return "".join(c for c, _ in _unescape(body, like=False))


def like_regex(body: str) -> str:
    """A regular expression, to be full-matched against the lower-cased value, equal to a LIKE pattern.

    Case-insensitivity is applied by lower-casing both sides, the same rule `=` uses, so `LIKE` without
    wildcards and `=` always agree.
    """
    parts: list[str] = []
    for c, wild in _unescape(body, like=True):
        if wild:
            parts.append(".*" if c == "%" else ".")
        else:
            parts.append(re.escape(c.lower()))
    return "".join(parts)


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):?(\d{2}))\Z"
)


def parse_date(text: str) -> dt.date:
    """A `YYYY-MM-DD` literal; ValueError when it is not a real date."""
    return dt.date.fromisoformat(text)


def parse_datetime(text: str) -> dt.datetime:
    """A dateTime literal (`Z` or `±hh:mm` offset, optional fraction) as an aware UTC datetime."""
    m = _DATETIME.match(text)
    if not m:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    offset = dt.timedelta(0)
    if not m.group(8):
        sign = 1 if m.group(9) == "+" else -1
        offset = sign * dt.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
    value = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.timezone(offset))
    return value.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """The stored form `YYYY-MM-DDThh:mm:ss.sss+0000`, which orders correctly as a string."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
