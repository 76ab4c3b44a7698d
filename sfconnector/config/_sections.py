"""The shape of `connector.yaml`: one spec per section, read by both the loader and `sfconnector schema`.

Defaults come from the frozen model dataclasses, so the documented default and the running default agree.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from sfconnector.config._owned import OwnedSection, notifications_schema, rewards_schema
from sfconnector.config._spec import (
    INVALID,
    Bool,
    Ctx,
    Duration,
    Field,
    Includable,
    Int,
    ListOf,
    MapOf,
    Num,
    Obj,
    PathSpec,
    Ref,
    Spec,
    Str,
    credential_path,
    one_of_hint,
    type_name,
)
from sfconnector.config._yaml import LList, LMap, Loc
from sfconnector.config.model import (
    BatchConfig,
    HealthConfig,
    LoggingConfig,
    ReconcileConfig,
    Secret,
    StreamConfig,
    WriterConfig,
)
from sfconnector.mapping.model import LOGICAL_OBJECTS, CodePolicy, SchemaMapping
from sfconnector.rules.conditions import OPS
from sfconnector.rules.model import (
    AttributionPolicy,
    DuplicatePolicy,
    ExistingLeadPolicy,
    RoutingAction,
    SelfReferralPolicy,
)

# ------------------------------------------------------------------------------------------------ secrets

_ENV_ONLY = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SecretSpec(Spec):
    """A secret, never literal: `${ENV_VAR}`, `file:/path` or `credential:NAME` (systemd LoadCredential=)."""

    expects = "a secret reference"

    def __init__(self, description: str, env_example: str) -> None:
        self.description = description
        self.env_example = env_example

    def default(self) -> Any:
        return None

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if value is None:
            return None
        hint = f"write ${{{self.env_example}}} and set that variable, or file:/path, or credential:NAME"
        if not isinstance(value, str):
            return ctx.add(loc, "a literal secret is not allowed in the config", hint)
        text = value.strip()
        if m := _ENV_ONLY.fullmatch(text):
            name = m.group(1)
            if name not in ctx.env:
                return ctx.add(
                    loc, f"environment variable {name} is not set", f"export {name}=... before starting"
                )
            if not ctx.env[name]:
                return ctx.add(loc, f"environment variable {name} is empty")
            return Secret(text, ctx.env[name])
        if text.startswith("file:"):
            ref = text.removeprefix("file:").strip()
            if not ref:
                return ctx.add(loc, "file: needs a path", "write file:/etc/sfconnector/secret")
            shown = ctx.resolve(ref)
            try:
                content = Path(shown).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                return ctx.add(
                    loc, f"cannot read secret file {shown}: {reason}", "check the path and permissions"
                )
            if not content:
                return ctx.add(loc, f"secret file {shown} is empty")
            return Secret(f"file:{shown}", content)
        if text.startswith("credential:"):
            path = credential_path(text.removeprefix("credential:"), loc, ctx)
            if not isinstance(path, Path):
                return INVALID
            try:
                return Secret(text, path.read_text(encoding="utf-8").rstrip("\r\n"))
            except (OSError, UnicodeDecodeError) as exc:
                return ctx.add(loc, f"cannot read credential {path.name}: {exc}", "check LoadCredential=")
        if "${" in text:
            return ctx.add(loc, "a secret must be exactly one ${VAR} reference", hint)
        return ctx.add(loc, "a literal secret is not allowed in the config", hint)

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return self._described(
            {"type": "string", "pattern": r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:.+|credential:[^/]+)$"}
        )


# ------------------------------------------------------------------------------------------------ salesforce

_AUTH_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    # method -> groups of keys; each group needs one of its keys
    "jwt": (("client_id",), ("username",), ("private_key_file", "private_key")),
    "client_credentials": (("client_id",), ("client_secret",)),
    "refresh_token": (("client_id",), ("refresh_token",)),
    "password": (("client_id",), ("client_secret",), ("username",), ("password",)),
}
_AUTH_USES: dict[str, set[str]] = {
    "jwt": {"client_id", "username", "private_key_file", "private_key"},
    "client_credentials": {"client_id", "client_secret"},
    "refresh_token": {"client_id", "client_secret", "refresh_token"},
    "password": {"client_id", "client_secret", "username", "password", "security_token"},
}


def _check_auth(auth: LMap, ctx: Ctx) -> None:
    method = auth.get("method")
    if method not in _AUTH_NEEDS:
        return
    for group in _AUTH_NEEDS[method]:
        if not any(auth.get(key) is not None for key in group):
            ctx.add(auth.loc, f"auth method {method} needs {' or '.join(group)}")
    for key in auth:
        if (
            key != "method"
            and key in auth.key_locs
            and key not in _AUTH_USES[method]
            and auth[key] is not None
        ):
            ctx.add(auth.key_loc(key), f"{key} is not used by auth method {method}", "remove it")
    if auth.get("private_key_file") is not None and auth.get("private_key") is not None:
        ctx.add(auth.key_loc("private_key"), "give private_key_file or private_key, not both")


AUTH = Obj(
    {
        "method": Field(
            Str(
                "OAuth flow: jwt (recommended), client_credentials, refresh_token or password",
                enum=("jwt", "client_credentials", "refresh_token", "password"),
            ),
            required=True,
        ),
        "client_id": Str("connected app consumer key", default=None),
        "username": Str("integration user's username (jwt, password)", default=None),
        "private_key_file": PathSpec(
            "PEM private key that signs the JWT (a path, or credential:NAME); not a secret literal",
            default=None,
        ),
        "private_key": SecretSpec("the PEM key itself, as a secret reference", "SFCONNECTOR_PRIVATE_KEY"),
        "client_secret": SecretSpec("connected app consumer secret", "SFCONNECTOR_CLIENT_SECRET"),
        "refresh_token": SecretSpec("OAuth refresh token", "SFCONNECTOR_REFRESH_TOKEN"),
        "password": SecretSpec("integration user's password (legacy orgs only)", "SFCONNECTOR_PASSWORD"),
        "security_token": SecretSpec("security token appended to the password", "SFCONNECTOR_SECURITY_TOKEN"),
    },
    "how sfconnector logs in; secrets only as ${ENV_VAR}, file:PATH or credential:NAME",
    name="auth",
    check_whole=_check_auth,
)

_URL = r"https?://[^\s/]+(/[^\s]*)?"
_URL_HINT = "write a URL such as https://login.salesforce.com"

SALESFORCE = Obj(
    {
        "login_url": Field(
            Str(
                "login host, e.g. https://login.salesforce.com or https://MyDomain.my.salesforce.com",
                pattern=_URL,
                pattern_hint=_URL_HINT,
            ),
            required=True,
        ),
        "instance_url": Str(
            "REST host when it differs from the one the token response names",
            pattern=_URL,
            pattern_hint=_URL_HINT,
            default=None,
        ),
        "api_version": Str(
            "Salesforce API version", pattern=r"\d{2,3}\.0", pattern_hint="write it like 59.0", default="59.0"
        ),
        "ca_bundle": PathSpec("PEM bundle of CAs to trust (private CA, the emulator)", default=None),
        "client_name": Str(
            "client name sent in Sforce-Call-Options; the connector ignores change events its own writes caused",
            pattern=r"[A-Za-z0-9_.\-]{1,40}",
            pattern_hint="letters, digits, _ . - (up to 40)",
            default="sfconnector",
        ),
        "timeout": Duration("HTTP request timeout", default=30.0, minimum_seconds=1.0),
        "auth": Field(AUTH, required=True),
    },
    "the Salesforce org",
    name="salesforce",
)

STATE = Obj(
    {
        "path": PathSpec(
            "SQLite state file (default: $STATE_DIRECTORY/sfconnector.db or state/sfconnector.db)",
            default=None,
        )
    },
    "local state",
    name="state",
)

# ------------------------------------------------------------------------------------------------ stream / writer

_stream, _batch, _writer = StreamConfig(), BatchConfig(), WriterConfig()

_CHANNEL = r"/data/ChangeEvents|/data/[A-Za-z][A-Za-z0-9_]*ChangeEvent|/event/[A-Za-z][A-Za-z0-9_]*__e"


def _check_stream(stream: LMap, ctx: Ctx) -> None:
    channels = stream.get("channels")
    if isinstance(channels, LList):
        seen: set[str] = set()
        for channel, loc in zip(channels, channels.item_locs, strict=True):
            if channel in seen:
                ctx.add(loc, f"channel {channel} is listed twice")
            seen.add(channel)


STREAM = Obj(
    {
        "channels": ListOf(
            Str(
                "a change data capture or platform event channel",
                pattern=_CHANNEL,
                pattern_hint="e.g. /data/LeadChangeEvent or /event/Referral_Submitted__e",
            ),
            "channels to subscribe to",
            min_items=1,
            default=list(_stream.channels),
        ),
        "start": Str(
            "where to start when there is no checkpoint: latest, or earliest retained event",
            enum=("latest", "earliest"),
            default=_stream.start,
        ),
        "batch": Obj(
            {
                "max_events": Int(
                    "events per batch at most", minimum=1, maximum=2000, default=_batch.max_events
                ),
                "max_wait_ms": Int(
                    "how long a batch waits to fill", minimum=0, maximum=60000, default=_batch.max_wait_ms
                ),
            },
            "event batching",
            name="batch",
        ),
        "max_in_flight": Int(
            "events received but not yet committed, at most",
            minimum=1,
            maximum=100000,
            default=_stream.max_in_flight,
        ),
    },
    "streaming subscription",
    name="stream",
    check_whole=_check_stream,
)

WRITER = Obj(
    {
        "batch_size": Int(
            "outbox entries per drain; their collection calls (200 records each) are packed into one composite request",
            minimum=1,
            maximum=5000,
            default=_writer.batch_size,
        ),
        "max_retries": Int(
            "attempts for a retryable error before dead-lettering",
            minimum=0,
            maximum=100,
            default=_writer.max_retries,
        ),
        "retry_initial": Duration("first backoff wait", default=_writer.retry_initial_seconds),
        "retry_max": Duration("longest backoff wait", default=_writer.retry_max_seconds),
        "use_composite": Bool(
            "group writes in composite requests to save API calls", default=_writer.use_composite
        ),
        "drain_timeout": Duration(
            "how long SIGTERM may drain the outbox (default: the unit's stop timeout less one request"
            " timeout and 5s, else 30s)",
            default=None,
        ),
    },
    "the outbox writer",
    name="writer",
)

_reconcile, _logging, _health = ReconcileConfig(), LoggingConfig(), HealthConfig()

RECONCILE = Obj(
    {
        "period": Duration(
            "how often to run the catch-up sweep (0: only when needed)", default=_reconcile.period_seconds
        ),
        "lookback": Duration("how far back a scheduled sweep looks", default=_reconcile.lookback_seconds),
    },
    "the reconciliation sweep by SOQL",
    name="reconcile",
)

LOGGING = Obj(
    {
        "level": Str("log level", enum=("debug", "info", "warning", "error"), default=_logging.level),
        "format": Str(
            "json (journald), console, or auto (console on a terminal)",
            enum=("auto", "json", "console"),
            default=_logging.format,
        ),
    },
    "logging",
    name="logging",
)

HEALTH = Obj(
    {
        "enabled": Bool("serve /healthz and /metrics", default=_health.enabled),
        "listen": Str(
            "host:port to listen on",
            pattern=r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.\-]+):\d{1,5}",
            pattern_hint="write host:port, e.g. 127.0.0.1:9108",
            default=f"{_health.host}:{_health.port}",
        ),
        "unhealthy_after": Duration(
            "answer 503 once batches have kept failing, or the outbox has not drained, for this long",
            default=_health.unhealthy_after_seconds,
            minimum_seconds=0.1,
        ),
        "api_left_alert": Num(
            "log alert.api_allocation_low when less than this share of the daily API allocation is left",
            minimum=0,
            maximum=1,
            default=_health.api_left_alert_share,
        ),
    },
    "health and metrics endpoint",
    name="health",
)

# ------------------------------------------------------------------------------------------------ mapping

_API_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_code = CodePolicy()


def _logical_object(logical: str) -> Obj:
    cls = LOGICAL_OBJECTS[logical]
    defaults = cls()
    specs: dict[str, Spec | Field] = {}
    for f in fields(cls):
        what = (
            "Salesforce object"
            if f.name == "object"
            else f"field holding the {logical}'s {f.name.replace('_', ' ')}"
        )
        specs[f.name] = Str(
            what, pattern=_API_NAME, pattern_hint="an API name", default=getattr(defaults, f.name)
        )
    return Obj(specs, f"the {logical}: its object and fields", name=f"mapping.{logical}")


MAPPING = Obj(
    {
        **{logical: _logical_object(logical) for logical in LOGICAL_OBJECTS},
        "referral_code": Obj(
            {
                "case": Str(
                    "fold codes to upper or lower case, or preserve",
                    enum=("upper", "lower", "preserve"),
                    default=_code.case,
                ),
                "strip_spaces": Bool("drop whitespace from codes", default=_code.strip_spaces),
                "strip_dashes": Bool("drop dashes from codes", default=_code.strip_dashes),
            },
            "how a typed referral code is normalised before matching (other characters are kept)",
            name="mapping.referral_code",
        ),
        "active_advocate_status": Str(
            "the advocate status value meaning active", default=SchemaMapping().active_advocate_status
        ),
        "additional_fields": MapOf(
            ListOf(Str(pattern=_API_NAME, pattern_hint="an API name")),
            "fields your org has beyond the default schema, by object, so rules may use them",
            default=None,
        ),
    },
    "logical referral model to Salesforce objects and fields",
    name="mapping",
)

# ------------------------------------------------------------------------------------------------ routing

_USER_ID = re.compile(r"005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")
_USERNAME = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_QUEUE_ID = re.compile(r"00G[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")
_SIMPLE_ACTIONS = ("owner_of_advocate", "keep_standard")
_TARGET_ACTIONS = ("user", "queue")


class ActionSpec(Spec):
    """owner_of_advocate | keep_standard | {user: <username or User Id>} | {queue: <queue name or Id>}."""

    expects = "an action"

    def __init__(
        self, description: str, *, default: RoutingAction | None = None, allow_owner: bool = True
    ) -> None:
        self.description = description
        self._default = default
        self.allow_owner = allow_owner

    def default(self) -> Any:
        return self._default if self._default is not None else super().default()

    def _hint(self) -> str:
        simple = [a for a in _SIMPLE_ACTIONS if self.allow_owner or a != "owner_of_advocate"]
        return "write " + ", ".join(simple) + ", {user: name@example.com} or {queue: Queue Name}"

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if isinstance(value, RoutingAction):
            return value
        if isinstance(value, str):
            if value in _TARGET_ACTIONS:
                return ctx.add(loc, f"'{value}' needs a target", f"write {{{value}: ...}}")
            if value not in _SIMPLE_ACTIONS:
                return ctx.add(
                    loc, f"unknown action '{value}'", one_of_hint(value, (*_SIMPLE_ACTIONS, *_TARGET_ACTIONS))
                )
            if value == "owner_of_advocate" and not self.allow_owner:
                return ctx.add(
                    loc,
                    "owner_of_advocate cannot be used here: there is no usable advocate owner",
                    self._hint(),
                )
            return RoutingAction(value)  # type: ignore[arg-type]
        if not isinstance(value, LMap):
            return ctx.add(loc, f"an action must be text or a mapping, not {type_name(value)}", self._hint())
        if len(value) != 1 or next(iter(value)) not in _TARGET_ACTIONS:
            keys = list(value)
            bad = next((k for k in keys if k not in _TARGET_ACTIONS), keys[0] if keys else "")
            where = value.key_loc(bad) if bad in value else value.loc
            if bad and bad not in _TARGET_ACTIONS:
                return ctx.add(
                    where, f"unknown action '{bad}'", one_of_hint(bad, (*_SIMPLE_ACTIONS, *_TARGET_ACTIONS))
                )
            return ctx.add(where, "an action names exactly one of user or queue", self._hint())
        kind = next(iter(value))
        target = value[kind]
        tloc = value.loc_of(kind)
        if not isinstance(target, str) or not target.strip():
            return ctx.add(tloc, f"{kind} must name a {'username or User Id' if kind == 'user' else 'queue'}")
        if target != target.strip():
            return ctx.add(tloc, f"{kind} name has spaces at its ends", "remove them")
        if kind == "user":
            if not (_USERNAME.fullmatch(target) or _USER_ID.fullmatch(target)):
                hint = "a username looks like name@example.com; an Id starts with 005 and has 15 or 18 characters"
                if target.startswith("005"):
                    return ctx.add(tloc, f"'{target}' is not a valid User Id", hint)
                return ctx.add(tloc, f"'{target}' is not a username or User Id", hint)
        else:
            if target.startswith("00G") and not _QUEUE_ID.fullmatch(target) and " " not in target:
                return ctx.add(
                    tloc,
                    f"'{target}' is not a valid queue Id",
                    "a queue Id starts with 00G and has 15 or 18 characters",
                )
            if len(target) > 80:
                return ctx.add(tloc, "queue name is longer than 80 characters")
        return RoutingAction(kind, target, at=f"{tloc.file}:{tloc.line}:{tloc.col}")  # type: ignore[arg-type]

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        simple = [a for a in _SIMPLE_ACTIONS if self.allow_owner or a != "owner_of_advocate"]
        schema: dict[str, Any] = {
            "anyOf": [
                {"type": "string", "enum": simple},
                {
                    "type": "object",
                    "properties": {"user": {"type": "string", "description": "username or User Id"}},
                    "required": ["user"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"queue": {"type": "string", "description": "queue name (or Group Id)"}},
                    "required": ["queue"],
                    "additionalProperties": False,
                },
            ]
        }
        if self._default is not None:
            schema["default"] = self._default.kind
        return self._described(schema)


class ConditionSpec(Spec):
    """A `when:` condition. Only its shape is checked here; fields and values are compiled later."""

    expects = "a condition mapping"
    description = (
        "all keys must hold: channel, lead.<Field> or advocate.<Field> with a value (equals), a list (in) or "
        "operators; or all/any (lists of conditions), not (a condition)"
    )

    def default(self) -> Any:
        return None

    def check(self, value: Any, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, LMap):
            return ctx.add(
                loc,
                f"when must be a mapping of conditions, not {type_name(value)}",
                "e.g. when: {channel: Social}",
            )
        return value

    def json_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        scalar = {"type": ["string", "number", "boolean", "null"]}
        ops = {
            "type": "object",
            "properties": {
                "equals": scalar,
                "not_equals": scalar,
                "in": {"type": "array", "items": scalar, "minItems": 1},
                "exists": {"type": "boolean"},
                "matches": {"type": "string", "description": "regular expression (Python syntax), searched"},
                **{op: {"type": ["number", "string"]} for op in OPS if op in ("lt", "le", "gt", "ge")},
            },
            "additionalProperties": False,
            "minProperties": 1,
        }
        subject_value = {"anyOf": [scalar, {"type": "array", "items": scalar, "minItems": 1}, ops]}
        me = {"$ref": "#/$defs/condition"}
        return self._described(
            {
                "type": "object",
                "properties": {
                    "all": {"type": "array", "items": me},
                    "any": {"type": "array", "items": me},
                    "not": me,
                    "channel": subject_value,
                },
                "patternProperties": {r"^(lead|advocate)\.[A-Za-z][A-Za-z0-9_]*$": subject_value},
                "additionalProperties": False,
            }
        )


_CONDITION = ConditionSpec()
CONDITION = Ref("condition", lambda: _CONDITION)

_RULE_NAME = r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}"


def _check_rules(routing: LMap, ctx: Ctx) -> None:
    """Rule names are unique (they are recorded on every decision), and every rule can be reached."""
    rules = routing.get("rules")
    if not isinstance(rules, LList):
        return
    seen: dict[str, Loc] = {}
    catch_all: LMap | None = None
    for rule in rules:
        if not isinstance(rule, LMap) or not isinstance(rule.get("name"), str):
            continue
        name, loc = rule["name"], rule.loc_of("name")
        if catch_all is not None:
            ctx.add(
                loc,
                f"routing rule '{name}' is never reached: '{catch_all['name']}' above it has no when: "
                "and takes every referral",
                f"move '{name}' above line {catch_all.loc.line}, or give '{catch_all['name']}' a condition",
            )
        elif rule.get("when") is None:
            catch_all = rule
        if name.casefold() in seen:
            first = seen[name.casefold()]
            ctx.add(
                loc,
                f"duplicate routing rule name '{name}'",
                f"first used at line {first.line}; names must be unique",
            )
        else:
            seen[name.casefold()] = loc


ROUTING_RULE = Obj(
    {
        "name": Field(
            Str(
                "unique rule name, recorded on every decision",
                pattern=_RULE_NAME,
                pattern_hint="letters, digits, space _ . - (up to 80)",
            ),
            required=True,
        ),
        "description": Str("what the rule is for", default=None),
        "when": CONDITION,
        "then": Field(ActionSpec("where the lead goes when the rule matches"), required=True),
    },
    "a routing rule: the first whose condition holds decides",
    name="routing rule",
)

ROUTING = Obj(
    {
        "rules": ListOf(ROUTING_RULE, "ordered routing rules; first match wins", default=[]),
        "fallbacks": Obj(
            {
                "inactive_owner": ActionSpec(
                    "when the advocate's owner is an inactive user",
                    default=RoutingAction("keep_standard"),
                    allow_owner=False,
                ),
                "inactive_advocate": ActionSpec(
                    "when the advocate is inactive", default=RoutingAction("keep_standard")
                ),
                "unknown_advocate": ActionSpec(
                    "when no advocate has the referral code",
                    default=RoutingAction("keep_standard"),
                    allow_owner=False,
                ),
                "no_match": ActionSpec("when no rule matches", default=RoutingAction("keep_standard")),
            },
            "where referrals go when the rules cannot be followed",
            name="routing.fallbacks",
        ),
        "respect_manual_reassignment": Bool(
            "leave a lead with the person someone reassigned it to after creation", default=True
        ),
    },
    "lead routing",
    name="routing",
    check_whole=_check_rules,
)

# ------------------------------------------------------------------------------------------------ attribution

_attr = AttributionPolicy()
_el, _sr, _dup = ExistingLeadPolicy(), SelfReferralPolicy(), DuplicatePolicy()

ATTRIBUTION = Obj(
    {
        "existing_lead": Obj(
            {
                "within_days": Int(
                    "an open lead for the same person younger than this counts",
                    minimum=0,
                    default=_el.within_days,
                ),
                "action": Str(
                    "reactivate that lead, or count the referral as a duplicate",
                    enum=("reactivate", "duplicate"),
                    default=_el.action,
                ),
                "credit": Bool("credit the advocate for a reactivated lead", default=_el.credit),
            },
            "the referred person already has an open lead",
            name="attribution.existing_lead",
        ),
        "existing_opportunity": Obj(
            {
                "credit": Bool(
                    "credit the advocate as Existing Opportunity", default=_attr.existing_opportunity.credit
                )
            },
            "the referred person is a contact with an open opportunity",
            name="attribution.existing_opportunity",
        ),
        "self_referral": Obj(
            {
                "reject_same_email": Bool(
                    "reject a referral with the advocate's own email", default=_sr.reject_same_email
                ),
                "reject_same_domain": Bool(
                    "reject a referral from the advocate's own email domain", default=_sr.reject_same_domain
                ),
                "free_mail_domains": ListOf(
                    Str(pattern=r"[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", pattern_hint="a domain such as gmail.com"),
                    "domains the same-domain check ignores",
                    default=sorted(_sr.free_mail_domains),
                ),
            },
            "self-referral rejection",
            name="attribution.self_referral",
        ),
        "duplicates": Obj(
            {
                "within_days": Int(
                    "a second referral of the same person within this many days is a duplicate",
                    minimum=0,
                    default=_dup.within_days,
                ),
                "winner": Str(
                    "which referrer keeps the credit", enum=("first", "latest"), default=_dup.winner
                ),
                "route_to": Str(
                    "whose owner a duplicate lead goes to: the advocate who keeps the credit, or the one "
                    "whose code it carries",
                    enum=("credited_advocate", "referring_advocate"),
                    default=_dup.route_to,
                ),
            },
            "the same person referred twice",
            name="attribution.duplicates",
        ),
    },
    "how referrals of people already known count",
    name="attribution",
)

# ------------------------------------------------------------------------------------------------ the whole file

# Checked by their compilers in sfconnector/rules/ (every problem at its file:line:col); described here.
REWARDS = OwnedSection(
    "reward rules: fixed amounts, percents with min and max, tiers, promotions, approval, hold, clawback"
    " (docs/admin.md, Rewards)",
    rewards_schema,
)
NOTIFICATIONS = OwnedSection(
    "which referral and reward status changes email the advocate or give the rep a task, with templates"
    " (docs/admin.md, Notifications)",
    notifications_schema,
)

RULES = Obj(
    {
        "routing": Includable(ROUTING),
        "attribution": Includable(ATTRIBUTION),
        "rewards": Includable(REWARDS),
        "notifications": Includable(NOTIFICATIONS),
    },
    "routing, attribution, reward and notification rules (inline, or file: PATH)",
    name="rules",
)

ROOT = Obj(
    {
        "salesforce": Field(SALESFORCE, required=True),
        "state": STATE,
        "stream": STREAM,
        "writer": WRITER,
        "mapping": Includable(MAPPING),
        "rules": Includable(RULES),
        "reconcile": RECONCILE,
        "logging": LOGGING,
        "health": HEALTH,
    },
    "sfconnector configuration (connector.yaml)",
    name="the config",
    key_hints={
        section: f"{section} goes under rules: (rules: {{{section}: ...}}, or rules: {{file: PATH}})"
        for section in ("routing", "attribution", "rewards", "notifications")
    },
)
