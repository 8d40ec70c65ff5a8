"""Settings: development defaults, production's refusal of them, seal-key checks, environment names."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from shared.settings import (
    DEV_INTERNAL_KEY,
    DEV_PEPPER,
    DEV_SEAL_KEY,
    SERVICE_FIELDS,
    Service,
    Settings,
    env_name,
)

REAL_INTERNAL_KEY = "prod-internal-key-0123456789abcdef"
REAL_SEAL_KEY = base64.b64encode(bytes(range(32))).decode()
REAL_PEPPER = "prod-pepper-0123456789abcdef"

ALL_SERVICES: tuple[Service, ...] = ("gateway", "issuer", "registry", "sweeper")
UNSAFE_VARS = ("TOKENHUB_INTERNAL_KEY", "TOKENHUB_SEAL_KEY", "TOKENHUB_PEPPER")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable from the surrounding environment may leak into these tests."""
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)


def set_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENHUB_ENV", "production")
    monkeypatch.setenv("TOKENHUB_INTERNAL_KEY", REAL_INTERNAL_KEY)
    monkeypatch.setenv("TOKENHUB_SEAL_KEY", REAL_SEAL_KEY)
    monkeypatch.setenv("TOKENHUB_PEPPER", REAL_PEPPER)


def test_development_defaults_load() -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.internal_key == DEV_INTERNAL_KEY
    assert settings.seal_key == DEV_SEAL_KEY
    assert settings.pepper == DEV_PEPPER
    assert settings.host == "127.0.0.1"
    assert settings.gateway_port == 8080
    assert settings.issuer_port == 8081
    assert settings.registry_port == 8082
    assert settings.sweeper_port == 8083
    assert settings.redis_prefix == "th:"
    assert settings.admin_password is None
    assert settings.backend_timeout == 5.0


def test_dev_seal_key_is_32_bytes_of_base64() -> None:
    assert len(base64.b64decode(DEV_SEAL_KEY, validate=True)) == 32


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.gateway_port = 1  # type: ignore[misc]


@pytest.mark.parametrize("unsafe_var", UNSAFE_VARS)
def test_production_refuses_each_development_default(
    monkeypatch: pytest.MonkeyPatch, unsafe_var: str
) -> None:
    set_production(monkeypatch)
    monkeypatch.delenv(unsafe_var)  # back to its development default
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    message = str(excinfo.value)
    assert "production" in message
    assert unsafe_var in message
    for other in UNSAFE_VARS:
        if other != unsafe_var:
            assert other not in message


@pytest.mark.parametrize(
    ("unsafe_var", "dev_value"),
    [
        ("TOKENHUB_INTERNAL_KEY", DEV_INTERNAL_KEY),
        ("TOKENHUB_SEAL_KEY", DEV_SEAL_KEY),
        ("TOKENHUB_PEPPER", DEV_PEPPER),
    ],
)
def test_production_refuses_development_default_set_explicitly(
    monkeypatch: pytest.MonkeyPatch, unsafe_var: str, dev_value: str
) -> None:
    set_production(monkeypatch)
    monkeypatch.setenv(unsafe_var, dev_value)
    with pytest.raises(ValidationError, match=unsafe_var):
        Settings()


def test_production_names_every_default_still_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENHUB_ENV", "production")
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    for name in UNSAFE_VARS:
        assert name in str(excinfo.value)


def test_production_starts_with_real_values(monkeypatch: pytest.MonkeyPatch) -> None:
    set_production(monkeypatch)
    settings = Settings()
    assert settings.env == "production"
    assert settings.internal_key == REAL_INTERNAL_KEY
    assert settings.seal_key == REAL_SEAL_KEY
    assert settings.pepper == REAL_PEPPER


def test_production_refuses_dev_seal_key_in_another_base64_spelling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last base64 digit of a 32-byte key carries two unused bits, so several spellings decode
    to the very same key. The development seal key spelled differently is still the development key
    (anyone can read it in the source) and production must refuse it too."""
    alternative = DEV_SEAL_KEY[:-2] + "F="
    assert alternative != DEV_SEAL_KEY
    assert base64.b64decode(alternative, validate=True) == base64.b64decode(DEV_SEAL_KEY)
    set_production(monkeypatch)
    monkeypatch.setenv("TOKENHUB_SEAL_KEY", alternative)
    with pytest.raises(ValidationError, match="TOKENHUB_SEAL_KEY"):
        Settings()


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize(
    ("seal_key", "reason"),
    [
        ("not base64 at all!", "not valid base64"),
        ("ZGV2LXNlYWwta2V5", "32 bytes"),  # valid base64 of 12 bytes
        (base64.b64encode(b"k" * 16).decode(), "32 bytes"),
        (base64.b64encode(b"k" * 33).decode(), "32 bytes"),
        ("", "32 bytes"),
    ],
)
def test_malformed_seal_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: str, seal_key: str, reason: str
) -> None:
    set_production(monkeypatch)
    monkeypatch.setenv("TOKENHUB_ENV", env)
    monkeypatch.setenv("TOKENHUB_SEAL_KEY", seal_key)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENHUB_HOST", "0.0.0.0")
    monkeypatch.setenv("TOKENHUB_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/3")
    monkeypatch.setenv("TOKENHUB_REDIS_PREFIX", "test42:")
    monkeypatch.setenv("GATEWAY_PORT", "9001")
    monkeypatch.setenv("ISSUER_PORT", "9002")
    monkeypatch.setenv("REGISTRY_PORT", "9003")
    monkeypatch.setenv("SWEEPER_PORT", "9004")
    monkeypatch.setenv("TOKENHUB_ISSUER_URL", "http://issuer:9002")
    monkeypatch.setenv("TOKENHUB_REGISTRY_URL", "http://registry:9003")
    monkeypatch.setenv("TOKENHUB_INTERNAL_KEY", REAL_INTERNAL_KEY)
    monkeypatch.setenv("TOKENHUB_SEAL_KEY", REAL_SEAL_KEY)
    monkeypatch.setenv("TOKENHUB_PEPPER", REAL_PEPPER)
    monkeypatch.setenv("TOKENHUB_ADMIN_PASSWORD", "s3cret-admin")
    monkeypatch.setenv("TOKENHUB_BACKEND_TIMEOUT", "1.5")
    monkeypatch.setenv("TOKENHUB_STORE_TIMEOUT", "0.25")
    monkeypatch.setenv("TOKENHUB_DB_POOL_MAX", "3")
    monkeypatch.setenv("TOKENHUB_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("TOKENHUB_ZABBIX_VERSION", "7.0.1")
    monkeypatch.setenv("TOKENHUB_ZABBIX_SESSION_IDLE", "120")
    monkeypatch.setenv("TOKENHUB_LOGIN_FAILURES_MAX", "7")
    monkeypatch.setenv("TOKENHUB_LOGIN_FAILURE_WINDOW", "45")
    monkeypatch.setenv("TOKENHUB_SWEEP_INTERVAL", "2.5")
    monkeypatch.setenv("TOKENHUB_SWEEP_BATCH", "50")
    monkeypatch.setenv("TOKENHUB_IDLE_DAYS", "9")
    monkeypatch.setenv("TOKENHUB_VOUCHER_RETENTION_DAYS", "0")

    settings = Settings()

    assert settings.host == "0.0.0.0"
    assert settings.log_level == "DEBUG"
    assert settings.database_url == "postgresql://u:p@db:5432/x"
    assert settings.redis_url == "redis://cache:6379/3"
    assert settings.redis_prefix == "test42:"
    assert settings.gateway_port == 9001
    assert settings.issuer_port == 9002
    assert settings.registry_port == 9003
    assert settings.sweeper_port == 9004
    assert settings.issuer_url == "http://issuer:9002"
    assert settings.registry_url == "http://registry:9003"
    assert settings.internal_key == REAL_INTERNAL_KEY
    assert settings.seal_key == REAL_SEAL_KEY
    assert settings.pepper == REAL_PEPPER
    assert settings.admin_password == "s3cret-admin"
    assert settings.backend_timeout == 1.5
    assert settings.store_timeout == 0.25
    assert settings.db_pool_max == 3
    assert settings.max_body_bytes == 4096
    assert settings.zabbix_version == "7.0.1"
    assert settings.zabbix_session_idle == 120
    assert settings.login_failures_max == 7
    assert settings.login_failure_window == 45
    assert settings.sweep_interval == 2.5
    assert settings.sweep_batch == 50
    assert settings.idle_days == 9
    assert settings.voucher_retention_days == 0


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ENV", "/root/.ashrc"),  # POSIX sh's start-up file variable, exported in many images
        ("HOST", "workstation.example"),  # exported by tcsh
        ("PEPPER", "not-the-pepper-you-configured"),
    ],
)
def test_only_documented_names_are_read(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    """Each setting is read from its documented variable (`env_name`) only; a bare field name that
    happens to be in the environment (`ENV`, `HOST`, ...) must change nothing."""
    baseline = Settings()
    monkeypatch.setenv(var, value)
    assert Settings() == baseline


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TOKENHUB_ENV", "staging"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_PORT", "-1"),
        ("GATEWAY_PORT", "eighty"),
        ("TOKENHUB_INTERNAL_KEY", "too-short"),
        ("TOKENHUB_PEPPER", "too-short"),
        ("TOKENHUB_BACKEND_TIMEOUT", "0"),
        ("TOKENHUB_STORE_TIMEOUT", "-1"),
        ("TOKENHUB_DB_POOL_MAX", "0"),
        ("TOKENHUB_MAX_BODY_BYTES", "1023"),
        ("TOKENHUB_ZABBIX_SESSION_IDLE", "59"),
        ("TOKENHUB_SWEEP_BATCH", "10001"),
        ("TOKENHUB_VOUCHER_RETENTION_DAYS", "-1"),
    ],
)
def test_out_of_range_values_are_refused(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        Settings()


def test_one_redis_unless_told_it_is_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().redis_cluster is False
    monkeypatch.setenv("TOKENHUB_REDIS_CLUSTER", "true")
    monkeypatch.setenv("REDIS_URL", "redis://redis-node-1:6379")
    assert Settings().redis_cluster is True
    for services in ("gateway", "issuer", "sweeper"):  # everything that talks to Redis
        assert "redis_cluster" in SERVICE_FIELDS[services]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://node:6379/3", "only database 0"),
        ("unix:///run/redis.sock", "over TCP"),
    ],
)
def test_a_cluster_url_names_a_node_over_tcp_and_database_0(
    monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    monkeypatch.setenv("TOKENHUB_REDIS_CLUSTER", "true")
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ValidationError, match=reason):
        Settings()
    monkeypatch.setenv("REDIS_URL", "redis://node:6379/0")
    assert Settings().redis_url == "redis://node:6379/0"


@pytest.mark.parametrize("prefix", ["th{x}:", "{th}:", "th}"])
def test_the_key_prefix_holds_no_hash_tag(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Braces would make the prefix every key's Redis Cluster hash tag: all keys in one slot."""
    monkeypatch.setenv("TOKENHUB_REDIS_PREFIX", prefix)
    with pytest.raises(ValidationError, match="hash tags"):
        Settings()


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("env", "TOKENHUB_ENV"),
        ("host", "TOKENHUB_HOST"),
        ("log_level", "TOKENHUB_LOG_LEVEL"),
        ("database_url", "DATABASE_URL"),
        ("redis_url", "REDIS_URL"),
        ("redis_prefix", "TOKENHUB_REDIS_PREFIX"),
        ("redis_cluster", "TOKENHUB_REDIS_CLUSTER"),
        ("gateway_port", "GATEWAY_PORT"),
        ("issuer_port", "ISSUER_PORT"),
        ("registry_port", "REGISTRY_PORT"),
        ("sweeper_port", "SWEEPER_PORT"),
        ("issuer_url", "TOKENHUB_ISSUER_URL"),
        ("registry_url", "TOKENHUB_REGISTRY_URL"),
        ("internal_key", "TOKENHUB_INTERNAL_KEY"),
        ("seal_key", "TOKENHUB_SEAL_KEY"),
        ("pepper", "TOKENHUB_PEPPER"),
        ("admin_password", "TOKENHUB_ADMIN_PASSWORD"),
        ("backend_timeout", "TOKENHUB_BACKEND_TIMEOUT"),
        ("sweep_interval", "TOKENHUB_SWEEP_INTERVAL"),
    ],
)
def test_env_name_returns_the_alias(field: str, name: str) -> None:
    assert env_name(field) == name


def test_env_names_are_unique_and_upper_case() -> None:
    names = [env_name(field) for field in Settings.model_fields]
    assert len(names) == len(set(names))
    for name in names:
        assert name == name.upper()
        assert name.replace("_", "").isalnum()


def test_env_name_of_unknown_field_fails() -> None:
    with pytest.raises(KeyError):
        env_name("no_such_field")


def test_service_fields_are_settings_fields() -> None:
    assert set(SERVICE_FIELDS) == {"gateway", "issuer", "registry", "sweeper"}
    for fields in SERVICE_FIELDS.values():
        for field in fields:
            assert field in Settings.model_fields
            assert env_name(field)


@pytest.mark.parametrize(
    ("service", "var", "default"),
    [
        ("gateway", "GATEWAY_PORT", 8080),
        ("issuer", "ISSUER_PORT", 8081),
        ("registry", "REGISTRY_PORT", 8082),
        ("sweeper", "SWEEPER_PORT", 8083),
    ],
)
def test_port_of(monkeypatch: pytest.MonkeyPatch, service: Service, var: str, default: int) -> None:
    assert Settings().port_of(service) == default
    monkeypatch.setenv(var, "12345")
    settings = Settings()
    assert settings.port_of(service) == 12345
    for other in ALL_SERVICES:
        if other != service:
            assert settings.port_of(other) != 12345


def test_port_of_unknown_service_fails() -> None:
    with pytest.raises(KeyError):
        Settings().port_of("nope")  # type: ignore[arg-type]
