"""SOQL for the emulator: a parser (lark grammar) and an executor over a `RecordSource`. No network code.

    query = parse("SELECT Id, Owner.IsActive FROM Lead WHERE Email = 'a@b.c'")   # syntax only
    result = execute(query, store)                                                 # schema checks + rows

Both raise `SoqlError` with Salesforce's errorCode and caret-block message.
"""

from sfemulator.soql.errors import SoqlError
from sfemulator.soql.executor import SoqlResult, compile_where, execute
from sfemulator.soql.parser import parse
from sfemulator.soql.query import Query
from sfemulator.soql.source import FieldInfo, ObjectInfo, RecordSource

__all__ = [
    "FieldInfo",
    "ObjectInfo",
    "Query",
    "RecordSource",
    "SoqlError",
    "SoqlResult",
    "compile_where",
    "execute",
    "parse",
]
