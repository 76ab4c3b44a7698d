"""SOQL errors as Salesforce reports them.

Every error carries Salesforce's errorCode and a message in Salesforce's caret-block format::

    \\nSELECT Bacon__c FROM Account LIMIT 2\\n       ^\\nERROR at Row:1:Column:8\\nNo such column ...

The REST layer turns a `SoqlError` into HTTP 400 `[{"message": ..., "errorCode": ...}]`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """1-based row and column of a token in the query text, as Salesforce counts them."""

    line: int
    column: int


class SoqlError(Exception):
    """A query Salesforce would refuse; `error_code` and `message` are what the API returns."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def caret_block(text: str, pos: Position, detail: str) -> str:
    """Salesforce's message layout: the offending row, a caret under the column, then the detail."""
    lines = text.split("\n")
    row = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    caret = " " * (pos.column - 1) + "^"
    return f"\n{row}\n{caret}\nERROR at Row:{pos.line}:Column:{pos.column}\n{detail}"


def soql_error(error_code: str, text: str, pos: Position, detail: str) -> SoqlError:
    """A `SoqlError` whose message points at `pos` in `text`."""
    return SoqlError(error_code, caret_block(text, pos, detail))


def malformed(text: str, pos: Position, detail: str) -> SoqlError:
    return soql_error("MALFORMED_QUERY", text, pos, detail)


def unexpected(text: str, pos: Position, token: str) -> SoqlError:
    return malformed(text, pos, f"unexpected token: '{token}'")


def unsupported(text: str, pos: Position, token: str, feature: str) -> SoqlError:
    """Valid SOQL the emulator does not answer: Salesforce's shape, plus a plain reason."""
    return malformed(text, pos, f"unexpected token: '{token}' ({feature} is not supported by the emulator)")
