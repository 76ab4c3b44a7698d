"""SOQL executor over an in-memory org: schema errors, typed filters, parents, ordering, paging, aggregates."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from sfemulator.ids import IdFactory
from sfemulator.soql import FieldInfo, ObjectInfo, SoqlError, SoqlResult, compile_where, execute, parse

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)  # a Monday


def _schema(name: str, *fields: FieldInfo) -> ObjectInfo:
    return ObjectInfo(name, {f.name.lower(): f for f in (FieldInfo("Id", "id"), *fields)})


SCHEMAS = [
    _schema(
        "User",
        FieldInfo("Name", "string"),
        FieldInfo("FirstName", "string"),
        FieldInfo("LastName", "string"),
        FieldInfo("Email", "email"),
        FieldInfo("IsActive", "boolean"),
        FieldInfo("Username", "string"),
    ),
    _schema("Group", FieldInfo("Name", "string"), FieldInfo("Type", "picklist")),
    _schema(
        "Advocate__c",
        FieldInfo("Name", "string"),
        FieldInfo("OwnerId", "reference", ("User",), "Owner"),
        FieldInfo("Referral_Code__c", "string"),
    ),
    _schema(
        "Lead",
        FieldInfo("FirstName", "string"),
        FieldInfo("LastName", "string"),
        FieldInfo("Email", "email"),
        FieldInfo("Company", "string"),
        FieldInfo("Status", "picklist"),
        FieldInfo("OwnerId", "reference", ("Group", "User"), "Owner"),
        FieldInfo("Advocate__c", "reference", ("Advocate__c",), "Advocate__r"),
        FieldInfo("NumberOfEmployees", "int"),
        FieldInfo("AnnualRevenue", "currency"),
        FieldInfo("IsConverted", "boolean"),
        FieldInfo("CreatedDate", "datetime"),
        FieldInfo("Follow_Up__c", "date"),
    ),
    _schema(
        "Reward__c",
        FieldInfo("Status__c", "picklist"),
        FieldInfo("Amount__c", "currency"),
        FieldInfo("Advocate__c", "reference", ("Advocate__c",), "Advocate__r"),
    ),
]


class MemoryOrg:
    """A RecordSource over dicts, as the org store will present records."""

    def __init__(self) -> None:
        self.schemas = {s.name.lower(): s for s in SCHEMAS}
        self.rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in SCHEMAS}
        self.deleted: set[str] = set()
        self.by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        self.ids = IdFactory()
        self.gets = 0

    def add(self, sobject: str, prefix: str, **values: Any) -> str:
        record_id = self.ids.new(prefix)
        record = {"Id": record_id, **values}
        self.rows[sobject].append(record)
        self.by_id[record_id] = (sobject, record)
        return record_id

    def object_schema(self, sobject: str) -> ObjectInfo | None:
        return self.schemas.get(sobject.lower())

    def records(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        return [r for r in self.rows[sobject] if include_deleted or r["Id"] not in self.deleted]

    def get(self, record_id: str) -> tuple[str, Mapping[str, Any]] | None:
        self.gets += 1
        return self.by_id.get(record_id)


@pytest.fixture
def org() -> MemoryOrg:
    org = MemoryOrg()
    ana = org.add(
        "User", "005", Name="Ana Ruiz", FirstName="Ana", LastName="Ruiz", IsActive=True, Email="ana@x.test"
    )
    bo = org.add(
        "User", "005", Name="Bo Li", FirstName="Bo", LastName="Li", IsActive=False, Email="bo@x.test"
    )
    queue = org.add("Group", "00G", Name="Inbound", Type="Queue")
    adv = org.add("Advocate__c", "a01", Name="Cara", OwnerId=ana, Referral_Code__c="CARA-1")
    org.add(
        "Lead", "00Q", FirstName="Dan", LastName="O'Brien", Email="dan@x.test", Company="Acme", Status="Open",
        OwnerId=ana, Advocate__c=adv, NumberOfEmployees=50, AnnualRevenue=1000.5, IsConverted=False,
        CreatedDate="2026-11-23T09:00:00.000+0000", Follow_Up__c="2026-11-24",
    )  # fmt: skip
    org.add(
        "Lead", "00Q", FirstName="eve", LastName="Stone", Email="eve@x.test", Company="acme", Status="Working",
        OwnerId=queue, Advocate__c=None, NumberOfEmployees=5, AnnualRevenue=None, IsConverted=True,
        CreatedDate="2026-11-20T23:59:59.000+0000", Follow_Up__c=None,
    )  # fmt: skip
    org.add(
        "Lead", "00Q", FirstName=None, LastName="Zed 50%_off", Email=None, Company="Beta", Status="Open",
        OwnerId=bo, Advocate__c=None, NumberOfEmployees=None, AnnualRevenue=20.0, IsConverted=False,
        CreatedDate="2026-10-01T00:00:00.000+0000", Follow_Up__c="2026-11-23",
    )  # fmt: skip
    org.add("Reward__c", "a02", Status__c="Paid", Amount__c=50.0, Advocate__c=adv)
    org.add("Reward__c", "a02", Status__c="paid", Amount__c=25.5, Advocate__c=adv)
    org.add("Reward__c", "a02", Status__c="Pending Approval", Amount__c=10.0, Advocate__c=None)
    return org


def run(org: MemoryOrg, text: str, **kwargs: Any) -> SoqlResult:
    return execute(parse(text), org, now=NOW, **kwargs)


def last_names(org: MemoryOrg, where: str) -> list[str]:
    return [
        r["LastName"] for r in run(org, f"SELECT LastName FROM Lead WHERE {where} ORDER BY LastName").rows
    ]


def error_of(org: MemoryOrg, text: str) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        run(org, text)
    return info.value


def position(message: str) -> tuple[int, int]:
    m = re.search(r"ERROR at Row:(\d+):Column:(\d+)", message)
    assert m, message
    return int(m.group(1)), int(m.group(2))


# --- shape of results ------------------------------------------------------------------------------------


def test_rows_have_attributes_and_canonical_keys_in_select_order(org: MemoryOrg) -> None:
    """Field names are matched case-insensitively but returned in their canonical case, in SELECT order."""
    result = run(org, "select company, lastname, ID from lead where email = 'DAN@x.test'")
    (row,) = result.rows
    assert list(row) == ["attributes", "Company", "LastName", "Id"]
    assert row["attributes"] == {"type": "Lead"}
    assert row["LastName"] == "O'Brien"
    assert result.total_size == 1 and not result.is_count


def test_parent_fields_nest_under_the_relationship_with_the_real_type(org: MemoryOrg) -> None:
    """Owner is polymorphic: a queue owner reports type Group, a user owner type User; fields share one dict."""
    rows = run(
        org, "SELECT LastName, Owner.Name, Owner.IsActive, Owner.Type FROM Lead ORDER BY LastName"
    ).rows
    by_name = {r["LastName"]: r["Owner"] for r in rows}
    assert by_name["O'Brien"] == {
        "attributes": {"type": "User"},
        "Name": "Ana Ruiz",
        "IsActive": True,
        "Type": "User",
    }
    assert by_name["Stone"] == {
        "attributes": {"type": "Group"},
        "Name": "Inbound",
        "IsActive": None,
        "Type": "Queue",
    }
    assert by_name["Zed 50%_off"]["IsActive"] is False


def test_empty_lookup_gives_null_parent(org: MemoryOrg) -> None:
    rows = run(org, "SELECT LastName, Advocate__r.OwnerId, Advocate__r.Name FROM Lead ORDER BY LastName").rows
    assert rows[0]["Advocate__r"] == {"attributes": {"type": "Advocate__c"}, "OwnerId": org.rows["User"][0]["Id"],
                                      "Name": "Cara"}  # fmt: skip
    assert rows[1]["Advocate__r"] is None


def test_url_prefix_adds_record_urls_to_attributes(org: MemoryOrg) -> None:
    (row,) = run(
        org, "SELECT Id, Owner.Name FROM Lead WHERE LastName = 'Stone'", url_prefix="/services/data/v59.0"
    ).rows
    assert row["attributes"]["url"] == f"/services/data/v59.0/sobjects/Lead/{row['Id']}"
    assert row["Owner"]["attributes"]["url"].startswith("/services/data/v59.0/sobjects/Group/00G")


def test_parent_records_are_fetched_once_per_query(org: MemoryOrg) -> None:
    for _ in range(5):
        org.add("Lead", "00Q", LastName="Many", OwnerId=org.rows["User"][0]["Id"])
    run(org, "SELECT Owner.Name FROM Lead WHERE Owner.IsActive = true")
    assert org.gets <= 3  # one per distinct owner


def test_count_star_returns_no_rows_and_the_count(org: MemoryOrg) -> None:
    result = run(org, "SELECT COUNT() FROM Lead WHERE Status = 'open'")
    assert (result.rows, result.total_size, result.is_count) == ([], 2, True)
    assert run(org, "SELECT COUNT() FROM Lead LIMIT 1").total_size == 1


def test_query_all_includes_deleted_records(org: MemoryOrg) -> None:
    org.deleted.add(org.rows["Lead"][0]["Id"])
    assert run(org, "SELECT COUNT() FROM Lead").total_size == 2
    assert run(org, "SELECT COUNT() FROM Lead", include_deleted=True).total_size == 3


# --- schema errors ------------------------------------------------------------------------------------------


def test_unknown_object_is_invalid_type_with_salesforce_message(org: MemoryOrg) -> None:
    err = error_of(org, "SELECT Id FROM Foo")
    assert err.error_code == "INVALID_TYPE"
    assert err.message == (
        "\nSELECT Id FROM Foo\n               ^\nERROR at Row:1:Column:16\nsObject type 'Foo' is not supported. "
        "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "
        "Please reference your WSDL or the describe call for the appropriate names."
    )


def test_unknown_field_is_invalid_field_with_the_captured_message(org: MemoryOrg) -> None:
    """Byte for byte the message captured from Salesforce in the notes (Account there, Lead here)."""
    err = error_of(org, "SELECT Bacon__c FROM Lead LIMIT 2")
    assert err.error_code == "INVALID_FIELD"
    assert err.message == (
        "\nSELECT Bacon__c FROM Lead LIMIT 2\n       ^\nERROR at Row:1:Column:8\nNo such column 'Bacon__c' on entity "
        "'Lead'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
        "name. Please reference your WSDL or the describe call for the appropriate names."
    )


SCHEMA_ERRORS = [
    ("SELECT Id FROM Lead WHERE Nope__c = 1", "INVALID_FIELD", (1, 27), "No such column 'Nope__c' on entity 'Lead'"),
    ("SELECT Id FROM Lead ORDER BY Nope", "INVALID_FIELD", (1, 30), "No such column 'Nope' on entity 'Lead'"),
    ("SELECT Foo__r.Name FROM Lead", "INVALID_FIELD", (1, 8), "Didn't understand relationship 'Foo__r'"),
    ("SELECT Advocate__r.Bogus FROM Lead", "INVALID_FIELD", (1, 8), "No such column 'Bogus' on entity 'Advocate__c'"),
    ("SELECT Owner.Company FROM Lead", "INVALID_FIELD", (1, 8), "No such column 'Company' on entity 'Name'"),
    ("SELECT Id FROM Lead WHERE OwnerId = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", (1, 37), "invalid ID field: abc"),
    ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD", (1, 35),
     "value of filter criterion for field 'Email' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Lead WHERE IsConverted = 'true'", "INVALID_FIELD", (1, 41),
     "must be of type boolean and should not be enclosed in quotes"),
    ("SELECT Id FROM Lead WHERE CreatedDate > 2026-01-01", "INVALID_FIELD", (1, 41), "must be of type dateTime"),
    ("SELECT Id FROM Lead WHERE Follow_Up__c > 2026-01-01T00:00:00Z", "INVALID_FIELD", (1, 42), "type date"),
    ("SELECT Id FROM Lead WHERE NumberOfEmployees = '5'", "INVALID_FIELD", (1, 47), "must be of type integer"),
    ("SELECT Id FROM Lead WHERE NumberOfEmployees = TODAY", "INVALID_FIELD", (1, 47), "must be of type integer"),
    ("SELECT Id FROM Lead WHERE IsConverted LIKE 'x'", "INVALID_FIELD", (1, 44), "invalid operator"),
    ("SELECT Id, ID FROM Lead", "INVALID_FIELD", (1, 12), "duplicate field selected: Id"),
    ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", (1, 28), "Maximum SOQL offset allowed is 2000"),
    ("SELECT Status__c, Amount__c FROM Reward__c GROUP BY Status__c", "MALFORMED_QUERY", (1, 19),
     "Field must be grouped or aggregated: Amount__c"),
    ("SELECT SUM(Status__c) FROM Reward__c", "MALFORMED_QUERY", (1, 8),
     "field Status__c does not support aggregate operator SUM"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "code", "where", "detail"), SCHEMA_ERRORS)
def test_schema_errors_carry_code_position_and_words(
    org: MemoryOrg, text: str, code: str, where: tuple[int, int], detail: str
) -> None:
    err = error_of(org, text)
    assert err.error_code == code
    assert position(err.message) == where
    assert detail in err.message


# --- filters ------------------------------------------------------------------------------------------------

FILTERS = [
    ("LastName = 'o\\'brien'", ["O'Brien"]),
    ("Company = 'ACME'", ["O'Brien", "Stone"]),
    ("Company != 'acme'", ["Zed 50%_off"]),
    ("Company <> 'acme'", ["Zed 50%_off"]),
    ("Email = null", ["Zed 50%_off"]),
    ("Email != null", ["O'Brien", "Stone"]),
    ("FirstName != 'Dan'", ["Stone", "Zed 50%_off"]),  # nulls are values in SOQL
    ("FirstName = ''", ["Zed 50%_off"]),
    ("Status IN ('open', 'Closed')", ["O'Brien", "Zed 50%_off"]),
    ("Status NOT IN ('open')", ["Stone"]),
    ("FirstName IN ('dan', null)", ["O'Brien", "Zed 50%_off"]),
    ("LastName LIKE 'o%'", ["O'Brien"]),
    ("LastName LIKE '_TONE'", ["Stone"]),
    ("LastName LIKE '%50\\%\\_%'", ["Zed 50%_off"]),
    ("LastName LIKE '%\\_'", []),
    ("Email LIKE '%@X.TEST'", ["O'Brien", "Stone"]),
    ("NumberOfEmployees > 5", ["O'Brien"]),
    ("NumberOfEmployees >= 5", ["O'Brien", "Stone"]),
    ("NumberOfEmployees < 50", ["Stone"]),
    ("NumberOfEmployees <= 50.0", ["O'Brien", "Stone"]),
    ("AnnualRevenue = 1000.5", ["O'Brien"]),
    ("AnnualRevenue IN (20, 1000.5)", ["O'Brien", "Zed 50%_off"]),
    ("IsConverted = TRUE", ["Stone"]),
    ("IsConverted = false", ["O'Brien", "Zed 50%_off"]),
    ("NOT IsConverted = false", ["Stone"]),
    ("CreatedDate > 2026-11-20T23:59:59Z", ["O'Brien"]),
    ("CreatedDate >= 2026-11-20T23:59:59Z", ["O'Brien", "Stone"]),
    ("CreatedDate < 2026-11-21T01:00:00+01:00", ["Stone", "Zed 50%_off"]),
    ("CreatedDate < 2026-11-21T00:59:59+01:00", ["Zed 50%_off"]),
    ("CreatedDate = 2026-11-23T10:00:00.000+01:00", ["O'Brien"]),
    ("Follow_Up__c = 2026-11-24", ["O'Brien"]),
    ("Follow_Up__c < 2026-11-24", ["Zed 50%_off"]),
    ("CreatedDate = TODAY", ["O'Brien"]),
    ("CreatedDate < TODAY", ["Stone", "Zed 50%_off"]),
    ("CreatedDate = LAST_N_DAYS:3", ["O'Brien", "Stone"]),
    ("CreatedDate = LAST_N_DAYS:2", ["O'Brien"]),
    ("CreatedDate = LAST_WEEK", ["Stone"]),
    ("CreatedDate = THIS_MONTH", ["O'Brien", "Stone"]),
    ("CreatedDate = LAST_MONTH", ["Zed 50%_off"]),
    ("Follow_Up__c = TOMORROW", ["O'Brien"]),
    ("Follow_Up__c > TODAY", ["O'Brien"]),
    ("Follow_Up__c <= TODAY", ["Zed 50%_off"]),
    ("Follow_Up__c IN (TODAY, TOMORROW)", ["O'Brien", "Zed 50%_off"]),
    ("Follow_Up__c = NEXT_N_DAYS:1", ["O'Brien"]),
    ("(Status = 'Working' OR NumberOfEmployees = 50) AND NOT Company = 'beta'", ["O'Brien", "Stone"]),
    ("Status = 'Open' AND (Email = null OR Email LIKE 'dan%')", ["O'Brien", "Zed 50%_off"]),
    ("Owner.IsActive = true", ["O'Brien"]),
    ("Owner.Type = 'Queue'", ["Stone"]),
    ("Advocate__r.Referral_Code__c = 'cara-1'", ["O'Brien"]),
    ("Advocate__r.Name = null", ["Stone", "Zed 50%_off"]),
]


@pytest.mark.parametrize(("where", "expected"), FILTERS)
def test_where_clause_selects_the_salesforce_rows(org: MemoryOrg, where: str, expected: list[str]) -> None:
    assert last_names(org, where) == expected


def test_id_filters_accept_15_and_18_character_ids(org: MemoryOrg) -> None:
    owner18 = org.rows["User"][0]["Id"]
    assert last_names(org, f"OwnerId = '{owner18}'") == ["O'Brien"]
    assert last_names(org, f"OwnerId = '{owner18[:15]}'") == ["O'Brien"]
    assert last_names(org, f"OwnerId IN ('{owner18[:15]}', '{org.rows['Group'][0]['Id']}')") == [
        "O'Brien",
        "Stone",
    ]
    lead = org.rows["Lead"][2]["Id"]
    assert last_names(org, f"Id != '{lead[:15]}'") == ["O'Brien", "Stone"]


# --- ordering and paging ------------------------------------------------------------------------------------


def test_order_by_puts_nulls_first_ascending_and_last_descending(org: MemoryOrg) -> None:
    asc = [r["FirstName"] for r in run(org, "SELECT FirstName FROM Lead ORDER BY FirstName").rows]
    desc = [r["FirstName"] for r in run(org, "SELECT FirstName FROM Lead ORDER BY FirstName DESC").rows]
    assert asc == [None, "Dan", "eve"]  # text orders case-insensitively
    assert desc == ["eve", "Dan", None]
    last = [
        r["FirstName"] for r in run(org, "SELECT FirstName FROM Lead ORDER BY FirstName ASC NULLS LAST").rows
    ]
    assert last == ["Dan", "eve", None]
    first = run(org, "SELECT FirstName FROM Lead ORDER BY FirstName DESC NULLS FIRST").rows
    assert [r["FirstName"] for r in first] == [None, "eve", "Dan"]


def test_order_by_several_keys_with_mixed_directions(org: MemoryOrg) -> None:
    rows = run(org, "SELECT LastName FROM Lead ORDER BY Status DESC, NumberOfEmployees ASC NULLS LAST").rows
    assert [r["LastName"] for r in rows] == ["Stone", "O'Brien", "Zed 50%_off"]


def test_order_by_parent_field(org: MemoryOrg) -> None:
    rows = run(org, "SELECT LastName FROM Lead ORDER BY Owner.Name DESC").rows
    assert [r["LastName"] for r in rows] == ["Stone", "Zed 50%_off", "O'Brien"]


def test_limit_and_offset_page_after_ordering(org: MemoryOrg) -> None:
    result = run(org, "SELECT LastName FROM Lead ORDER BY LastName LIMIT 1 OFFSET 1")
    assert [r["LastName"] for r in result.rows] == ["Stone"]
    assert result.total_size == 1
    assert run(org, "SELECT Id FROM Lead LIMIT 0").rows == []
    assert len(run(org, "SELECT Id FROM Lead LIMIT 2").rows) == 2
    assert run(org, "SELECT Id FROM Lead OFFSET 2000").rows == []


# --- aggregates ---------------------------------------------------------------------------------------------


def test_group_by_counts_and_sums_with_expr_names_and_aliases(org: MemoryOrg) -> None:
    """Text groups fold case like Salesforce; unaliased aggregates are expr0, expr1..."""
    rows = run(org, "SELECT Status__c, COUNT(Id), SUM(Amount__c) total FROM Reward__c GROUP BY Status__c "
                    "ORDER BY Status__c").rows  # fmt: skip
    assert rows == [
        {"attributes": {"type": "AggregateResult"}, "Status__c": "Paid", "expr0": 2, "total": 75.5},
        {
            "attributes": {"type": "AggregateResult"},
            "Status__c": "Pending Approval",
            "expr0": 1,
            "total": 10.0,
        },
    ]


def test_aggregate_without_group_by_returns_one_row_even_when_nothing_matches(org: MemoryOrg) -> None:
    rows = run(org, "SELECT COUNT(Id), SUM(Amount__c), MAX(Amount__c), MIN(Status__c), AVG(Amount__c) "
                    "FROM Reward__c WHERE Status__c = 'none'").rows  # fmt: skip
    assert rows == [{"attributes": {"type": "AggregateResult"}, "expr0": 0, "expr1": None, "expr2": None,
                     "expr3": None, "expr4": None}]  # fmt: skip
    (row,) = run(
        org, "SELECT COUNT(Advocate__c), COUNT_DISTINCT(Status__c), AVG(Amount__c) FROM Reward__c"
    ).rows
    assert (row["expr0"], row["expr1"], row["expr2"]) == (2, 2, pytest.approx(85.5 / 3))


def test_having_and_order_by_aggregate(org: MemoryOrg) -> None:
    rows = run(org, "SELECT Status__c s, COUNT(Id) FROM Reward__c GROUP BY Status__c HAVING COUNT(Id) > 1")
    assert [r["s"] for r in rows.rows] == ["Paid"]  # a grouped field's alias names its column
    rows = run(
        org, "SELECT Status__c, SUM(Amount__c) FROM Reward__c GROUP BY Status__c ORDER BY SUM(Amount__c)"
    )
    assert [r["expr0"] for r in rows.rows] == [10.0, 75.5]


def test_group_by_parent_field_uses_the_field_name_as_key(org: MemoryOrg) -> None:
    rows = run(org, "SELECT Owner.Type, COUNT(Id) FROM Lead GROUP BY Owner.Type ORDER BY Owner.Type").rows
    assert [(r["Type"], r["expr0"]) for r in rows] == [("Queue", 1), ("User", 2)]


# --- performance --------------------------------------------------------------------------------------------


def test_equality_filter_over_100k_records_is_fast() -> None:
    """The benchmark case: SELECT Id FROM Lead WHERE Email = 'x' over 100,000 leads, well under 100 ms."""
    org = MemoryOrg()
    org.rows["Lead"] = [
        {"Id": f"00Q5g{i:010d}AAA", "Email": f"lead{i}@x.test", "LastName": f"L{i}", "Status": "Open"}
        for i in range(100_000)
    ]
    query = parse("SELECT Id FROM Lead WHERE Email = 'LEAD77777@x.test'")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        result = execute(query, org, now=NOW)
        best = min(best, time.perf_counter() - started)
    assert result.total_size == 1
    assert best < 0.1, f"{best * 1000:.1f} ms"


def test_compile_where_matches_single_records_like_execute(org: MemoryOrg) -> None:
    """PushTopic matching uses the same predicate as queries: case-insensitive text, 15-char ids, parents."""
    owner15 = org.rows["User"][0]["Id"][:15]
    query = parse(
        f"SELECT Id FROM Lead WHERE Company = 'ACME' AND OwnerId = '{owner15}' AND Owner.IsActive = true"
    )
    matches = compile_where(query, org, now=NOW)
    assert [matches(r) for r in org.rows["Lead"]] == [True, False, False]
    assert [r["Id"] for r in org.rows["Lead"] if matches(r)] == [r["Id"] for r in run(org, query.text).rows]
    with pytest.raises(SoqlError):
        compile_where(parse("SELECT Id FROM Lead WHERE Nope = 1"), org, now=NOW)
