"""SOQL parser: what parses into what, and the exact Salesforce error for what does not."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from sfemulator.soql import SoqlError, parse
from sfemulator.soql.literals import LikePattern
from sfemulator.soql.parser import literal_values
from sfemulator.soql.query import Aggregate, And, Comparison, FieldPath, Not, Or, RelativeDate


def _error(text: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        parse(text)
    return info.value


def _caret(message: str) -> tuple[int, int, str]:
    """(row, column, detail) from a caret block, checking that the caret sits under the column."""
    m = re.fullmatch(r"\n(.*)\n( *)\^\nERROR at Row:(\d+):Column:(\d+)\n(.*)", message, re.DOTALL)
    assert m, message
    row, column = int(m.group(3)), int(m.group(4))
    assert len(m.group(2)) == column - 1
    return row, column, m.group(5)


def test_caret_block_has_salesforce_layout_for_an_unexpected_token() -> None:
    """Same layout as the captured Salesforce message: query row, caret under the column, position, detail."""
    err = _error("SELECT Id, From Lead")
    assert err.error_code == "MALFORMED_QUERY"
    assert (
        err.message
        == "\nSELECT Id, From Lead\n           ^\nERROR at Row:1:Column:12\nunexpected token: 'From'"
    )


def test_unexpected_end_of_query_points_after_the_last_character() -> None:
    """`WHERE` with nothing after it is reported as '<EOF>' one past the end, as Salesforce does."""
    err = _error("SELECT Id FROM Account WHERE")
    assert err.message == (
        "\nSELECT Id FROM Account WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: '<EOF>'"
    )


MALFORMED = [
    # (query, row, column, detail fragment)
    ("SELECT Id FRM Lead", 1, 11, "unexpected token: 'FRM'"),
    ("SELECT FROM Lead", 1, 8, "unexpected token: 'FROM'"),
    ("SELECT Id FROM", 1, 15, "unexpected token: '<EOF>'"),
    ("", 1, 1, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Lead WHERE a = 1 AND b = 2 OR c = 3", 1, 43, "unexpected token: 'OR'"),
    ("SELECT Id FROM Lead WHERE a = 1 OR b = 2 AND c = 3", 1, 42, "unexpected token: 'AND'"),
    ("SELECT Id FROM Lead WHERE Name = 'a\\q'", 1, 34, "Illegal character sequence '\\q' in string literal."),
    ("SELECT Id FROM Lead WHERE Name = 'a\\%'", 1, 34, "Illegal character sequence '\\%' in string literal."),
    ("SELECT Id FROM Lead WHERE Name = 'a\\_'", 1, 34, "Illegal character sequence '\\_' in string literal."),
    (
        "SELECT Id FROM Lead WHERE Name = 'a\\u12'",
        1,
        34,
        "Illegal character sequence '\\u' in string literal.",
    ),
    ("SELECT Id FROM Lead WHERE Name = 'abc", 1, 34, "mismatched character '<EOF>' expecting '''"),
    ("SELECT Id FROM Lead WHERE Name = #", 1, 34, "no viable alternative at character '#'"),
    ("SELECT Id FROM Lead WHERE Name = Foo", 1, 34, "unexpected token: 'Foo'"),
    ("SELECT Id FROM Lead WHERE Name LIKE 5", 1, 37, "unexpected token: '5'"),
    ("SELECT Id FROM Lead WHERE d > 2026-13-01", 1, 31, "unexpected token: '2026-13-01'"),
    ("SELECT Id FROM Lead WHERE d = LAST_N_DAYS:-1", 1, 43, "unexpected token: '-1'"),
    ("SELECT Id FROM Lead LIMIT -1", 1, 27, "unexpected token: '-1'"),
    ("SELECT Id FROM Lead LIMIT 2.5", 1, 27, "unexpected token: '2.5'"),
    ("SELECT Id, COUNT() FROM Lead", 1, 12, "unexpected token: 'COUNT'"),
    ("SELECT Id FROM Lead WHERE COUNT(Id) > 1", 1, 27, "only allowed in the HAVING clause"),
    ("SELECT Id FROM Lead GROUP BY Id HAVING", 1, 39, "unexpected token: '<EOF>'"),
    ("SELECT Name FROM Lead HAVING COUNT(Id) > 1", 1, 23, "HAVING clause requires a GROUP BY clause"),
    ("SELECT Bogus(Id) FROM Lead", 1, 8, "Unknown function: Bogus"),
    ("SELECT Id\nFROM Lead\nWHERE Name = 'x' AND", 3, 21, "unexpected token: '<EOF>'"),
    ("SELECT Id\nFROM Lead\n  WHERE Name == 'x'", 3, 15, "unexpected token: '='"),
    # Valid SOQL the emulator does not answer: a clear MALFORMED_QUERY naming the feature.
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", 1, 13, "a subquery is not supported"),
    ("SELECT Id FROM Lead WHERE Id IN (SELECT LeadId FROM X)", 1, 34, "a subquery is not supported"),
    ("SELECT TYPEOF What WHEN Account THEN Name END FROM Event", 1, 8, "TYPEOF is not supported"),
    ("SELECT Id FROM Lead WITH SECURITY_ENFORCED", 1, 21, "a WITH clause is not supported"),
    ("SELECT Id FROM Lead FOR UPDATE", 1, 21, "a FOR clause is not supported"),
    ("SELECT Id FROM Lead USING SCOPE mine", 1, 21, "USING SCOPE is not supported"),
    ("SELECT toLabel(Status) FROM Lead", 1, 8, "the TOLABEL function is not supported"),
    ("SELECT Id FROM Lead WHERE x = THIS_FISCAL_YEAR", 1, 31, "a fiscal date literal is not supported"),
    ("SELECT Id FROM Lead WHERE x INCLUDES ('a')", 1, 29, "INCLUDES/EXCLUDES is not supported"),
    ("SELECT Owner.Manager.Name FROM Lead", 1, 22, "deeper than one level is not supported"),
    ("SELECT Status FROM Lead GROUP BY ROLLUP(Status)", 1, 34, "GROUP BY ROLLUP is not supported"),
]


@pytest.mark.parametrize(("text", "row", "column", "detail"), MALFORMED)
def test_malformed_query_reports_salesforce_code_and_position(
    text: str, row: int, column: int, detail: str
) -> None:
    """Every syntax problem is MALFORMED_QUERY with the caret on the offending token."""
    err = _error(text)
    assert err.error_code == "MALFORMED_QUERY"
    got_row, got_column, got_detail = _caret(err.message)
    assert (got_row, got_column) == (row, column)
    assert detail in got_detail


def test_keywords_and_names_are_case_insensitive_and_group_is_an_object() -> None:
    """Keywords in any case; `Group` is an object name although GROUP is a keyword."""
    q = parse(
        "select id, TYPE from group where type = 'Queue' order by name desc nulls first limit 3 offset 1"
    )
    assert q.sobject == "group"
    assert [s.text for s in q.select if isinstance(s, FieldPath)] == ["id", "TYPE"]
    assert q.limit == 3 and q.offset == 1
    (order,) = q.order_by
    assert order.descending and order.nulls_first


def test_nulls_default_first_ascending_and_last_descending() -> None:
    q = parse("SELECT Id FROM Lead ORDER BY Name, Company DESC")
    assert [(o.descending, o.nulls_first) for o in q.order_by] == [(False, True), (True, False)]


def test_where_builds_and_or_not_trees_with_parentheses() -> None:
    q = parse(
        "SELECT Id FROM Lead WHERE (A = 1 OR B != null) AND NOT C <> 'x' AND D IN ('a','b') AND E NOT IN (2)"
    )
    assert isinstance(q.where, And)
    first, second, third, fourth = q.where.items
    assert isinstance(first, Or) and isinstance(second, Not)
    assert isinstance(second.item, Comparison) and second.item.op == "!="
    assert isinstance(third, Comparison) and third.op == "IN"
    assert isinstance(fourth, Comparison) and fourth.op == "NOT IN"
    assert literal_values(q.where) == [1, None, "x", "a", "b", 2]


LITERALS = [
    ("'plain'", "plain"),
    ("'O\\'Brien'", "O'Brien"),
    ("'a\\\\b'", "a\\b"),
    ("'\\n\\r\\t\\b\\f\\\"'", '\n\r\t\b\f"'),
    ("'\\u00e9\\u4E2D'", "é中"),
    ("'\\uD83D\\uDE00'", "\U0001f600"),
    ("'raw \u00e9 ünïcode'", "raw é ünïcode"),
    ("'50% off_now'", "50% off_now"),
    ("''", ""),
    ("42", 42),
    ("-3.5", -3.5),
    ("+7", 7),
    ("TRUE", True),
    ("false", False),
    ("NULL", None),
    ("2026-11-23", dt.date(2026, 11, 23)),
    ("2026-11-23T10:00:00Z", dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)),
    ("2026-11-23T10:00:00+01:00", dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)),
    ("2026-11-23T10:00:00-0530", dt.datetime(2026, 11, 23, 15, 30, tzinfo=dt.UTC)),
    ("2026-11-23T10:00:00.250Z", dt.datetime(2026, 11, 23, 10, 0, 0, 250000, tzinfo=dt.UTC)),
    ("TODAY", RelativeDate("TODAY")),
    ("last_n_days:7", RelativeDate("LAST_N_DAYS", 7)),
    ("N_MONTHS_AGO:2", RelativeDate("N_MONTHS_AGO", 2)),
]


@pytest.mark.parametrize(("literal", "expected"), LITERALS)
def test_literal_is_decoded_to_its_value(literal: str, expected: object) -> None:
    """String escapes exactly per Salesforce's table; numbers, booleans, null, dates, datetimes in UTC."""
    q = parse(f"SELECT Id FROM Lead WHERE F = {literal}")
    assert literal_values(q.where) == [expected]


def test_like_pattern_keeps_escaped_wildcards_literal() -> None:
    """In LIKE, \\% and \\_ are literal characters; bare % and _ are wildcards."""
    q = parse("SELECT Id FROM Lead WHERE Name LIKE 'A\\%b_c%'")
    assert isinstance(q.where, Comparison) and q.where.op == "LIKE"
    pattern = q.where.value
    assert not isinstance(pattern, tuple)
    assert isinstance(pattern.value, LikePattern)
    assert pattern.value.matches("a%bxcanything")
    assert not pattern.value.matches("axbxc")


def test_count_star_and_aggregates_with_aliases() -> None:
    assert parse("SELECT COUNT() FROM Lead").count_only
    q = parse("SELECT Status__c, COUNT(Id), SUM(Amount__c) total FROM Reward__c GROUP BY Status__c")
    assert not q.count_only
    _, count, total = q.select
    assert isinstance(count, Aggregate) and count.function == "COUNT" and count.alias is None
    assert isinstance(total, Aggregate) and total.function == "SUM" and total.alias == "total"
    assert [g.text for g in q.group_by] == ["Status__c"]


def test_object_alias_is_stripped_from_field_paths() -> None:
    q = parse("SELECT l.Id, l.Owner.Name FROM Lead l WHERE l.Email = 'x'")
    assert [s.text for s in q.select if isinstance(s, FieldPath)] == ["Id", "Owner.Name"]


def test_positions_are_one_based_rows_and_columns() -> None:
    q = parse("SELECT Id,\n  Name FROM Lead")
    assert [(s.pos.line, s.pos.column) for s in q.select] == [(1, 8), (2, 3)]
    assert (q.sobject_pos.line, q.sobject_pos.column) == (2, 13)
