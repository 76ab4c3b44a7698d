"""SOQL under hostile text: the parser fails only with SoqlError, LIKE matches exactly as the pattern says
without backtracking, and date literals compute for any n Salesforce accepts."""

from __future__ import annotations

import datetime as dt
import re

from hypothesis import given
from hypothesis import strategies as st

from sfemulator.soql import SoqlError, parse
from sfemulator.soql.dates import FIXED, WITH_N, day_range, iso_bound
from sfemulator.soql.literals import LikePattern

VALID = [
    "SELECT Id, Name FROM Lead WHERE Email = 'a@b.c' AND CreatedDate > 2020-01-01T00:00:00Z LIMIT 5",
    "SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:7",
    "SELECT Status__c, SUM(Amount__c) total FROM Reward__c GROUP BY Status__c HAVING SUM(Amount__c) > 1",
    "SELECT Id FROM Lead WHERE (Name LIKE 'a%' OR NOT Rating IN ('Hot', 'Cold')) ORDER BY Name DESC NULLS LAST",
]
PIECES = st.sampled_from(
    [
        "SELECT", "FROM", "WHERE", "NOT", "AND", "OR", "(", ")", ",", "'", "\\", "%", "_", ":", "=", "<>", "LIKE",
        "IN", "LIMIT", "OFFSET", "9" * 40, "-0", "1e400", "9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+14:00",
        "N_DAYS_AGO:99999999999", "LAST_N_MONTHS:2147483647", "TODAY", "NULL", "\x00", "é", "\ud800", "GROUP BY",
    ]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            text = text[:at] + " " + draw(PIECES) + " " + text[at:]
        elif choice == 1:
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif choice == 2:
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        else:
            text = text[:at] + text[at:].swapcase()
    return text


@given(st.one_of(mutated(), st.text(max_size=300)))
def test_parse_fails_only_with_soql_error(text: str) -> None:
    """Whatever the text, the parser answers a Query or a SoqlError with Salesforce's error code."""
    try:
        parse(text)
    except SoqlError as exc:
        assert exc.error_code.isupper() and exc.message


def test_parse_refuses_a_statement_over_100000_characters_before_reading_it() -> None:
    try:
        parse("SELECT Id FROM Lead WHERE Name = '" + "x" * 100_000 + "'")
    except SoqlError as exc:
        assert exc.error_code == "MALFORMED_QUERY"
        assert exc.message == "SOQL statements can not be longer than 100000 characters."
    else:
        raise AssertionError("a statement over the limit was parsed")


def _regex(pattern: str) -> str:
    return "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)


@given(st.text("ab%_", max_size=10), st.text("ab", max_size=14))
def test_like_pattern_matches_exactly_what_the_equivalent_regex_matches(pattern: str, value: str) -> None:
    assert LikePattern(pattern).matches(value) is (
        re.fullmatch(_regex(pattern), value, re.DOTALL) is not None
    )


def test_like_pattern_with_many_wildcards_scans_a_long_value_without_backtracking() -> None:
    value = "a" * 200_000  # a backtracking regex for this pattern would not finish in a lifetime
    assert not LikePattern("%a%a%a%a%a%a%a%a%a%a%b").matches(value)
    assert LikePattern("%a%a_a%a%").matches(value)


@given(
    st.sampled_from(sorted(FIXED | WITH_N)),
    st.integers(0, 2**31 - 1),
    st.dates(min_value=dt.date(1700, 1, 1), max_value=dt.date(4000, 12, 31)),
)
def test_date_literals_compute_for_any_n_and_any_day_salesforce_stores(
    name: str, n: int, today: dt.date
) -> None:
    start, end = day_range(name, n if name in WITH_N else None, today)
    assert start <= end
    low, high = iso_bound(start, datetime=True), iso_bound(end, datetime=True)
    assert low <= high
