"""The connector's configuration: `load_config` reads, checks and freezes connector.yaml.

Every problem in the file (and the files it names) is reported at once as a `ConfigError` listing
`file:line:col: message (hint)`; the result is a tree of frozen dataclasses. `config_json_schema` publishes
the same rules as JSON Schema for editors.
"""

from sfconnector.config._load import config_json_schema, load_config
from sfconnector.config.model import (
    AuthConfig,
    BatchConfig,
    Config,
    HealthConfig,
    LoggingConfig,
    ReconcileConfig,
    SalesforceConfig,
    Secret,
    StateConfig,
    StreamConfig,
    WriterConfig,
)
from sfconnector.errors import ConfigError, ConfigProblem

__all__ = [
    "AuthConfig",
    "BatchConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "HealthConfig",
    "LoggingConfig",
    "ReconcileConfig",
    "SalesforceConfig",
    "Secret",
    "StateConfig",
    "StreamConfig",
    "WriterConfig",
    "config_json_schema",
    "load_config",
]
