"""Configuration: one settings class, read from the environment once, in each service's factory.

Every variable the services read is a field here, with its environment name as the alias, so the
compose-file test can check that docker-compose.yml sets what each service needs.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Annotated, Literal, TypeAlias, TypedDict, cast

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.balancer import parse_targets

# Development-only defaults. Production refuses to start while any of these is still in use.
DEV_INTERNAL_KEY = "dev-internal-key-change-me"
DEV_SEAL_KEY = "ZGV2LXNlYWwta2V5LWNoYW5nZS1tZS0zMi1ieXRlcyE="  # base64 of 32 bytes
DEV_PEPPER = "dev-pepper-change-me"

Service = Literal["gateway", "issuer", "registry", "sweeper"]
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _b64_or_text(value: str) -> bytes | str:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return value


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    # Only the documented names are read: no bare field names such as ENV or HOST, which shells export.
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field("development", validation_alias=_env("TOKENHUB_ENV"))
    host: str = Field("127.0.0.1", validation_alias=_env("TOKENHUB_HOST"))
    log_level: str = Field("INFO", validation_alias=_env("TOKENHUB_LOG_LEVEL"))

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/tokenhub", validation_alias=_env("DATABASE_URL")
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))
    # Every Redis key starts with this, so tests (and several deployments) can share one server.
    redis_prefix: str = Field("th:", validation_alias=_env("TOKENHUB_REDIS_PREFIX"))
    # REDIS_URL names any one node of a Redis Cluster (redis://host:port): the issuer, the gateway's
    # revocation channel, the sweeper and the CLI speak cluster (shared/redis.py).
    redis_cluster: bool = Field(False, validation_alias=_env("TOKENHUB_REDIS_CLUSTER"))

    gateway_port: int = Field(8080, ge=0, le=65535, validation_alias=_env("GATEWAY_PORT"))
    issuer_port: int = Field(8081, ge=0, le=65535, validation_alias=_env("ISSUER_PORT"))
    registry_port: int = Field(8082, ge=0, le=65535, validation_alias=_env("REGISTRY_PORT"))
    sweeper_port: int = Field(8083, ge=0, le=65535, validation_alias=_env("SWEEPER_PORT"))
    # The gateway's metrics-only listener for Prometheus on the internal network (0: none); never
    # publish it.
    gateway_metrics_port: int = Field(0, ge=0, le=65535, validation_alias=_env("GATEWAY_METRICS_PORT"))
    # One URL whose host may resolve to several replicas, or a comma-separated list of URLs.
    issuer_url: str = Field("http://127.0.0.1:8081", validation_alias=_env("TOKENHUB_ISSUER_URL"))
    registry_url: str = Field("http://127.0.0.1:8082", validation_alias=_env("TOKENHUB_REGISTRY_URL"))
    # Seconds between two resolutions of the backend URLs' host names (replicas come and go).
    resolve_interval: float = Field(5.0, gt=0, le=3600, validation_alias=_env("TOKENHUB_RESOLVE_INTERVAL"))
    # Processes of a service on one machine, sharing its port (SO_REUSEPORT): one event loop each.
    gateway_workers: int = Field(1, ge=1, le=64, validation_alias=_env("GATEWAY_WORKERS"))
    issuer_workers: int = Field(1, ge=1, le=64, validation_alias=_env("ISSUER_WORKERS"))
    registry_workers: int = Field(1, ge=1, le=64, validation_alias=_env("REGISTRY_WORKERS"))

    internal_key: str = Field(DEV_INTERNAL_KEY, min_length=16, validation_alias=_env("TOKENHUB_INTERNAL_KEY"))
    seal_key: str = Field(DEV_SEAL_KEY, validation_alias=_env("TOKENHUB_SEAL_KEY"))
    pepper: str = Field(DEV_PEPPER, min_length=16, validation_alias=_env("TOKENHUB_PEPPER"))
    # Used once, when `tokenhub migrate` creates Admin; empty counts as unset (a password is generated).
    admin_password: str | None = Field(None, validation_alias=_env("TOKENHUB_ADMIN_PASSWORD"))
    # Read by `tokenhub migrate` only: the login role the services connect as, which owns no table
    # (so it cannot truncate or alter the audit log); migrate creates it and grants it what the
    # services need. Unset: the services use DATABASE_URL's user, the tables' owner (development).
    service_db_user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", validation_alias=_env("TOKENHUB_SERVICE_DB_USER")
    )
    service_db_password: str | None = Field(None, validation_alias=_env("TOKENHUB_SERVICE_DB_PASSWORD"))

    # Seconds a gateway may reuse a token verification (0: never); revocations drop entries at once.
    verify_cache_ttl: float = Field(1.0, ge=0, le=1.0, validation_alias=_env("TOKENHUB_VERIFY_CACHE_TTL"))
    # Seconds a gateway waits for an internal call before answering "service unavailable".
    backend_timeout: float = Field(5.0, gt=0, validation_alias=_env("TOKENHUB_BACKEND_TIMEOUT"))
    # Seconds a store may take to answer a readiness probe or to hand out a connection.
    store_timeout: float = Field(3.0, gt=0, validation_alias=_env("TOKENHUB_STORE_TIMEOUT"))
    db_pool_max: int = Field(10, ge=1, validation_alias=_env("TOKENHUB_DB_POOL_MAX"))
    # Largest request body any service accepts; larger ones get the dialect's own error.
    # After SIGTERM a service keeps serving, telling each caller it is going (readiness 503, a
    # draining header, connections closed after each reply), until no request has come for a
    # moment or this many seconds have passed; then it stops accepting and finishes what it holds.
    drain_seconds: float = Field(5.0, ge=0, le=300, validation_alias=_env("TOKENHUB_DRAIN_SECONDS"))
    max_body_bytes: int = Field(1 << 20, ge=1024, validation_alias=_env("TOKENHUB_MAX_BODY_BYTES"))
    # Reverse proxies (comma-separated addresses or CIDR networks) whose X-Forwarded-For the gateway
    # believes; empty: none, the socket's peer is the client (docs/DECISIONS.md, "Behind a proxy").
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        (), validation_alias=_env("TOKENHUB_TRUSTED_PROXIES")
    )
    # Whether the gateway serves /metrics on its public port. Off (the default), metrics would tell
    # anyone how busy each route is; Prometheus scrapes GATEWAY_METRICS_PORT on the internal network.
    metrics_public: bool = Field(False, validation_alias=_env("TOKENHUB_METRICS_PUBLIC"))

    zabbix_version: str = Field("6.0.14", validation_alias=_env("TOKENHUB_ZABBIX_VERSION"))
    # Zabbix sessions end after this many idle seconds (Zabbix's default auto-logout is 15 min).
    zabbix_session_idle: int = Field(900, ge=60, validation_alias=_env("TOKENHUB_ZABBIX_SESSION_IDLE"))
    # Failed logins per account within the window before that account's logins are refused.
    login_failures_max: int = Field(5, ge=1, validation_alias=_env("TOKENHUB_LOGIN_FAILURES_MAX"))
    # Higher per address: many honest users can share one address (an office behind NAT).
    address_failures_max: int = Field(30, ge=1, validation_alias=_env("TOKENHUB_ADDRESS_FAILURES_MAX"))
    login_failure_window: int = Field(30, ge=1, validation_alias=_env("TOKENHUB_LOGIN_FAILURE_WINDOW"))
    # Seconds a successful tokens.make credential check is remembered (0: never); docs/chatapp.md.
    credential_cache_ttl: int = Field(
        30, ge=0, le=300, validation_alias=_env("TOKENHUB_CREDENTIAL_CACHE_TTL")
    )

    sweep_interval: float = Field(60.0, gt=0, validation_alias=_env("TOKENHUB_SWEEP_INTERVAL"))
    sweep_batch: int = Field(1000, ge=1, le=10000, validation_alias=_env("TOKENHUB_SWEEP_BATCH"))
    idle_days: int = Field(100, ge=1, validation_alias=_env("TOKENHUB_IDLE_DAYS"))
    # Per-kind overrides of idle_days; unset means idle_days.
    idle_days_zabbix: int | None = Field(None, ge=1, validation_alias=_env("TOKENHUB_IDLE_DAYS_ZABBIX"))
    idle_days_wialon: int | None = Field(None, ge=1, validation_alias=_env("TOKENHUB_IDLE_DAYS_WIALON"))
    idle_days_voucher: int | None = Field(None, ge=1, validation_alias=_env("TOKENHUB_IDLE_DAYS_VOUCHER"))
    voucher_retention_days: int = Field(30, ge=0, validation_alias=_env("TOKENHUB_VOUCHER_RETENTION_DAYS"))

    @field_validator("admin_password", "service_db_user", "service_db_password")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("seal_key")
    @classmethod
    def _seal_key_opens(cls, value: str) -> str:
        from shared.secrets import Sealer  # local import: secrets imports nothing from settings

        # At start, not at the first seal: a malformed key would otherwise surface mid-request.
        try:
            Sealer.from_b64(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; make one with: openssl rand -base64 32") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        from shared.postgres import check_dsn  # local import: only the services with a database need it

        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a postgresql:// URL, e.g. postgresql://user:password@host:5432/tokenhub"
            )
        # Several hosts, as libpq writes them, for a primary and its standbys:
        # postgresql://user:password@h1:5432,h2:5432/tokenhub?target_session_attrs=read-write
        try:
            check_dsn(value)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (e.g. postgresql://user:password@h1:5432,h2:5432/tokenhub"
                "?target_session_attrs=read-write)"
            ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://host:6379/0")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        # A brace in the prefix would make it (part of) every key's Redis Cluster hash tag: every
        # key in one slot, or keys of one script in different ones.
        if "{" in value or "}" in value:
            raise ValueError("must not contain { or } (they delimit Redis Cluster hash tags)")
        return value

    @model_validator(mode="after")
    def _cluster_url(self) -> Settings:
        if self.redis_cluster:
            if self.redis_url.startswith("unix://"):
                raise ValueError("REDIS_URL: a Redis Cluster is reached over TCP: redis://host:port")
            path = self.redis_url.split("://", 1)[1].partition("/")[2].partition("?")[0]
            if path not in ("", "0"):
                raise ValueError("REDIS_URL: a Redis Cluster has only database 0: redis://host:port")
        return self

    @field_validator("issuer_url", "registry_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parse_targets(value)
        except ValueError:
            raise ValueError(
                "must be an http:// URL or a comma-separated list of them, e.g. http://issuer:8081"
            ) from None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())
        except ValueError as exc:
            raise ValueError(f"{exc} (give addresses or networks, e.g. 10.0.0.0/8)") from exc

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.env == "production":
            unsafe = [
                name
                for name, value, default in (
                    ("TOKENHUB_INTERNAL_KEY", self.internal_key, DEV_INTERNAL_KEY),
                    # Compared decoded: base64 has several spellings of the same 32 bytes.
                    ("TOKENHUB_SEAL_KEY", _b64_or_text(self.seal_key), _b64_or_text(DEV_SEAL_KEY)),
                    ("TOKENHUB_PEPPER", self.pepper, DEV_PEPPER),
                )
                if value == default
            ]
            if unsafe:
                raise ValueError(
                    "TOKENHUB_ENV=production refuses the development defaults of " + ", ".join(unsafe)
                )
        return self

    def idle_days_for(self, kind: Literal["zabbix", "wialon", "voucher"]) -> int:
        override: int | None = getattr(self, f"idle_days_{kind}")
        return override if override is not None else self.idle_days

    def workers_of(self, service: Service) -> int:
        """Processes of `service` on this machine (the sweeper runs one: its batches need no more)."""
        return {
            "gateway": self.gateway_workers,
            "issuer": self.issuer_workers,
            "registry": self.registry_workers,
        }.get(service, 1)

    def port_of(self, service: Service) -> int:
        return {
            "gateway": self.gateway_port,
            "issuer": self.issuer_port,
            "registry": self.registry_port,
            "sweeper": self.sweeper_port,
        }[service]


class SettingsError(Exception):
    """Settings that cannot be used, said in one line that names each variable and what it needs."""


def load_settings() -> Settings:
    """The settings from the environment, or SettingsError with one line for a person to act on."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


class _Problem(TypedDict):
    """What `describe` reads of pydantic's ErrorDetails (whose `input` and `ctx` are Any)."""

    loc: tuple[int | str, ...]
    msg: str


# Read once: pydantic-settings types the class itself (its __init__) with Any.
_FIELDS: dict[str, FieldInfo] = Settings.model_fields


def describe(exc: ValidationError) -> str:
    """One line for every problem: the environment variable, then what is wrong with it. Never the
    value itself: it may be a key."""
    problems = []
    for error in cast(list[_Problem], exc.errors(include_url=False, include_input=False)):
        message = error["msg"].removeprefix("Value error, ")
        # Located by the variable's name (the field's alias), or by the field's own name.
        where = str(error["loc"][0]) if error["loc"] else ""
        if where in _FIELDS:
            where = env_name(where)
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def env_name(field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = _FIELDS[field].validation_alias
    assert isinstance(alias, AliasChoices)
    name = alias.choices[0]
    assert isinstance(name, str)
    return name


# Which settings each service depends on. The compose test checks that docker-compose.yml sets every
# one of them for that service, since most defaults (loopback URLs, development keys) are wrong there.
# All three secrets are common: production refuses a development default in any of them, everywhere.
COMMON_FIELDS = ("env", "host", "log_level", "internal_key", "seal_key", "pepper")
SERVICE_FIELDS: dict[Service, tuple[str, ...]] = {
    "gateway": (
        *COMMON_FIELDS,
        "gateway_port",
        "gateway_metrics_port",
        "gateway_workers",
        "issuer_url",
        "registry_url",
        "resolve_interval",
        "redis_url",
        "redis_prefix",
        "redis_cluster",
    ),
    "issuer": (
        *COMMON_FIELDS,
        "issuer_port",
        "issuer_workers",
        "redis_url",
        "redis_prefix",
        "redis_cluster",
        "registry_url",
        "resolve_interval",
    ),
    "registry": (*COMMON_FIELDS, "registry_port", "registry_workers", "database_url"),
    "sweeper": (
        *COMMON_FIELDS,
        "sweeper_port",
        "database_url",
        "redis_url",
        "redis_prefix",
        "redis_cluster",
    ),
}
