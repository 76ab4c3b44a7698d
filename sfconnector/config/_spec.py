"""A small schema language: each spec both checks a located YAML value and describes itself as JSON Schema.

The validator and `sfconnector schema` read the same spec objects, so the published schema cannot drift from
what the loader accepts. Checking collects problems into a `Ctx` instead of stopping at the first one, and
returns the value normalised (defaults filled in, paths resolved) or `INVALID`.
(The rewards and notifications sections are checked by their compilers in `sfconnector/rules/` and only
described here, by `_owned`, from those compilers' own tables.)
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sfconnector.config._yaml import LList, LMap, Loc, read_yaml
from sfconnector.errors import ConfigProblem


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
_MISSING: Final = object()
_MAX_INCLUDE_DEPTH = 5


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice, if one is close enough to be a likely typo."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean '{close[0]}'?" if close else None


def one_of_hint(word: str, choices: Iterable[str]) -> str:
    options = sorted(choices)
    return did_you_mean(word, options) or "expected one of: " + ", ".join(options)


@dataclass
class Ctx:
    """Where problems go and which file is being read, for relative `file:` paths."""

    problems: list[ConfigProblem]
    file: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    depth: int = 0

    @property
    def base_dir(self) -> Path:
        return Path(os.path.dirname(self.file) or ".")

    def add(self, loc: Loc, message: str, hint: str | None = None) -> _Invalid:
        self.problems.append(loc.problem(message, hint))
        return INVALID

    def resolve(self, ref: str) -> str:
        """A path named in this file, as shown to the user (relative paths are relative to this file)."""
        if os.path.isabs(ref):
            return os.path.normpath(ref)
        return os.path.normpath(os.path.join(os.path.dirname(self.file), ref))

    def for_file(self, file: str) -> Ctx:
        return Ctx(self.problems, file, self.env, self.depth + 1)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, LMap):
        return "a mapping"
    if isinstance(value, LList):
        return "a list"
    return type(value).__name__


class Spec:
    """What a value must look like."""

    description: str = ""
    expects: str = "a value"

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        raise NotImplementedError

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def default(self) -> Any:
        """The value when the key is absent, or _MISSING when the key is required."""
        return _MISSING

    def check_partial(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        """Like check(), but containers with problems come back with only their bad parts set to INVALID."""
        return self.check(value, loc, ctx)

    def _described(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema["description"] = self.description
        return schema

    def _wrong_type(self, value: Any, loc: Loc, ctx: Ctx, what: str = "") -> _Invalid:
        label = f"{what} " if what else ""
        return ctx.add(loc, f"{label}must be {self.expects}, not {type_name(value)}")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, loc: Loc, ctx: Ctx) -> str | _Invalid:
    """`text` with each `${VAR}` replaced from the environment; an unset variable is a problem."""
    missing = [name for name in _ENV_REF.findall(text) if name not in ctx.env]
    if missing:
        return ctx.add(
            loc, f"environment variable {missing[0]} is not set", f"export {missing[0]}=... before starting"
        )
    expanded = _ENV_REF.sub(lambda m: ctx.env[m.group(1)], text)
    if "${" in _ENV_REF.sub("", text):
        return ctx.add(
            loc, "'${' starts a variable reference: write ${NAME}", "names are letters, digits and _"
        )
    return expanded


class Str(Spec):
    expects = "text"

    def __init__(
        self,
        description: str = "",
        *,
        enum: Iterable[str] | None = None,
        pattern: str | None = None,
        pattern_hint: str = "",
        default: str | object | None = _MISSING,
        allow_empty: bool = False,
    ) -> None:
        self.description = description
        self.enum = tuple(enum) if enum is not None else None
        self.pattern = re.compile(pattern) if pattern else None
        self.pattern_hint = pattern_hint
        self._default = default
        self.allow_empty = allow_empty

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if value is None and self._default is None:
            return None  # an optional setting left empty
        if isinstance(value, int | float) and not isinstance(value, bool) and self.enum is None:
            value = str(value)  # api_version: 59.0 is meant as text
        if not isinstance(value, str):
            return self._wrong_type(value, loc, ctx)
        if "${" in value:
            expanded = expand_env(value, loc, ctx)
            if isinstance(expanded, _Invalid):
                return INVALID
            value = expanded
        if not value.strip() and not self.allow_empty:
            return ctx.add(loc, "must not be empty")
        if self.enum is not None and value not in self.enum:
            return ctx.add(loc, f"'{value}' is not allowed here", one_of_hint(value, self.enum))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return ctx.add(loc, f"'{value}' is not valid here", self.pattern_hint or None)
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern.pattern})$"
        if not self.allow_empty and self.enum is None and self.pattern is None:
            schema["minLength"] = 1
        if self._default is not _MISSING and self._default is not None:
            schema["default"] = self._default
        if self._default is None:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return self._described(schema)


class Int(Spec):
    expects = "a whole number"

    def __init__(
        self,
        description: str = "",
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        default: Any = _MISSING,
    ) -> None:
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self._default = default

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return self._wrong_type(value, loc, ctx)
        if self.minimum is not None and value < self.minimum:
            return ctx.add(loc, f"{value} is too small", f"at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            return ctx.add(loc, f"{value} is too large", f"at most {self.maximum}")
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self._default is not _MISSING and self._default is not None:
            schema["default"] = self._default
        return self._described(schema)


class Num(Int):
    expects = "a number"

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self._wrong_type(value, loc, ctx)
        if self.minimum is not None and value < self.minimum:
            return ctx.add(loc, f"{value} is too small", f"at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            return ctx.add(loc, f"{value} is too large", f"at most {self.maximum}")
        return float(value)

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema = super().json_schema(defs)
        schema["type"] = "number"
        return schema


class Bool(Spec):
    expects = "true or false"

    def __init__(self, description: str = "", *, default: Any = _MISSING) -> None:
        self.description = description
        self._default = default

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, bool):
            return self._wrong_type(value, loc, ctx)
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "boolean"}
        if self._default is not _MISSING and self._default is not None:
            schema["default"] = self._default
        return self._described(schema)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(Spec):
    """A duration as seconds (a number) or text such as 500ms, 30s, 15m, 6h, 1d; checked into seconds."""

    expects = "a duration such as 30s, 15m, 6h or 1d"

    def __init__(
        self, description: str = "", *, default: Any = _MISSING, minimum_seconds: float = 0.0
    ) -> None:
        self.description = description
        self._default = default
        self.minimum_seconds = minimum_seconds

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        else:
            return ctx.add(loc, f"must be {self.expects}, not {value!r}", "write e.g. 30s, 15m, 6h or 1d")
        if seconds < self.minimum_seconds:
            return ctx.add(loc, f"{value} is too short", f"at least {self.minimum_seconds:g}s")
        return seconds

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "anyOf": [
                {"type": "number", "minimum": self.minimum_seconds},
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*(ms|s|m|h|d)$"},
            ]
        }
        if self._default is not _MISSING and self._default is not None:
            schema["default"] = self._default
        return self._described(schema)


class PathSpec(Str):
    """A file system path; relative paths are relative to the config file that names them.

    `${VAR}` parts are expanded from the environment, and `credential:NAME` names a file systemd put in
    `$CREDENTIALS_DIRECTORY` (LoadCredential=).
    """

    expects = "a path"

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        checked = super().check(value, loc, ctx)
        if checked is INVALID or checked is None:
            return checked
        if checked.startswith("credential:"):
            return credential_path(checked.removeprefix("credential:"), loc, ctx)
        return Path(ctx.resolve(os.path.expanduser(checked)))


def credential_path(name: str, loc: Loc, ctx: Ctx) -> Path | _Invalid:
    """The file of systemd credential `name`, or a problem when there is no such credential."""
    if not name or "/" in name or name in (".", ".."):
        return ctx.add(
            loc, f"'{name}' is not a credential name", "write credential:NAME as in LoadCredential=NAME:"
        )
    directory = ctx.env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return ctx.add(
            loc,
            f"credential:{name} needs $CREDENTIALS_DIRECTORY, which is not set",
            "systemd sets it for LoadCredential=; outside systemd use ${VAR} or file:",
        )
    path = Path(directory) / name
    if not path.is_file():
        return ctx.add(
            loc, f"credential {name} is not in $CREDENTIALS_DIRECTORY", f"add LoadCredential={name}:..."
        )
    return path


class AnyValue(Spec):
    """Anything: checked by the code that owns this section."""

    def __init__(self, description: str = "", *, default: Any = _MISSING) -> None:
        self.description = description
        self._default = default

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return self._described({})


class ListOf(Spec):
    expects = "a list"

    def __init__(
        self, item: Spec, description: str = "", *, min_items: int = 0, default: Any = _MISSING
    ) -> None:
        self.item = item
        self.description = description
        self.min_items = min_items
        self._default = default

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, LList):
            return self._wrong_type(value, loc, ctx)
        if len(value) < self.min_items:
            return ctx.add(loc, f"needs at least {self.min_items} item(s)")
        result = LList(value.loc)
        ok = True
        for item, item_loc in zip(value, value.item_locs, strict=True):
            checked = self.item.check(item, item_loc, ctx)
            ok = ok and checked is not INVALID
            result.append(checked)
            result.item_locs.append(item_loc)
        return result if ok else INVALID

    def check_partial(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        result = self.check(value, loc, ctx)
        if result is not INVALID or not isinstance(value, LList):
            return result
        again = Ctx([], ctx.file, ctx.env, ctx.depth)
        partial = LList(value.loc)
        for item, item_loc in zip(value, value.item_locs, strict=True):
            partial.append(self.item.check_partial(item, item_loc, again))
            partial.item_locs.append(item_loc)
        return partial

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.item.json_schema(defs)}
        if self.min_items:
            schema["minItems"] = self.min_items
        if isinstance(self._default, list | tuple):
            schema["default"] = list(self._default)
        return self._described(schema)


class MapOf(Spec):
    """A mapping whose keys are the admin's own names."""

    expects = "a mapping"

    def __init__(self, value: Spec, description: str = "", *, default: Any = _MISSING) -> None:
        self.value = value
        self.description = description
        self._default = default

    def default(self) -> Any:
        return self._default

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if value is None and self._default is None:
            return None
        if not isinstance(value, LMap):
            return self._wrong_type(value, loc, ctx)
        result = LMap(value.loc)
        ok = True
        for key, item in value.items():
            checked = self.value.check(item, value.loc_of(key), ctx)
            ok = ok and checked is not INVALID
            result[key] = checked
            result.key_locs[key] = value.key_loc(key)
            result.value_locs[key] = value.loc_of(key)
        return result if ok else INVALID

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return self._described({"type": "object", "additionalProperties": self.value.json_schema(defs)})


@dataclass
class Field:
    spec: Spec
    required: bool = False


class Obj(Spec):
    """A mapping with a fixed set of keys; unknown keys are problems with a did-you-mean."""

    expects = "a mapping"

    def __init__(
        self,
        fields: Mapping[str, Spec | Field],
        description: str = "",
        *,
        name: str = "",
        check_whole: Callable[[LMap, Ctx], None] | None = None,
        key_hints: Mapping[str, str] | None = None,
    ) -> None:
        self.fields = {k: v if isinstance(v, Field) else Field(v) for k, v in fields.items()}
        self.key_hints = dict(key_hints or {})  # unknown keys people are likely to write, and where they go
        self.description = description
        self.name = name
        self.check_whole = check_whole

    def default(self) -> Any:
        if any(f.required for f in self.fields.values()):
            return _MISSING
        return LMap(Loc("", 0, 0))  # filled in by check() at the parent's position

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if value is None or (isinstance(value, LMap) and value.loc.line == 0):
            value = LMap(loc)  # `section:` with nothing under it means "all defaults"
        if not isinstance(value, LMap):
            return self._wrong_type(value, loc, ctx, self.name)
        result = LMap(value.loc)
        ok = True
        where = f" in {self.name}" if self.name else ""
        for key in value:
            if key not in self.fields:
                hint = self.key_hints.get(key) or one_of_hint(key, self.fields)
                ctx.add(value.key_loc(key), f"unknown key '{key}'{where}", hint)
                ok = False
        for key, fld in self.fields.items():
            if key in value:
                checked = fld.spec.check(value[key], value.loc_of(key), ctx)
                result.key_locs[key] = value.key_loc(key)
                result.value_locs[key] = value.loc_of(key)
            else:
                default = fld.spec.default()
                if fld.required or default is _MISSING:
                    if fld.required:
                        ctx.add(value.loc, f"missing required key '{key}'{where}")
                        ok = False
                    continue
                checked = fld.spec.check(default, value.loc, ctx) if isinstance(default, LMap) else default
                result.value_locs[key] = value.loc
            ok = ok and checked is not INVALID
            result[key] = checked
        if self.check_whole is not None:  # also on a partly invalid mapping: report everything at once
            before = len(ctx.problems)
            self.check_whole(result, ctx)
            ok = ok and len(ctx.problems) == before
        return result if ok else INVALID

    def check_partial(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        result = self.check(value, loc, ctx)
        if result is not INVALID or not isinstance(value, LMap):
            return result
        again = Ctx([], ctx.file, ctx.env, ctx.depth)  # these problems are reported already
        partial = LMap(value.loc)
        for key, fld in self.fields.items():
            if key in value:
                partial[key] = fld.spec.check_partial(value[key], value.loc_of(key), again)
                partial.key_locs[key] = value.key_loc(key)
                partial.value_locs[key] = value.loc_of(key)
        return partial

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: f.spec.json_schema(defs) for k, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        return self._described(schema)


class Includable(Spec):
    """A section given inline, or as `{file: path}` naming a YAML file that holds it."""

    def __init__(self, inner: Spec) -> None:
        self.inner = inner
        self.description = inner.description
        self.expects = inner.expects

    def default(self) -> Any:
        return self.inner.default()

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        return self._check(value, loc, ctx, partial=False)

    def check_partial(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        return self._check(value, loc, ctx, partial=True)

    def _check(self, value: Any, loc: Loc, ctx: Ctx, *, partial: bool) -> Any:
        inner = self.inner.check_partial if partial else self.inner.check
        if not (isinstance(value, LMap) and list(value) == ["file"]):
            return inner(value, loc, ctx)
        ref = value["file"]
        ref_loc = value.loc_of("file")
        if not isinstance(ref, str) or not ref.strip():
            return ctx.add(ref_loc, "file must be a path to a YAML file")
        if ctx.depth >= _MAX_INCLUDE_DEPTH:
            return ctx.add(
                ref_loc, "files include each other too deeply", "is there a loop of file: references?"
            )
        shown = ctx.resolve(ref)
        before = len(ctx.problems)
        included = read_yaml(Path(shown), shown, ctx.problems, at=ref_loc)
        if len(ctx.problems) > before:
            return INVALID
        return inner(included, Loc(shown, 1, 1), ctx.for_file(shown))

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        include = {
            "type": "object",
            "properties": {"file": {"type": "string", "description": "YAML file holding this section"}},
            "required": ["file"],
            "additionalProperties": False,
        }
        return {"anyOf": [self.inner.json_schema(defs), include]}


class Ref(Spec):
    """A spec registered once under `$defs` (for recursive or shared shapes)."""

    def __init__(self, name: str, target: Callable[[], Spec]) -> None:
        self.name = name
        self.target = target

    @property
    def expects(self) -> str:  # type: ignore[override]
        return self.target().expects

    def default(self) -> Any:
        return self.target().default()

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        return self.target().check(value, loc, ctx)

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        if self.name not in defs:
            defs[self.name] = {}  # placeholder first: the target may refer to itself
            defs[self.name] = self.target().json_schema(defs)
        return {"$ref": f"#/$defs/{self.name}"}
