"""ORDER BY keys with Salesforce's null placement and case-insensitive text order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfemulator.soql.binding import Getter
from sfemulator.soql.query import OrderItem
from sfemulator.soql.source import TEXT_TYPES, FieldInfo


def sort_key(get: Getter, field: FieldInfo, item: OrderItem) -> Callable[[Any], tuple[int, Any]]:
    """A key for one ORDER BY item, to be used with `reverse=item.descending` in a stable sort."""
    # Null rank chosen so that after an optional reversal nulls land where NULLS FIRST/LAST says.
    null_rank = 0 if item.nulls_first != item.descending else 2
    text = field.type in TEXT_TYPES

    def key(r: Any) -> tuple[int, Any]:
        v = get(r)
        if v is None:
            return (null_rank, None)
        return (1, v.lower() if text and isinstance(v, str) else v)

    return key
