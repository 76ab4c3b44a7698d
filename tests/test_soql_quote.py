"""The daemon's SOQL builder: exact escaping, no unquoted mode, id validation, IN-list chunking, and (with
hypothesis) that whatever string goes in comes back out of the emulator's parser and matches exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfconnector.soql import IdList, Like, chunked_in, id_list, is_record_id, like, quote, soql
from sfemulator.soql import FieldInfo, ObjectInfo, execute, parse
from sfemulator.soql.parser import literal_values

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)

QUOTES = [
    ("plain", "'plain'"),
    ("O'Brien", "'O\\'Brien'"),
    ('say "hi"', "'say \\\"hi\\\"'"),
    ("back\\slash", "'back\\\\slash'"),
    ("a\nb\rc\td\be\ff", "'a\\nb\\rc\\td\\be\\ff'"),
    ("50% off_now", "'50% off_now'"),  # wildcards are only special in LIKE
    ("' OR Name != '", "'\\' OR Name != \\''"),
    ("ünï中😀", "'ünï中😀'"),
    ("", "''"),
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (42, "42"),
    (-7, "-7"),
    (2.5, "2.5"),
    (Decimal("1234.500"), "1234.500"),
    (Decimal("1E+3"), "1000"),
    (dt.date(2026, 11, 23), "2026-11-23"),
    (dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC), "2026-11-23T10:00:00Z"),
    (dt.datetime(2026, 11, 23, 11, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2026-11-23T10:00:00.250Z"),
    (["a", "b'c"], "('a','b\\'c')"),
    (("x", 1, None), "('x',1,null)"),
    (frozenset({"b", "a"}), "('a','b')"),
    (Like("50%_"), "'50\\%\\_'"),
    (Like.prefix("O'B"), "'O\\'B%'"),
    (Like.suffix("a"), "'%a'"),
    (Like.contains("\\"), "'%\\\\%'"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), QUOTES)
def test_quote_writes_salesforce_literals(value: object, expected: str) -> None:
    assert quote(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 11, 23, 10, 0),  # noqa: DTZ001 (naive on purpose: the offset would be a guess)
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        [],
        [["nested"]],
        b"bytes",
        object(),
    ],
)
def test_quote_refuses_what_soql_cannot_express(value: object) -> None:
    with pytest.raises(ValueError):
        quote(value)


def test_like_escapes_wildcards_as_well_as_quotes() -> None:
    assert like("50%_'\\") == "'50\\%\\_\\'\\\\'"
    assert like("ab", "contains") == "'%ab%'"


def test_soql_fills_named_placeholders_with_quoted_values() -> None:
    text = soql(
        "SELECT Id FROM Lead WHERE Email = {email} AND Status IN {s} AND X = '{{y}}'", email="a'b", s=["Open"]
    )
    assert text == "SELECT Id FROM Lead WHERE Email = 'a\\'b' AND Status IN ('Open') AND X = '{y}'"


@pytest.mark.parametrize(
    ("template", "params"),
    [
        ("WHERE Name = {v:literal}", {"v": "x"}),
        ("WHERE Name = {v!r}", {"v": "x"}),
        ("WHERE Name = {}", {}),
        ("WHERE Name = {0}", {}),
        ("WHERE Name = {v.attr}", {"v": "x"}),
        ("WHERE Name = {v}", {}),
        ("WHERE Name = {v}", {"v": "x", "extra": 1}),
    ],
)
def test_soql_has_no_unquoted_or_sloppy_placeholders(template: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        soql(template, **params)


def test_id_list_accepts_15_and_18_character_ids_and_drops_duplicates() -> None:
    assert is_record_id("00Q5f000005bwLF") and is_record_id("00Q5f000005bwLFEAY")
    assert id_list(["00Q5f000005bwLFEAY", "005i0000002MUqL", "00Q5f000005bwLFEAY"]) == (
        "('00Q5f000005bwLFEAY','005i0000002MUqL')"
    )
    assert quote(IdList(["005i0000002MUqLAAW"])) == "('005i0000002MUqLAAW')"


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "00Q5f000005bwLFEAX", "00Q5f000005bwL'", "00Q5f000005bwLFE", "00Q5f000005bwLF' OR ''='", 15],
)
def test_id_list_rejects_anything_that_is_not_a_record_id(bad: Any) -> None:
    with pytest.raises(ValueError):
        id_list([bad])


def test_chunked_in_keeps_every_list_under_the_limit_and_loses_nothing() -> None:
    values = [f"lead-{i:05d}@example.test" for i in range(500)]
    chunks = chunked_in(values, max_chars=2000)
    assert [v for chunk in chunks for v in chunk] == values
    assert all(len(quote(chunk)) <= 2000 for chunk in chunks)
    assert sum(len(quote(c)) for c in chunks) / len(chunks) > 1800


def test_chunked_in_refuses_a_value_longer_than_the_limit() -> None:
    with pytest.raises(ValueError):
        chunked_in(["x" * 50], max_chars=20)
    assert chunked_in([], max_chars=20) == []


# --- round trip through the emulator's parser and executor ---------------------------------------------------

_LEAD = ObjectInfo("Lead", {"id": FieldInfo("Id", "id"), "lastname": FieldInfo("LastName", "string")})


class _Leads:
    def __init__(self, names: list[str]) -> None:
        self.rows = [{"Id": f"00Q5g{i:010d}AAA", "LastName": n} for i, n in enumerate(names)]

    def object_schema(self, sobject: str) -> ObjectInfo | None:
        return _LEAD if sobject.lower() == "lead" else None

    def records(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        return self.rows

    def get(self, record_id: str) -> tuple[str, Mapping[str, Any]] | None:
        return None


_HOSTILE = st.text(
    alphabet=st.one_of(st.sampled_from("'\"\\%_\n\r\t\b\f{}()=*aA "), st.characters(codec="utf-8")),
    max_size=30,
)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()  # how Salesforce compares text, and the emulator's documented rule


@settings(max_examples=300, deadline=None)
@given(value=_HOSTILE)
def test_any_string_round_trips_through_the_parser(value: str) -> None:
    query = parse(soql("SELECT Id FROM Lead WHERE LastName = {v}", v=value))
    assert literal_values(query.where) == [value]


@settings(max_examples=200, deadline=None)
@given(value=_HOSTILE, others=st.lists(_HOSTILE, max_size=5))
def test_equality_and_exact_like_match_exactly_the_equal_records(value: str, others: list[str]) -> None:
    names = [value, *others]
    source = _Leads(names)
    expected = [r["Id"] for r in source.rows if value and _same(r["LastName"], value)]
    if not value:  # '' is null in Salesforce filters; no stored name here is null
        expected = []
    equal = execute(parse(soql("SELECT Id FROM Lead WHERE LastName = {v}", v=value)), source, now=NOW)
    assert [r["Id"] for r in equal.rows] == expected
    liked = execute(
        parse(soql("SELECT Id FROM Lead WHERE LastName LIKE {v}", v=Like(value))), source, now=NOW
    )
    assert [r["Id"] for r in liked.rows] == [r["Id"] for r in source.rows if _same(r["LastName"], value)]


@settings(max_examples=150, deadline=None)
@given(value=_HOSTILE, others=st.lists(_HOSTILE, max_size=5))
def test_prefix_like_matches_exactly_the_names_starting_with_the_value(value: str, others: list[str]) -> None:
    source = _Leads([value + "tail", *others])
    result = execute(
        parse(soql("SELECT Id FROM Lead WHERE LastName LIKE {v}", v=Like.prefix(value))), source, now=NOW
    )
    expected = [r["Id"] for r in source.rows if r["LastName"].lower().startswith(value.lower())]
    assert [r["Id"] for r in result.rows] == expected


@settings(max_examples=100, deadline=None)
@given(values=st.lists(_HOSTILE, min_size=1, max_size=8))
def test_in_lists_round_trip(values: list[str]) -> None:
    query = parse(soql("SELECT Id FROM Lead WHERE LastName IN {v}", v=values))
    assert literal_values(query.where) == values
