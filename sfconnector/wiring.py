"""Config -> the objects that talk to Salesforce and decide: one place, used by run, explain and check."""

from __future__ import annotations

from pathlib import Path

from sfconnector.clock import Clock, system_clock
from sfconnector.config import Config
from sfconnector.errors import ConfigError, ConfigProblem
from sfconnector.pipeline.lifecycle import PipelineLookups, PipelineRules
from sfconnector.pipeline.lookups import OrgLookups
from sfconnector.rules.notifications import NotificationTemplates, compile_notifications
from sfconnector.salesforce import AuthSettings, SalesforceClient, SalesforceSettings, TokenProvider


def _read_key(path: Path, config: Config) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    str(config.source),
                    1,
                    1,
                    f"cannot read the JWT private key {path}: {exc.strerror}",
                    "salesforce.auth.private_key_file; a relative path is relative to the config file",
                )
            ]
        ) from exc


def salesforce_settings(config: Config) -> SalesforceSettings:
    sf = config.salesforce
    auth = sf.auth
    private_key = auth.private_key.reveal() if auth.private_key else None
    if private_key is None and auth.private_key_file is not None:
        private_key = _read_key(auth.private_key_file, config)
    password = auth.password.reveal() if auth.password else None
    if password is not None and auth.security_token is not None:
        password += auth.security_token.reveal()
    return SalesforceSettings(
        login_url=sf.login_url,
        auth=AuthSettings(
            method=auth.method,
            client_id=auth.client_id or "",
            username=auth.username,
            private_key_pem=private_key,
            client_secret=auth.client_secret.reveal() if auth.client_secret else None,
            refresh_token=auth.refresh_token.reveal() if auth.refresh_token else None,
            password=password,
        ),
        api_version=sf.api_version,
        instance_url=sf.instance_url,
        ca_bundle=str(sf.ca_bundle) if sf.ca_bundle else None,
        client_name=sf.client_name,
        timeout_s=sf.timeout_seconds,
    )


def notification_templates(config: Config) -> NotificationTemplates:
    if isinstance(config.notifications, NotificationTemplates):
        return config.notifications
    return compile_notifications(None, lambda *_: None)


def decision_rules(config: Config) -> PipelineRules:
    return PipelineRules(
        mapping=config.mapping,
        routing=config.routing,
        attribution=config.attribution,
        notifications=notification_templates(config),
        rewards=config.rewards,
    )


def connect(config: Config, clock: Clock = system_clock) -> tuple[TokenProvider, SalesforceClient]:
    settings = salesforce_settings(config)
    tokens = TokenProvider(settings, clock=clock)
    return tokens, SalesforceClient(settings, tokens)


def org_lookups(config: Config, client: SalesforceClient) -> OrgLookups:
    return PipelineLookups(client, config.mapping, config.routing)
