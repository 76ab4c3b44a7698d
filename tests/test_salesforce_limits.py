"""The API-allocation throttle is a pure function of (used, max, reserve)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfconnector.salesforce import ApiUsage, parse_limit_info, throttle_delay


@pytest.mark.parametrize(
    ("header", "usage"),
    [
        ("api-usage=10018/100000", ApiUsage(10018, 100000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", ApiUsage(25, 5000)),
        ("per-app-api-usage=17/250(appName=x)", None),
        ("", None),
        (None, None),
        ("api-usage=abc/100", None),
    ],
)
def test_limit_info_header_parsing(header: str | None, usage: ApiUsage | None) -> None:
    """Only a header starting with api-usage=used/max counts."""
    assert parse_limit_info(header) == usage


def test_no_pause_below_the_reserve() -> None:
    """Spending freely until usage reaches 1 - reserve of the allocation."""
    assert throttle_delay(0, 100_000, reserve=0.1) == 0
    assert throttle_delay(89_999, 100_000, reserve=0.1) == 0
    assert throttle_delay(90_000, 100_000, reserve=0.1) == 0


def test_pause_grows_inside_the_reserve_and_caps() -> None:
    """Inside the reserve the pause grows with depth, reaching max_pause_s near the end and a long pause at 100%."""
    delays = [
        throttle_delay(u, 100_000, reserve=0.1, max_pause_s=300) for u in (91_000, 95_000, 98_000, 99_000)
    ]
    assert 0 < delays[0] < delays[1] < delays[2] < delays[3] == 300
    assert throttle_delay(100_000, 100_000, exhausted_pause_s=900) == 900
    assert throttle_delay(120_000, 100_000, exhausted_pause_s=900) == 900


def test_unknown_maximum_never_pauses() -> None:
    """A header without a usable maximum does not stop the daemon."""
    assert throttle_delay(5, 0) == 0


@given(
    used=st.integers(0, 200_000),
    more=st.integers(0, 10_000),
    maximum=st.integers(1, 150_000),
    reserve=st.floats(0.0, 0.5),
)
def test_delay_is_monotonic_in_usage(used: int, more: int, maximum: int, reserve: float) -> None:
    """More usage never means a shorter pause, and pauses are never negative."""
    a = throttle_delay(used, maximum, reserve=reserve)
    b = throttle_delay(used + more, maximum, reserve=reserve)
    assert 0 <= a <= b
