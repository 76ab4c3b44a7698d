"""Second pass of loading: check names against the known Salesforce fields, compile rules, freeze.

The first pass (`_sections`) made sure every value has the right shape; this one knows what the values mean:
objects and fields exist (with a did-you-mean), picklist values are real, regexes compile, rule sections owned
by other modules compile. Every problem is collected with its position; nothing is frozen unless none was found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from sfconnector.config._spec import Ctx, did_you_mean
from sfconnector.config._yaml import LList, LMap, Loc
from sfconnector.mapping.catalog import NUMERIC_TYPES, TEMPORAL_TYPES, FieldCatalog, FieldInfo
from sfconnector.mapping.model import (
    LOGICAL_OBJECTS,
    AdvocateFields,
    CodePolicy,
    LeadFields,
    ReferralFields,
    RewardFields,
    SchemaMapping,
)
from sfconnector.rules.conditions import OPS, AllOf, AnyOf, Compare, Condition, Not
from sfconnector.rules.model import RoutingAction, RoutingFallbacks, RoutingRule, RoutingRules

# ------------------------------------------------------------------------------------------------ mapping


def _field_problem(ctx: Ctx, loc: Loc, catalog: FieldCatalog, obj: str, name: str) -> None:
    hint = did_you_mean(name, catalog.field_names(obj)) or f"declare it under mapping.additional_fields.{obj}"
    ctx.add(loc, f"{obj} has no field '{name}'", hint)


def compile_mapping(section: LMap | None, ctx: Ctx, catalog: FieldCatalog) -> SchemaMapping:
    """The mapping with canonical API names; unknown objects and fields are problems.

    `section` may be partial (entries with shape problems are INVALID or absent): those are skipped.
    """
    if section is None:
        return SchemaMapping()
    built: dict[str, Any] = {}
    for logical, cls in LOGICAL_OBJECTS.items():
        built[logical] = cls()
        part = section.get(logical)
        if not isinstance(part, LMap):
            continue
        object_name = part.get("object", built[logical].object)
        if not isinstance(object_name, str):
            continue
        obj = catalog.object_name(object_name)
        if obj is None:
            ctx.add(
                part.loc_of("object"),
                f"unknown Salesforce object '{object_name}'",
                did_you_mean(object_name, catalog.objects)
                or "objects come from salesforce/ and the standard ones",
            )
            continue
        values: dict[str, str] = {"object": obj}
        for key, name in part.items():
            if key == "object" or not isinstance(name, str):
                continue
            info = catalog.field(obj, name)
            if info is None:
                _field_problem(ctx, part.loc_of(key), catalog, obj, name)
            else:
                values[key] = info.name
        built[logical] = cls(**values)
    policy = section.get("referral_code")
    code = CodePolicy()
    if isinstance(policy, LMap) and all(isinstance(v, str | bool) for v in policy.values()):
        code = CodePolicy(**policy)
    advocate = cast(AdvocateFields, built["advocate"])
    for logical, field_name in (("advocate", advocate.referral_code), ("lead", built["lead"].referral_code)):
        info = catalog.field(built[logical].object, field_name)
        if info is not None and info.type not in ("string", "textarea"):
            part = section.get(logical)
            loc = part.loc_of("referral_code") if isinstance(part, LMap) else section.loc
            ctx.add(loc, f"the referral code field {info.object}.{info.name} must be text, not {info.type}")
    active = section.get("active_advocate_status", SchemaMapping().active_advocate_status)
    active = active if isinstance(active, str) else SchemaMapping().active_advocate_status
    status = catalog.field(advocate.object, advocate.status)
    if status is not None and status.picklist_values and active not in status.picklist_values:
        ctx.add(
            section.loc_of("active_advocate_status"),
            f"'{active}' is not a value of {status.object}.{status.name}",
            did_you_mean(active, status.picklist_values) or "values: " + ", ".join(status.picklist_values),
        )
    extra = section.get("additional_fields")
    declared = {
        obj: tuple(n for n in names if isinstance(n, str))
        for obj, names in (extra.items() if isinstance(extra, LMap) else ())
        if isinstance(names, list)
    }
    return SchemaMapping(
        advocate=advocate,
        lead=cast(LeadFields, built["lead"]),
        referral=cast(ReferralFields, built["referral"]),
        reward=cast(RewardFields, built["reward"]),
        referral_code=code,
        active_advocate_status=active,
        additional_fields=MappingProxyType(declared),
    )


# ------------------------------------------------------------------------------------------------ conditions

_SCALARS = (str, int, float, bool, date, type(None))
# What people coming from other rule languages type, and what they mean here.
_OPERATOR_ALIASES = {
    "gte": "ge",
    ">=": "ge",
    "lte": "le",
    "<=": "le",
    ">": "gt",
    "<": "lt",
    "eq": "equals",
    "==": "equals",
    "=": "equals",
    "ne": "not_equals",
    "neq": "not_equals",
    "!=": "not_equals",
    "regex": "matches",
    "like": "matches",
    "one_of": "in",
    "is_set": "exists",
}


class _ConditionCompiler:
    def __init__(self, ctx: Ctx, catalog: FieldCatalog, mapping: SchemaMapping) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.mapping = mapping

    def subject(self, key: str, loc: Loc) -> tuple[str, FieldInfo | None] | None:
        if key == "channel":
            return "channel", self.catalog.field(self.mapping.lead.object, self.mapping.lead.channel)
        scope, dot, name = key.partition(".")
        if not dot or scope not in ("lead", "advocate") or not name:
            hint = (
                did_you_mean(key, ("channel", "all", "any", "not"))
                or "write channel, lead.<Field> or advocate.<Field>"
            )
            if dot and scope.lower() in ("lead", "advocate"):
                hint = f"write {scope.lower()}.{name}"
            self.ctx.add(loc, f"unknown condition subject '{key}'", hint)
            return None
        obj = self.mapping.lead.object if scope == "lead" else self.mapping.advocate.object
        info = self.catalog.field(obj, name)
        if info is None:
            _field_problem(self.ctx, loc, self.catalog, obj, name)
            return None
        return f"{scope}.{info.name}", info

    def _value_ok(self, subject: str, info: FieldInfo | None, value: Any, loc: Loc) -> bool:
        if not isinstance(value, _SCALARS):
            self.ctx.add(loc, f"compare {subject} with a single value, not {type(value).__name__}")
            return False
        if info is None or value is None:
            return True
        if info.type == "boolean" and not isinstance(value, bool):
            self.ctx.add(loc, f"{subject} is a checkbox: compare it with true or false")
            return False
        if info.type in NUMERIC_TYPES and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.ctx.add(loc, f"{subject} is a number: compare it with a number, not {value!r}")
            return False
        if (
            info.picklist_values
            and isinstance(value, str)
            and value.casefold() not in {v.casefold() for v in info.picklist_values}
        ):
            hint = did_you_mean(value, info.picklist_values) or "values: " + ", ".join(info.picklist_values)
            self.ctx.add(loc, f"'{value}' is not a value of {info.object}.{info.name}", hint)
            return False
        return True

    def operator(self, subject: str, info: FieldInfo | None, op: str, value: Any, loc: Loc) -> Compare | None:
        if op in ("equals", "not_equals"):
            return Compare(subject, op, value) if self._value_ok(subject, info, value, loc) else None  # type: ignore[arg-type]
        if op == "in":
            if not isinstance(value, LList) or not value:
                self.ctx.add(loc, "in needs a non-empty list of values", "e.g. in: [Social, Web]")
                return None
            ok = all(
                [self._value_ok(subject, info, v, at) for v, at in zip(value, value.item_locs, strict=True)]
            )
            return Compare(subject, "in", tuple(value)) if ok else None
        if op == "exists":
            if not isinstance(value, bool):
                self.ctx.add(loc, "exists must be true or false")
                return None
            return Compare(subject, "exists", value)
        if op == "matches":
            if not isinstance(value, str):
                self.ctx.add(loc, "matches needs a regular expression as text")
                return None
            if info is not None and (info.type in NUMERIC_TYPES or info.type == "boolean"):
                self.ctx.add(loc, f"matches works on text; {info.object}.{info.name} is {info.type}")
                return None
            try:
                pattern = re.compile(value)
            except re.error as exc:
                at = f" at position {exc.pos}" if exc.pos is not None else ""
                self.ctx.add(
                    loc,
                    f"invalid regular expression: {exc.msg}{at}",
                    "Python regex syntax; quote it in single quotes",
                )
                return None
            return Compare(subject, "matches", pattern)
        # lt, le, gt, ge
        if info is not None and info.type not in NUMERIC_TYPES | TEMPORAL_TYPES:
            self.ctx.add(loc, f"{op} compares numbers and dates; {info.object}.{info.name} is {info.type}")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | date | str):
            self.ctx.add(loc, f"{op} needs a number or a date, not {type(value).__name__}")
            return None
        if info is not None and info.type in NUMERIC_TYPES and not isinstance(value, int | float):
            self.ctx.add(loc, f"{subject} is a number: {op} needs a number, not {value!r}")
            return None
        if isinstance(value, str) and (info is None or info.type in TEMPORAL_TYPES):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                self.ctx.add(loc, f"'{value}' is not an ISO date", "write 2026-01-31 or 2026-01-31T12:00:00Z")
                return None
        return Compare(subject, op, value)  # type: ignore[arg-type]

    def compile(self, when: LMap) -> Condition | None:
        if not when:
            self.ctx.add(when.loc, "when is empty", "leave out when: to match every referral")
            return None
        items: list[Condition] = []
        ok = True
        for key, value in when.items():
            kloc, vloc = when.key_loc(key), when.loc_of(key)
            item = self._item(key, value, kloc, vloc)
            ok = ok and item is not None
            if item is not None:
                items.append(item)
        if not ok:
            return None
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def _item(self, key: str, value: Any, kloc: Loc, vloc: Loc) -> Condition | None:
        if key in ("all", "any"):
            if not isinstance(value, LList) or not value:
                self.ctx.add(vloc, f"{key} needs a non-empty list of conditions")
                return None
            parts: list[Condition | None] = []
            for item, iloc in zip(value, value.item_locs, strict=True):
                if not isinstance(item, LMap):
                    self.ctx.add(iloc, f"each item of {key} must be a condition mapping")
                    parts.append(None)
                else:
                    parts.append(self.compile(item))
            if any(p is None for p in parts):
                return None
            done = tuple(p for p in parts if p is not None)
            return AllOf(done) if key == "all" else AnyOf(done)
        if key == "not":
            if not isinstance(value, LMap):
                self.ctx.add(vloc, "not needs a condition mapping")
                return None
            inner = self.compile(value)
            return Not(inner) if inner is not None else None
        found = self.subject(key, kloc)
        if found is None:
            return None
        subject, info = found
        if isinstance(value, LList):
            return self.operator(subject, info, "in", value, vloc)
        if not isinstance(value, LMap):
            return self.operator(subject, info, "equals", value, vloc)
        if not value:
            self.ctx.add(vloc, f"no operator for {subject}", "use one of: " + ", ".join(OPS))
            return None
        compares: list[Condition] = []
        ok = True
        for op, operand in value.items():
            if op not in OPS:
                meant = _OPERATOR_ALIASES.get(op.lower())
                hint = f"did you mean '{meant}'?" if meant else did_you_mean(op, OPS)
                self.ctx.add(
                    value.key_loc(op), f"unknown operator '{op}'", hint or "use one of: " + ", ".join(OPS)
                )
                ok = False
                continue
            compiled = self.operator(subject, info, op, operand, value.loc_of(op))
            ok = ok and compiled is not None
            if compiled is not None:
                compares.append(compiled)
        if not ok:
            return None
        return compares[0] if len(compares) == 1 else AllOf(tuple(compares))


def compile_routing(
    section: LMap | None, ctx: Ctx, catalog: FieldCatalog, mapping: SchemaMapping
) -> RoutingRules:
    if section is None:
        return RoutingRules()
    compiler = _ConditionCompiler(ctx, catalog, mapping)
    rules: list[RoutingRule] = []
    raw_rules = section.get("rules")
    for raw in raw_rules if isinstance(raw_rules, list) else []:
        if not isinstance(raw, LMap):
            continue
        when = raw.get("when")
        condition = compiler.compile(when) if isinstance(when, LMap) else None
        name, then = raw.get("name"), raw.get("then")
        if isinstance(name, str) and isinstance(
            then, RoutingAction
        ):  # else: a shape problem already reported
            rules.append(RoutingRule(name=name, then=then, when=condition))
    fallbacks = section.get("fallbacks")
    fallbacks = fallbacks if isinstance(fallbacks, LMap) else {}
    return RoutingRules(
        rules=tuple(rules),
        fallbacks=RoutingFallbacks(**{k: v for k, v in fallbacks.items() if isinstance(v, RoutingAction)}),
        respect_manual_reassignment=bool(section.get("respect_manual_reassignment", True)),
    )


# ------------------------------------------------------------------------------------------------ sections owned elsewhere


def locate(root: Any, root_loc: Loc, path: tuple[str | int, ...], *, key: bool = False) -> Loc:
    """The position of the value at `path` below `root` (the deepest part of the path that exists)."""
    node, loc = root, root_loc
    for i, part in enumerate(path):
        if isinstance(node, LMap) and isinstance(part, str) and part in node:
            last = i == len(path) - 1
            loc = node.key_loc(part) if (key and last) else node.loc_of(part)
            node = node[part]
        elif isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            loc, node = node.item_locs[part], node[part]
        else:
            break
    return loc


def compile_owned_section(
    compile_fn: Callable[..., Any],
    value: Any,
    loc: Loc,
    ctx: Ctx,
    **kwargs: Any,
) -> Any:
    """Compile a section whose rules live in their own module (rewards, notifications).

    Those compilers report problems by path below the section (`("rules", 0, "amount")`); each is placed at
    the position of the deepest part of that path the file has.
    """

    def report(path: tuple[str | int, ...], message: str, hint: str | None = None, /) -> None:
        on_key = message.startswith(("unknown key", "duplicate"))
        ctx.add(locate(value, loc, tuple(path), key=on_key), message, hint)

    return compile_fn(value, report, (), **kwargs)


def state_path(configured: Path | None, env: Mapping[str, str], config_file: str) -> Path:
    if configured is not None:
        return configured
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / "sfconnector.db"
    return Path(Ctx([], config_file).resolve("state/sfconnector.db"))
