"""`load_config`: read everything, report everything, then freeze."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfconnector.config import _sections as s
from sfconnector.config._compile import (
    compile_mapping,
    compile_owned_section,
    compile_routing,
    state_path,
)
from sfconnector.config._spec import INVALID, Ctx, Spec
from sfconnector.config._yaml import LMap, Loc, read_yaml
from sfconnector.config.model import (
    AuthConfig,
    BatchConfig,
    Config,
    HealthConfig,
    LoggingConfig,
    ReconcileConfig,
    SalesforceConfig,
    StateConfig,
    StreamConfig,
    WriterConfig,
)
from sfconnector.errors import ConfigError, ConfigProblem
from sfconnector.mapping.catalog import FieldCatalog, load_catalog
from sfconnector.rules.model import (
    AttributionPolicy,
    DuplicatePolicy,
    ExistingLeadPolicy,
    ExistingOpportunityPolicy,
    SelfReferralPolicy,
)
from sfconnector.rules.notifications import compile_notifications
from sfconnector.rules.rewards import compile_rewards

SCHEMA_ID = "https://sfconnector.dev/schema/connector.schema.json"


# Sections that may live in a file of their own (`file: PATH`), by the name `schema --section` knows them.
SECTIONS: dict[str, Spec] = {
    "mapping": s.MAPPING,
    "rules": s.RULES,
    "routing": s.ROUTING,
    "attribution": s.ATTRIBUTION,
    "rewards": s.REWARDS,
    "notifications": s.NOTIFICATIONS,
}


def config_json_schema(section: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of connector.yaml, or of one section for a file named by `file:`.

    Built from the very specs the loader checks with.
    """
    defs: dict[str, Any] = {}
    spec = s.ROOT if section is None else SECTIONS[section]
    body = spec.json_schema(defs)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID if section is None else SCHEMA_ID.replace("/connector.", f"/connector.{section}."),
        "title": "sfconnector configuration" + (f": {section}" if section else ""),
        **body,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _section(root: Any, key: str) -> Any:
    return root.get(key) if isinstance(root, LMap) else None


def _valid(value: Any) -> Any:
    return None if value is INVALID else value


def _health(section: LMap, ctx: Ctx) -> HealthConfig:
    if not isinstance(section.get("listen"), str) or not isinstance(section.get("enabled"), bool):
        return HealthConfig()  # a shape problem, reported already
    host, _, port = section["listen"].rpartition(":")
    if not 0 < int(port) < 65536:
        ctx.add(section.loc_of("listen"), f"port {port} is out of range", "use 1-65535")
    return HealthConfig(
        enabled=section["enabled"],
        host=host.strip("[]"),
        port=int(port),
        unhealthy_after_seconds=section.get("unhealthy_after", HealthConfig.unhealthy_after_seconds),
        api_left_alert_share=section.get("api_left_alert", HealthConfig.api_left_alert_share),
    )


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    catalog: FieldCatalog | None = None,
) -> Config:
    """Load, check and freeze a config file (and the files it names); raise one ConfigError listing every problem.

    `env` defaults to the process environment (for `${VAR}` secrets and `$CREDENTIALS_DIRECTORY`).
    """
    shown = os.fspath(path)
    problems: list[ConfigProblem] = []
    ctx = Ctx(problems, shown, dict(os.environ) if env is None else dict(env))
    data = read_yaml(Path(shown), shown, problems)
    if data is None:
        raise ConfigError(problems)
    if not isinstance(data, LMap):
        raise ConfigError(
            [
                ConfigProblem(
                    shown, 1, 1, "the config must be a mapping of sections", "see connector.yaml.example"
                )
            ]
        )
    # Sections with shape problems come back INVALID; the others are still checked against the known fields,
    # so one run reports everything.
    root = s.ROOT.check_partial(data, Loc(shown, 1, 1), ctx)
    if not isinstance(root, LMap):
        raise ConfigError(problems)
    known = catalog or load_catalog()
    mapping_section = _valid(_section(root, "mapping"))
    mapping = compile_mapping(mapping_section if isinstance(mapping_section, LMap) else None, ctx, known)
    known = known.with_fields(mapping.additional_fields)
    rules = _valid(_section(root, "rules"))
    rules = rules if isinstance(rules, LMap) else None
    routing_section = _valid(_section(rules, "routing"))
    routing = compile_routing(
        routing_section if isinstance(routing_section, LMap) else None, ctx, known, mapping
    )
    rewards = None
    rewards_value = _section(rules, "rewards")
    if rewards_value is not None and rules is not None:
        rewards = compile_owned_section(
            compile_rewards,
            rewards_value,
            rules.loc_of("rewards"),
            ctx,
            opportunity_fields=known.field_names("Opportunity"),
            advocate_fields=known.field_names(mapping.advocate.object),
        )
    notifications = None
    notifications_value = _section(rules, "notifications")
    if notifications_value is not None and rules is not None:
        notifications = compile_owned_section(
            compile_notifications,
            notifications_value,
            rules.loc_of("notifications"),
            ctx,
        )
    health = _health(root["health"], ctx) if isinstance(root.get("health"), LMap) else HealthConfig()
    if problems:
        raise ConfigError(problems)
    return _freeze(root, ctx, mapping, routing, rewards, notifications, health)


def _freeze(
    root: LMap,
    ctx: Ctx,
    mapping: Any,
    routing: Any,
    rewards: Any,
    notifications: Any,
    health: HealthConfig,
) -> Config:
    sf, auth = root["salesforce"], root["salesforce"]["auth"]
    stream, writer = root["stream"], root["writer"]
    attribution = root["rules"]["attribution"]
    reconcile, logging = root["reconcile"], root["logging"]
    return Config(
        source=Path(ctx.file),
        salesforce=SalesforceConfig(
            login_url=sf["login_url"].rstrip("/"),
            instance_url=sf["instance_url"].rstrip("/") if sf["instance_url"] else None,
            api_version=sf["api_version"],
            ca_bundle=sf["ca_bundle"],
            client_name=sf["client_name"],
            timeout_seconds=sf["timeout"],
            auth=AuthConfig(**dict(auth)),
        ),
        state=StateConfig(path=state_path(root["state"]["path"], ctx.env, ctx.file)),
        stream=StreamConfig(
            channels=tuple(stream["channels"]),
            start=stream["start"],
            batch=BatchConfig(**dict(stream["batch"])),
            max_in_flight=stream["max_in_flight"],
        ),
        writer=WriterConfig(
            batch_size=writer["batch_size"],
            max_retries=writer["max_retries"],
            retry_initial_seconds=writer["retry_initial"],
            retry_max_seconds=writer["retry_max"],
            use_composite=writer["use_composite"],
            drain_timeout_seconds=writer["drain_timeout"],
        ),
        mapping=mapping,
        routing=routing,
        attribution=AttributionPolicy(
            existing_lead=ExistingLeadPolicy(**dict(attribution["existing_lead"])),
            existing_opportunity=ExistingOpportunityPolicy(**dict(attribution["existing_opportunity"])),
            self_referral=SelfReferralPolicy(
                reject_same_email=attribution["self_referral"]["reject_same_email"],
                reject_same_domain=attribution["self_referral"]["reject_same_domain"],
                free_mail_domains=frozenset(
                    d.lower() for d in attribution["self_referral"]["free_mail_domains"]
                ),
            ),
            duplicates=DuplicatePolicy(**dict(attribution["duplicates"])),
        ),
        rewards=rewards,
        notifications=notifications,
        reconcile=ReconcileConfig(period_seconds=reconcile["period"], lookback_seconds=reconcile["lookback"]),
        logging=LoggingConfig(level=logging["level"], format=logging["format"]),
        health=health,
    )
