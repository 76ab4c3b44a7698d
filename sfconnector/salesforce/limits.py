"""API-allocation throttle policy (pure): how long to pause before the next call, from ``Sforce-Limit-Info``.

The org's daily allocation is shared by every integration and every user; running it dry blocks them all. So
the connector spends freely while usage is low, and once usage passes ``1 - reserve`` of the allocation it
spaces its calls further and further apart, stopping entirely (for ``max_pause_s``) at the edge of the reserve.
"""

from __future__ import annotations

import re

from ._types import ApiUsage

_API_USAGE = re.compile(r"^\s*api-usage=(\d+)/(\d+)")


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``api-usage=used/max[; per-app-api-usage=...]`` -> ApiUsage; None when absent or malformed."""
    if not header:
        return None
    match = _API_USAGE.match(header)
    if match is None:
        return None
    return ApiUsage(used=int(match.group(1)), max=int(match.group(2)))


def throttle_delay(
    used: int,
    maximum: int,
    *,
    reserve: float = 0.10,
    max_pause_s: float = 300.0,
    exhausted_pause_s: float = 900.0,
) -> float:
    """Seconds to wait before the next API call.

    0 while ``used`` stays below ``(1 - reserve) * maximum``; beyond that the pause grows quadratically with
    how deep into the reserve usage is, reaching ``max_pause_s`` when only 1% of the allocation is left, and
    ``exhausted_pause_s`` once it is spent (Salesforce would answer REQUEST_LIMIT_EXCEEDED anyway).
    """
    if maximum <= 0:
        return 0.0
    if used >= maximum:
        return exhausted_pause_s
    reserve = min(max(reserve, 0.0), 0.99)
    threshold = (1.0 - reserve) * maximum
    if used < threshold:
        return 0.0
    # depth: 0 at the threshold, 1 when 1% of the allocation is left
    span = max((reserve - 0.01) * maximum, 1.0)
    depth = min(1.0, (used - threshold) / span)
    return round(max_pause_s * depth * depth, 3) if depth > 0 else 0.0
