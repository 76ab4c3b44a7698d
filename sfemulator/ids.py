"""Salesforce record IDs: 15-character case-sensitive, 18-character with a checksum suffix."""

from __future__ import annotations

import itertools
import re
import threading

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-5]{3})?$")

# Key prefixes identical in every org; custom objects get org-specific ones starting with 'a'.
STANDARD_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Group": "00G",
    "Task": "00T",
    "Organization": "00D",
    "Profile": "00e",
    "AssignmentRule": "01Q",
    "PushTopic": "0IF",
}


def checksum_suffix(id15: str) -> str:
    """The 3-character suffix: bit j of chunk i is set when character j of that chunk is A-Z."""
    suffix = ""
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        n = sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")
        suffix += _SUFFIX_ALPHABET[n]
    return suffix


def _restore_case(id18: str) -> str | None:
    """The 15-character id an 18-character one names, in whatever case it was written (18-character ids
    are case-insensitive: the suffix records which characters are upper case); None if it cannot be."""
    suffix = id18[15:].upper()
    out: list[str] = []
    for i in range(3):
        bits = _SUFFIX_ALPHABET.find(suffix[i])
        if bits < 0:
            return None
        for j in range(5):
            char = id18[i * 5 + j]
            if bits >> j & 1:
                if not char.isalpha():
                    return None
                out.append(char.upper())
            else:
                out.append(char.lower())
    return "".join(out)


def to18(record_id: str) -> str:
    """Normalise a 15- or 18-character id to its 18-character form."""
    if len(record_id) == 18:
        id15 = _restore_case(record_id) or record_id[:15]
        return id15 + checksum_suffix(id15)
    return record_id + checksum_suffix(record_id)


def looks_like_id(value: str) -> bool:
    """True for a syntactically valid 15-character id, or an 18-character one (any case) whose suffix fits."""
    if not _ID_RE.match(value):
        return False
    return len(value) == 15 or _restore_case(value) is not None


class IdFactory:
    """Mints ids per key prefix: prefix + instance (2 chars) + base-62 counter, like a real pod."""

    def __init__(self, instance: str = "5g") -> None:
        self._instance = instance
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            n = next(counter)
        body = ""
        for _ in range(10):
            n, r = divmod(n, 62)
            body = _BASE62[r] + body
        return to18(prefix + self._instance + body)
