"""SOQL text -> `Query`: syntax only (the lark grammar in soql.lark), errors in Salesforce's words.

Schema checks (does the object or field exist, does a value suit the field type) belong to the executor.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import lark
from lark import Token, Tree

from sfemulator.soql import dates
from sfemulator.soql.errors import Position, SoqlError, malformed, unexpected, unsupported
from sfemulator.soql.literals import EscapeError, LikePattern, decode_string, parse_date, parse_datetime
from sfemulator.soql.query import (
    Aggregate,
    And,
    Comparison,
    Condition,
    FieldPath,
    Not,
    Or,
    OrderItem,
    Query,
    RelativeDate,
    SelectItem,
    Value,
)

# SOQL reserved words can never be names (the SOQL guide's list). GROUP is left out because Salesforce
# itself accepts `FROM Group`; NULL, TRUE and FALSE are classified where values are read.
_RESERVED = frozenset(
    [
        "AND",
        "ASC",
        "DESC",
        "EXCLUDES",
        "FIRST",
        "FROM",
        "HAVING",
        "IN",
        "INCLUDES",
        "LAST",
        "LIKE",
        "LIMIT",
        "NOT",
        "NULLS",
        "OR",
        "SELECT",
        "WHERE",
        "WITH",
    ]
)
AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
# Salesforce refuses longer statements with MALFORMED_QUERY (SOQL and SOSL limits: "By default, 100,000
# characters"; message as captured in django-salesforce#164 and IlluminatedCloud#466).
MAX_LENGTH = 100_000
TOO_LONG = f"SOQL statements can not be longer than {MAX_LENGTH} characters."
# How deeply AND / OR / NOT may nest. Salesforce documents no figure; deeper filters are refused as
# QUERY_TOO_COMPLICATED [UNCONFIRMED threshold], which keeps every later pass over the condition (building,
# compiling, evaluating: one or two stack frames a level) far from Python's recursion limit.
MAX_CONDITION_DEPTH = 100
TOO_COMPLICATED = "Query is either selecting too many fields or the filter conditions are too complicated."
# LIMIT, OFFSET and the n of a date literal are Java ints in Salesforce.
MAX_INT = 2**31 - 1
# Functions real SOQL has and the emulator does not evaluate: named in the error instead of "unknown".
_OTHER_FUNCTIONS = frozenset(
    [
        "TOLABEL",
        "FORMAT",
        "CONVERTCURRENCY",
        "CONVERTTIMEZONE",
        "CALENDAR_MONTH",
        "CALENDAR_QUARTER",
        "CALENDAR_YEAR",
        "DAY_IN_MONTH",
        "DAY_IN_WEEK",
        "DAY_IN_YEAR",
        "DAY_ONLY",
        "FISCAL_MONTH",
        "FISCAL_QUARTER",
        "FISCAL_YEAR",
        "HOUR_IN_DAY",
        "WEEK_IN_MONTH",
        "WEEK_IN_YEAR",
        "GROUPING",
        "ROLLUP",
        "CUBE",
        "DISTANCE",
        "GEOLOCATION",
        "FIELDS",
    ]
)
_UNSUPPORTED_PATTERNS = (
    (re.compile(r"\(\s*(select)\b", re.IGNORECASE), "a subquery"),
    (re.compile(r"\b(typeof)\b", re.IGNORECASE), "TYPEOF"),
)


def _reserved_word(token: Token) -> Token:
    """Lexer hook: a reserved word is never a NAME, so `SELECT Id, From Lead` fails at 'From'."""
    upper = token.value.upper()
    if upper in _RESERVED:
        token.type = upper
    return token


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("sfemulator.soql").joinpath("soql.lark").read_text(encoding="utf-8")
    return lark.Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=True,
        lexer_callbacks={"NAME": _reserved_word},
    )


def parse(text: str) -> Query:
    """Parse a SOQL query; raises SoqlError(MALFORMED_QUERY) with Salesforce's caret block.

    SoqlError is the only exception it raises, whatever the text.
    """
    if len(text) > MAX_LENGTH:
        raise SoqlError("MALFORMED_QUERY", TOO_LONG)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    return _Builder(text).query(tree)


def _end_position(text: str) -> Position:
    lines = text.split("\n")
    return Position(len(lines), len(lines[-1]) + 1)


def _syntax_error(text: str, exc: lark.exceptions.UnexpectedInput) -> SoqlError:
    if isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type != "$END":
        token = _misread_alias(text, exc) or exc.token
        pos = Position(token.line or 1, token.column or 1)
        detail = f"unexpected token: '{token.value}'"
    elif isinstance(exc, lark.exceptions.UnexpectedCharacters):
        pos = Position(exc.line, exc.column)
        char = text[exc.pos_in_stream or 0]
        if char == "'":
            # An unterminated string: the lexer found no closing quote before the end of the query.
            detail = f"line {exc.line}:{exc.column - 1} mismatched character '<EOF>' expecting '''"
        else:
            detail = f"line {exc.line}:{exc.column - 1} no viable alternative at character '{char}'"
    else:
        pos = _end_position(text)
        detail = "unexpected token: '<EOF>'"
    error_offset = _offset(text, pos)
    for pattern, feature in _UNSUPPORTED_PATTERNS:
        match = pattern.search(text)
        if match and match.start() <= error_offset:
            at = _position(text, match.start(1))
            return unsupported(text, at, match.group(1), feature)
    return malformed(text, pos, detail)


def _misread_alias(text: str, exc: lark.exceptions.UnexpectedToken) -> Token | None:
    """In `SELECT Id FRM Lead` the grammar reads FRM as an alias and fails at Lead; Salesforce blames FRM."""
    # The history holds None before the first token (a misspelt SELECT fails at the first word).
    history = [t for t in exc.token_history or [] if t is not None]
    if not history or history[-1].type != "NAME" or history[-1].start_pos is None:
        return None
    alias = history[-1]
    before = text[: alias.start_pos]
    in_select = re.search(r"\bfrom\b", before, re.IGNORECASE) is None
    follows_item = bool(re.search(r"[A-Za-z0-9_)]\s+$", before))
    return alias if in_select and follows_item else None


def _offset(text: str, pos: Position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: pos.line - 1]) + pos.column - 1


def _position(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n") + 1
    return Position(line, offset - (before.rfind("\n") + 1) + 1)


def _pos(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


def _first_token(node: Tree[Token] | Token) -> Token:
    if isinstance(node, Token):
        return node
    for child in node.children:
        if child is not None:
            return _first_token(child)
    raise AssertionError("empty parse tree")  # the grammar has no empty rules


def _trees(node: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in node.children if isinstance(c, Tree)]


def _condition_depth(tree: Tree[Token]) -> int:
    """How deeply AND / OR / NOT nest in a condition, counted without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if node.data in ("and_", "or_", "not_"):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in _trees(node))
    return deepest


def _java_int(text: str) -> int | None:
    """The value of an unsigned integer literal that fits a Java int, else None."""
    if not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= MAX_INT else None


class _Builder:
    """Turns lark's tree into `Query`, raising Salesforce-shaped errors for what the grammar lets through."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.alias: str | None = None

    def fail(self, node: Tree[Token] | Token, detail: str | None = None) -> SoqlError:
        token = _first_token(node)
        if detail is None:
            return unexpected(self.text, _pos(token), token.value)
        return malformed(self.text, _pos(token), detail)

    def refuse(self, node: Tree[Token] | Token, feature: str) -> SoqlError:
        token = _first_token(node)
        return unsupported(self.text, _pos(token), token.value, feature)

    def query(self, tree: Tree[Token]) -> Query:
        clauses = {c.data: c for c in _trees(tree)}
        for name, feature in (
            ("with_clause", "WITH"),
            ("for_clause", "FOR"),
        ):
            if name in clauses:
                raise self.refuse(clauses[name], f"a {feature} clause")
        for name in ("where_clause", "having_clause"):
            if name in clauses and _condition_depth(_trees(clauses[name])[0]) > MAX_CONDITION_DEPTH:
                raise SoqlError("QUERY_TOO_COMPLICATED", TOO_COMPLICATED)
        sobject, sobject_pos = self.from_clause(clauses["from_clause"])
        select, count_only = self.select_clause(clauses["select_clause"])
        where = (
            self.condition(_trees(clauses["where_clause"])[0], False) if "where_clause" in clauses else None
        )
        having = (
            self.condition(_trees(clauses["having_clause"])[0], True) if "having_clause" in clauses else None
        )
        group_by = self.group_clause(clauses["group_clause"]) if "group_clause" in clauses else ()
        order_by = self.order_clause(clauses["order_clause"]) if "order_clause" in clauses else ()
        limit = self.count_clause(clauses["limit_clause"]) if "limit_clause" in clauses else None
        offset, offset_pos = None, None
        if "offset_clause" in clauses:
            offset = self.count_clause(clauses["offset_clause"])
            offset_pos = _pos(_first_token(clauses["offset_clause"].children[1]))
        if count_only and group_by:
            raise self.fail(clauses["group_clause"])
        if having is not None and not group_by:
            raise self.fail(clauses["having_clause"], "HAVING clause requires a GROUP BY clause")
        return Query(
            text=self.text,
            select=select,
            count_only=count_only,
            sobject=sobject,
            sobject_pos=sobject_pos,
            where=where,
            group_by=group_by,
            having=having,
            order_by=order_by,
            limit=limit,
            offset=offset,
            offset_pos=offset_pos,
        )

    # --- SELECT / FROM ---------------------------------------------------------------------------------

    def from_clause(self, tree: Tree[Token]) -> tuple[str, Position]:
        _, name, alias, *rest = tree.children
        if rest:
            raise self.refuse(rest[0], "USING SCOPE")
        assert isinstance(name, Token)
        if isinstance(alias, Token):
            self.alias = alias.value.lower()
        return name.value, _pos(name)

    def select_clause(self, tree: Tree[Token]) -> tuple[tuple[SelectItem, ...], bool]:
        items: list[SelectItem] = []
        count_only = False
        nodes = _trees(_trees(tree)[0])
        for node in nodes:
            if node.data == "select_field":
                path_tree, alias_tree = node.children
                assert isinstance(path_tree, Tree)
                path = self.field_path(path_tree)
                if isinstance(alias_tree, Tree):
                    token = _first_token(alias_tree)
                    path = FieldPath(path.parts, path.pos, token.value, _pos(token))
                items.append(path)
                continue
            call, alias_tree = node.children
            assert isinstance(call, Tree)
            agg = self.call(call, allow_count_star=True)
            if agg.field is None:
                if len(nodes) > 1:
                    raise self.fail(call)
                if alias_tree is not None:
                    raise self.fail(alias_tree)
                count_only = True
                continue
            if isinstance(alias_tree, Tree):
                alias_token = alias_tree.children[0]
                assert isinstance(alias_token, Token)
                agg = Aggregate(agg.function, agg.field, agg.pos, alias_token.value)
            items.append(agg)
        return tuple(items), count_only

    def field_path(self, tree: Tree[Token]) -> FieldPath:
        tokens = [t for t in tree.children if isinstance(t, Token)]
        parts = [t.value for t in tokens]
        if self.alias is not None and len(parts) > 1 and parts[0].lower() == self.alias:
            tokens, parts = tokens[1:], parts[1:]
        if len(parts) > 2:
            raise self.refuse(tokens[2], "a relationship path deeper than one level")
        return FieldPath(tuple(parts), _pos(tokens[0]))

    def call(self, tree: Tree[Token], *, allow_count_star: bool = False) -> Aggregate:
        name_token, args = tree.children
        assert isinstance(name_token, Token)
        function = name_token.value.upper()
        if function not in AGGREGATES:
            if function in _OTHER_FUNCTIONS:
                raise self.refuse(name_token, f"the {function} function")
            raise self.fail(name_token, f"Unknown function: {name_token.value}")
        if args is None:
            if function != "COUNT" or not allow_count_star:
                raise self.fail(name_token)
            return Aggregate(function, None, _pos(name_token))
        assert isinstance(args, Tree)
        inner = _trees(args)[0]
        if inner.data != "field_path":
            raise self.refuse(inner, "a function inside an aggregate")
        return Aggregate(function, self.field_path(inner), _pos(name_token))

    # --- WHERE / HAVING -------------------------------------------------------------------------------

    def condition(self, tree: Tree[Token], in_having: bool) -> Condition:
        if tree.data == "and_":
            return And(tuple(self.condition(c, in_having) for c in _trees(tree)))
        if tree.data == "or_":
            return Or(tuple(self.condition(c, in_having) for c in _trees(tree)))
        if tree.data == "not_":
            return Not(self.condition(_trees(tree)[0], in_having))
        if tree.data == "includes":
            raise self.refuse(tree.children[1], "INCLUDES/EXCLUDES")
        operand_tree = _trees(tree)[0]
        operand: FieldPath | Aggregate
        if operand_tree.data == "call":
            operand = self.call(operand_tree)
            if not in_having:
                raise self.fail(operand_tree, "Aggregate functions are only allowed in the HAVING clause")
        else:
            operand = self.field_path(operand_tree)
        pos = operand.pos
        if tree.data == "compare":
            op_token, value_tree = tree.children[1], tree.children[2]
            assert isinstance(op_token, Token) and isinstance(value_tree, Tree)
            op = "!=" if op_token.value == "<>" else op_token.value
            return Comparison(operand, op, self.value(value_tree), pos)
        if tree.data == "like":
            value_tree = tree.children[2]
            assert isinstance(value_tree, Tree)
            if value_tree.data != "string":
                raise self.fail(value_tree)
            return Comparison(operand, "LIKE", self.like_value(value_tree), pos)
        value_list = _trees(tree)[-1]
        values = tuple(self.value(v) for v in _trees(value_list))
        return Comparison(operand, "IN" if tree.data == "in_" else "NOT IN", values, pos)

    def value(self, tree: Tree[Token]) -> Value:
        token = tree.children[0]
        assert isinstance(token, Token)
        pos, raw = _pos(token), token.value
        kind = tree.data
        if kind == "string":
            return Value("string", self.decode(token), pos, raw)
        if kind == "number":
            # A literal too long for an exact int is compared as a float (inf beyond the double range).
            digits = len(raw.lstrip("+-"))
            number: int | float = float(raw) if "." in raw or digits > 18 else int(raw)
            return Value("number", number, pos, raw)
        if kind == "date":
            try:
                return Value("date", parse_date(raw), pos, raw)
            except ValueError:
                raise self.fail(token) from None
        if kind == "datetime":
            try:
                return Value("datetime", parse_datetime(raw), pos, raw)
            except ValueError:
                raise self.fail(token) from None
        return self.bareword(tree)

    def bareword(self, tree: Tree[Token]) -> Value:
        name_token, n_token = tree.children
        assert isinstance(name_token, Token)
        pos, upper = _pos(name_token), name_token.value.upper()
        if n_token is None:
            if upper == "NULL":
                return Value("null", None, pos, name_token.value)
            if upper in ("TRUE", "FALSE"):
                return Value("boolean", upper == "TRUE", pos, name_token.value)
            if upper in dates.FIXED:
                return Value("date_literal", RelativeDate(upper), pos, name_token.value)
        elif upper in dates.WITH_N:
            assert isinstance(n_token, Token)
            n = _java_int(n_token.value)
            if n is None:
                raise self.fail(n_token)
            text = f"{name_token.value}:{n_token.value}"
            return Value("date_literal", RelativeDate(upper, n), pos, text)
        if upper.startswith(dates.FISCAL_PREFIXES):
            raise self.refuse(name_token, "a fiscal date literal")
        raise self.fail(name_token)

    def like_value(self, tree: Tree[Token]) -> Value:
        token = tree.children[0]
        assert isinstance(token, Token)
        try:
            pattern = LikePattern(token.value[1:-1])
        except EscapeError as exc:
            raise self.escape_error(token, exc) from None
        return Value("like", pattern, _pos(token), token.value)

    def decode(self, token: Token) -> str:
        try:
            return decode_string(token.value[1:-1])
        except EscapeError as exc:
            raise self.escape_error(token, exc) from None

    def escape_error(self, token: Token, exc: EscapeError) -> SoqlError:
        # [UNCONFIRMED] wording; the caret points at the literal, as Salesforce's lexer reports it.
        detail = (
            f"Invalid string literal {token.value}. "
            f"Illegal character sequence '{exc.sequence}' in string literal."
        )
        return malformed(self.text, _pos(token), detail)

    # --- GROUP BY / ORDER BY / LIMIT / OFFSET ---------------------------------------------------------

    def group_clause(self, tree: Tree[Token]) -> tuple[FieldPath, ...]:
        items = []
        for node in _trees(tree):
            if node.data == "call":
                name = node.children[0]
                assert isinstance(name, Token)
                raise self.refuse(name, f"GROUP BY {name.value.upper()}")
            items.append(self.field_path(node))
        return tuple(items)

    def order_clause(self, tree: Tree[Token]) -> tuple[OrderItem, ...]:
        items = []
        for node in _trees(tree):
            key_tree = _trees(node)[0]
            key = self.call(key_tree) if key_tree.data == "call" else self.field_path(key_tree)
            words = {t.type for t in node.children if isinstance(t, Token)}
            descending = "DESC" in words
            nulls_first = "FIRST" in words if "NULLS" in words else not descending
            items.append(OrderItem(key, descending, nulls_first))
        return tuple(items)

    def count_clause(self, tree: Tree[Token]) -> int:
        token = tree.children[1]
        assert isinstance(token, Token)
        value = _java_int(token.value)
        if value is None:
            raise self.fail(token)
        return value


def literal_values(condition: Condition | None) -> list[Any]:
    """Every literal in a condition, in order (used by tests and by the query log)."""
    out: list[Any] = []
    stack: list[Condition] = [condition] if condition is not None else []
    while stack:
        node = stack.pop(0)
        if isinstance(node, Comparison):
            out.extend(v.value for v in (node.value if isinstance(node.value, tuple) else (node.value,)))
        elif isinstance(node, Not):
            stack.insert(0, node.item)
        else:
            stack[:0] = list(node.items)
    return out
