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


class _Segment:
    """A fixed-length run of a LIKE pattern between two `%`: literal characters and `_` (any one character)."""

    def __init__(self, chars: list[tuple[str, bool]]) -> None:
        self.length = sum(len(c) for c, _ in chars)  # lower-casing may lengthen a character (İ)
        self.text = "".join(c for c, _ in chars)
        self.plain = not any(wild for _, wild in chars)
        # Literals and `.` only, never a quantifier: a search costs at most len(value) x len(segment).
        self.regex = re.compile("".join("." if wild else re.escape(c) for c, wild in chars), re.DOTALL)

    def at(self, value: str, pos: int) -> bool:
        if self.plain:
            return value.startswith(self.text, pos)
        return pos + self.length <= len(value) and self.regex.match(value, pos) is not None

    def find(self, value: str, pos: int, end: int) -> int:
        """The leftmost start in [pos, end - length] where the segment matches, or -1."""
        if self.plain:
            return value.find(self.text, pos, end)
        found = self.regex.search(value, pos, end)
        return -1 if found is None else found.start()


class LikePattern:
    """A LIKE pattern, matched against the lower-cased value without backtracking.

    The pattern is cut at each `%` into fixed-length segments; the first is anchored at the start, the last
    at the end, and those in between are taken leftmost in order. Because every segment has a fixed length,
    the leftmost placement never has to be revisited, so a match costs O(len(value) x len(pattern)) in the
    worst case, where a backtracking regular expression (`.*a.*a.*b`) is exponential.
    Case-insensitivity is applied by lower-casing both sides, the rule `=` uses, so `LIKE` without
    wildcards and `=` always agree.
    """

    def __init__(self, body: str) -> None:
        self.source = body
        segments: list[list[tuple[str, bool]]] = [[]]
        for c, wild in _unescape(body, like=True):
            if wild and c == "%":
                segments.append([])
            else:
                segments[-1].append((c.lower(), wild))
        self._segments = [_Segment(chars) for chars in segments]

    def matches(self, value: str) -> bool:
        """Whether the (already lower-cased) value matches the whole pattern."""
        head, *rest = self._segments
        if not rest:
            return len(value) == head.length and head.at(value, 0)
        *middle, tail = rest
        if not head.at(value, 0):
            return False
        pos = head.length
        tail_start = len(value) - tail.length
        if tail_start < pos or not tail.at(value, tail_start):
            return False
        for segment in middle:
            found = segment.find(value, pos, tail_start)
            if found < 0:
                return False
            pos = found + segment.length
        return True

    def __repr__(self) -> str:
        return f"LikePattern({self.source!r})"


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
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:00:00-10:00 is past the end of the calendar in UTC
        raise ValueError(text) from None


def format_datetime(value: dt.datetime) -> str:
    """The stored form `YYYY-MM-DDThh:mm:ss.sss+0000`, which orders correctly as a string."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
