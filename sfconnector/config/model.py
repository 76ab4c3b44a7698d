"""The frozen configuration the daemon runs on. Built only by `load_config`, after the whole file checked out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sfconnector.mapping.model import SchemaMapping
from sfconnector.rules.model import AttributionPolicy, RoutingRules
from sfconnector.rules.notifications import NotificationTemplates
from sfconnector.rules.rewards import RewardRules

AuthMethod = Literal["jwt", "client_credentials", "refresh_token", "password"]


@dataclass(frozen=True)
class Secret:
    """A secret value read from the environment, a file or a systemd credential; never shown in reprs or logs."""

    source: str  # "${NAME}", "file:/path" or "credential:NAME": safe to show
    value: str = field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __str__(self) -> str:
        return f"<secret from {self.source}>"


@dataclass(frozen=True)
class AuthConfig:
    method: AuthMethod
    client_id: str | None = None
    username: str | None = None
    private_key_file: Path | None = None
    private_key: Secret | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    password: Secret | None = None
    security_token: Secret | None = None


@dataclass(frozen=True)
class SalesforceConfig:
    login_url: str
    auth: AuthConfig
    api_version: str = "59.0"
    instance_url: str | None = None
    ca_bundle: Path | None = None
    client_name: str = "sfconnector"
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class StateConfig:
    path: Path


@dataclass(frozen=True)
class BatchConfig:
    max_events: int = 200
    max_wait_ms: int = 250


@dataclass(frozen=True)
class StreamConfig:
    channels: tuple[str, ...] = ("/data/LeadChangeEvent", "/event/Referral_Submitted__e")
    start: Literal["latest", "earliest"] = "latest"
    batch: BatchConfig = field(default_factory=BatchConfig)
    max_in_flight: int = 1000


@dataclass(frozen=True)
class WriterConfig:
    batch_size: int = 600
    max_retries: int = 8
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 60.0
    use_composite: bool = True
    # SIGTERM's outbox drain; None: derived from the unit's stop timeout (see sfconnector.systemd.drain_limit)
    drain_timeout_seconds: float | None = None


@dataclass(frozen=True)
class ReconcileConfig:
    period_seconds: float = 6 * 3600.0  # 0: only on demand and after a replay gap
    lookback_seconds: float = 7 * 86400.0


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True)
class HealthConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108
    # /healthz answers 503 once batches have kept failing, or the outbox has not drained, for this long
    unhealthy_after_seconds: float = 60.0
    # alert.api_allocation_low is logged when less than this share of the daily API allocation is left
    api_left_alert_share: float = 0.2


@dataclass(frozen=True)
class Config:
    """Everything `connector.yaml` (and the files it names) says, checked and frozen."""

    source: Path
    salesforce: SalesforceConfig
    state: StateConfig
    stream: StreamConfig = field(default_factory=StreamConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    mapping: SchemaMapping = field(default_factory=SchemaMapping)
    routing: RoutingRules = field(default_factory=RoutingRules)
    attribution: AttributionPolicy = field(default_factory=AttributionPolicy)
    rewards: RewardRules | None = None  # None: no rewards section
    notifications: NotificationTemplates | None = None  # None: no notifications section (the defaults apply)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    def summary(self) -> str:
        """One line for `sfconnector validate`."""
        sections = [
            f"org {self.salesforce.login_url} (API {self.salesforce.api_version}, auth {self.salesforce.auth.method})",
            f"{len(self.stream.channels)} channel(s)",
            f"{len(self.routing.rules)} routing rule(s)",
        ]
        if self.rewards is not None:
            sections.append(f"{len(self.rewards.rules)} reward rule(s)")
        return ", ".join(sections)
