"""docker-compose.yml checked against the code, without a Docker engine.

The compose file is parsed with PyYAML and compared with `shared.settings`: every service gets each
setting SERVICE_FIELDS says it depends on, ports and backend URLs agree, the secrets are required
interpolations, only the migration connects to PostgreSQL as the tables' owner, metrics stay off the
published port, and the environment compose would hand each process builds a production Settings.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from shared.postgres import Hosts, check_dsn, hosts_of
from shared.settings import SERVICE_FIELDS, Service, Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

SERVICES: tuple[Service, ...] = tuple(SERVICE_FIELDS)
STORES = ("postgres", "redis")
MIGRATE = "migrate"
# `tokenhub migrate` builds the same Settings as the services and uses these; it also creates the
# role the services connect as.
MIGRATE_FIELDS = (
    "env",
    "database_url",
    "pepper",
    "seal_key",
    "internal_key",
    "service_db_user",
    "service_db_password",
)
# The settings each process compose starts depends on: the four services and the migration.
PROCESS_FIELDS: dict[str, tuple[str, ...]] = {
    **{service: fields for service, fields in SERVICE_FIELDS.items()},
    MIGRATE: MIGRATE_FIELDS,
}
PROCESSES = tuple(PROCESS_FIELDS)
SECRET_FIELDS = ("internal_key", "seal_key", "pepper")
SECRET_VARS = tuple(env_name(field) for field in SECRET_FIELDS)
SERVICE_DB_USER = env_name("service_db_user")
SERVICE_DB_PASSWORD = env_name("service_db_password")
# Every value the operator must generate before compose starts: the secrets the services refuse to
# run with a development default, and the password of the services' database role.
GENERATED_VARS = (*SECRET_VARS, SERVICE_DB_PASSWORD)
# The processes that connect to PostgreSQL; all but the migration connect as the services' role.
DATABASE_PROCESSES = tuple(name for name, fields in PROCESS_FIELDS.items() if "database_url" in fields)
SERVICE_ROLE_PROCESSES = tuple(name for name in DATABASE_PROCESSES if name != MIGRATE)
# The backend URL settings of each client service, and the compose service each URL must name.
BACKEND_URLS: dict[Service, tuple[tuple[str, Service], ...]] = {
    "gateway": (("issuer_url", "issuer"), ("registry_url", "registry")),
    "issuer": (("registry_url", "registry"),),
}


# --- a small Compose interpolation -----------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset or empty: compose refuses to start."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?msg}`, `${VAR?msg}`."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name: str = match["braced"] or match["bare"]
        value = variables.get(name)
        op: str | None = match["op"]
        if op is None:
            return value or ""  # compose warns and substitutes an empty string
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return str(match["arg"]) if missing else str(value)
        if missing:
            raise MissingVariable(f"{name}: {match['arg']}")
        return str(value)

    return _INTERPOLATION.sub(replace, text)


def interpolations(text: str) -> Iterator[tuple[str, str | None]]:
    """(variable name, operator) for each interpolation in `text`; the operator is None for `${VAR}`."""
    for match in _INTERPOLATION.finditer(text):
        if not match["escaped"]:
            yield match["braced"] or match["bare"], match["op"]


def test_interpolate_follows_compose_rules() -> None:
    variables = {"SET": "value", "EMPTY": ""}
    assert interpolate("a${SET}b$SET", variables) == "avaluebvalue"
    assert interpolate("${UNSET:-fallback} ${EMPTY:-fallback} ${EMPTY-fallback}", variables) == (
        "fallback fallback "
    )
    assert interpolate("${SET:?needed} $$HOME", variables) == "value $HOME"
    with pytest.raises(MissingVariable, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", variables)
    with pytest.raises(MissingVariable, match="UNSET: needed"):
        interpolate("${UNSET?needed}", variables)


# --- reading the files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's `environment:` as a dict, from either the map or the list form. None is a variable
    declared without a value (passed through from the operator's shell or .env when set there)."""
    declared = service.get("environment", {})
    if isinstance(declared, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in declared]
        declared = {key: value for key, value in pairs}
    assert isinstance(declared, dict)
    result: dict[str, str | None] = {}
    for key, value in declared.items():
        assert not isinstance(value, bool), f"{key}: quote booleans, compose rejects them"
        result[str(key)] = None if value is None else str(value)
    return result


def words(command: object) -> list[str]:
    """A `command:` or healthcheck `test:` as a list of words, whichever form it is written in."""
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list)
    return [str(word) for word in command]


def parse_env_file(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The `KEY=value` assignments of an env file, and for each key the `python -c ...` command its
    comment block documents for generating the value."""
    values: dict[str, str] = {}
    commands: dict[str, str] = {}
    documented: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            documented = None
        elif line.startswith("#"):
            comment = line.lstrip("#").strip()
            if comment.startswith("python -c"):
                documented = comment
        else:
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not an assignment: {raw!r}"
            values[key.strip()] = value.strip()
            if documented is not None:
                commands[key.strip()] = documented
            documented = None
    return values, commands


@pytest.fixture(scope="module")
def env_example() -> tuple[dict[str, str], dict[str, str]]:
    return parse_env_file(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def operator_variables(env_example: tuple[dict[str, str], dict[str, str]]) -> dict[str, str]:
    """.env.example as an operator fills it in: each secret generated by the command it documents."""
    values, commands = env_example
    variables = dict(values)
    for name in GENERATED_VARS:
        assert name in commands, f".env.example documents no `python -c` command to generate {name}"
        argv = shlex.split(commands[name])
        assert argv[0] == "python"
        generated = subprocess.run(
            [sys.executable, *argv[1:]], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert generated, f"the documented command for {name} printed nothing"
        variables[name] = generated
    return variables


def resolved_environment(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """The environment compose would give the container, with `variables` as the operator's .env."""
    resolved: dict[str, str] = {}
    for key, value in environment(service).items():
        if value is None:
            if key in variables:
                resolved[key] = variables[key]
        else:
            resolved[key] = interpolate(value, variables)
    return resolved


def port_field(service: str) -> str:
    field = f"{service}_port"
    assert field in Settings.model_fields
    return field


def healthcheck_ports(service: Mapping[str, Any]) -> list[int]:
    test = " ".join(words(service["healthcheck"]["test"]))
    return [int(port) for port in re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/healthz", test)]


def published_container_ports(service: Mapping[str, Any], variables: Mapping[str, str]) -> set[int]:
    """The container ports a service publishes on the host, from the short (`[ip:][host:]container
    [/proto]`, ranges allowed) or the long (`target:`) syntax."""
    published: set[int] = set()
    for mapping in service.get("ports") or []:
        if isinstance(mapping, dict):
            container = str(mapping["target"])
        else:
            container = interpolate(str(mapping), variables).rsplit(":", 1)[-1]
        first, _, last = container.split("/", 1)[0].partition("-")
        published.update(range(int(first), int(last or first) + 1))
    return published


def test_published_container_ports_reads_every_syntax() -> None:
    ports = ["8080", "${PUBLISH:-9000}:8081", "127.0.0.1:9002:8082/tcp", "9003-9004:8083-8084"]
    service = {"ports": [*ports, {"target": 8085, "published": "9005"}]}
    assert published_container_ports(service, {}) == set(range(8080, 8086))
    assert published_container_ports({}, {}) == set()


# --- (a) the services exist ------------------------------------------------------------------------


def test_every_service_is_defined(services: dict[str, dict[str, Any]]) -> None:
    expected = {*SERVICES, *STORES, MIGRATE}
    assert expected - set(services) == set()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_own_module_from_the_shared_image(
    services: dict[str, dict[str, Any]], name: Service
) -> None:
    service = services[name]
    assert words(service["command"]) == ["python", "-m", name]
    assert service["build"] == services["gateway"]["build"] == services[MIGRATE]["build"]
    assert service["build"]["context"] == "."
    assert service["restart"] == "unless-stopped"


def test_migrate_runs_once(services: dict[str, dict[str, Any]]) -> None:
    migrate = services[MIGRATE]
    assert words(migrate["command"]) == ["tokenhub", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


# --- (b) every service gets the settings it depends on ---------------------------------------------


@pytest.mark.parametrize("name", PROCESSES)
def test_service_sets_every_setting_it_depends_on(services: dict[str, dict[str, Any]], name: str) -> None:
    env = environment(services[name])
    missing = [env_name(field) for field in PROCESS_FIELDS[name] if env.get(env_name(field)) is None]
    assert missing == []


@pytest.mark.parametrize("name", SERVICES)
def test_service_listens_on_every_interface(services: dict[str, dict[str, Any]], name: Service) -> None:
    # The default 127.0.0.1 would be unreachable from the other containers.
    assert environment(services[name]).get(env_name("host")) == "0.0.0.0"


# --- (c) ports and URLs agree ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_healthcheck_probes_the_service_port(services: dict[str, dict[str, Any]], name: Service) -> None:
    service = services[name]
    port = environment(service).get(env_name(port_field(name)))
    assert port is not None
    assert healthcheck_ports(service) == [int(port)]
    test = words(service["healthcheck"]["test"])
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen(" in test[3]


def test_only_the_gateway_publishes_a_port(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if service.get("ports")] == ["gateway"]
    (mapping,) = services["gateway"]["ports"]
    assert isinstance(mapping, str)
    host, container = interpolate(mapping, {}).rsplit(":", 1)
    gateway_port = environment(services["gateway"])[env_name("gateway_port")]
    assert container == gateway_port
    assert host == "8080"
    assert interpolate(mapping, {"GATEWAY_PUBLISH": "9000"}) == f"9000:{gateway_port}"


@pytest.mark.parametrize(
    ("client", "field", "backend"),
    [(client, field, backend) for client, urls in BACKEND_URLS.items() for field, backend in urls],
)
def test_backend_url_names_the_service_and_its_port(
    services: dict[str, dict[str, Any]], client: Service, field: str, backend: Service
) -> None:
    url = environment(services[client]).get(env_name(field))
    assert url is not None
    backend_port = environment(services[backend]).get(env_name(port_field(backend)))
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
        "http",
        backend,
        int(str(backend_port)),
        "",
    )
    assert url.endswith(f":{backend_port}")


# --- (d) scalable ----------------------------------------------------------------------------------


def test_no_service_has_a_fixed_container_name(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if "container_name" in service] == []


# --- (e), (f) the stores ---------------------------------------------------------------------------


def test_redis_appends_only(services: dict[str, dict[str, Any]]) -> None:
    command = words(services["redis"]["command"])
    assert "--appendonly" in command
    assert command[command.index("--appendonly") + 1] == "yes"


def test_store_images_and_health_checks(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert "pg_isready" in " ".join(words(services["postgres"]["healthcheck"]["test"]))
    assert words(services["redis"]["healthcheck"]["test"])[-2:] == ["redis-cli", "ping"]


REDIS_PROCESSES = tuple(name for name, fields in PROCESS_FIELDS.items() if "redis_url" in fields)


def test_one_redis_is_the_default_and_a_cluster_is_one_setting_away(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str]
) -> None:
    """Every process that talks to Redis is told the same about whether it is a cluster (one
    anchor): one Redis, the `redis` service, by default. The file says how to point them at an
    external Redis Cluster instead, and those settings are ones the services accept."""
    assert set(REDIS_PROCESSES) == {"gateway", "issuer", "sweeper"}
    for name in REDIS_PROCESSES:
        settings = Settings.model_validate(resolved_environment(services[name], operator_variables))
        assert settings.redis_cluster is False
        assert urlsplit(settings.redis_url).hostname == "redis"
    text = COMPOSE_FILE.read_text()
    assert "x-redis-cluster: &redis-cluster" in text
    assert "To use a Redis Cluster of your own" in text
    env = resolved_environment(services["issuer"], operator_variables)
    external = Settings.model_validate(
        {**env, env_name("redis_url"): "redis://redis-node-1:6379", env_name("redis_cluster"): "true"}
    )
    assert external.redis_cluster is True


@pytest.mark.parametrize(("store", "target"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")])
def test_stores_keep_their_data_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], store: str, target: str
) -> None:
    mounts = [str(volume).split(":") for volume in services[store].get("volumes", [])]
    sources = [source for source, mounted, *_ in mounts if mounted == target]
    assert len(sources) == 1
    assert sources[0] in (compose.get("volumes") or {})


@pytest.mark.parametrize("name", PROCESSES)
def test_dependencies_wait_for_migrations_and_healthy_stores(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    depends_on = services[name].get("depends_on", {})
    if name != MIGRATE and env_name("database_url") in env:
        assert depends_on[MIGRATE]["condition"] == "service_completed_successfully"
    for store, field in (("postgres", "database_url"), ("redis", "redis_url")):
        if env_name(field) in env:
            assert depends_on[store]["condition"] == "service_healthy"


# --- (g) production --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROCESSES)
def test_everything_runs_in_production(services: dict[str, dict[str, Any]], name: str) -> None:
    assert environment(services[name]).get(env_name("env")) == "production"


# --- (h) secrets are required ----------------------------------------------------------------------


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_secrets_are_required_interpolations(compose: dict[str, Any]) -> None:
    used = [
        (name, op)
        for text in _strings(compose)
        for name, op in interpolations(text)
        if name in GENERATED_VARS
    ]
    assert {name for name, _ in used} == set(GENERATED_VARS)
    assert [(name, op) for name, op in used if op != ":?"] == []


def test_secrets_are_never_written_into_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if key in GENERATED_VARS:
                assert value is not None
                assert re.fullmatch(rf"\$\{{{key}:\?[^}}]*\}}", value), f"{name}: {key}={value}"


@pytest.mark.parametrize("name", SERVICE_ROLE_PROCESSES)
def test_service_database_password_comes_only_from_the_operator(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str], name: str
) -> None:
    # The whole password part of the URL is the required interpolation: a literal password, or one
    # with a fixed prefix or suffix, would not come out as exactly the operator's value.
    raw = environment(services[name])[env_name("database_url")]
    assert raw is not None
    assert [op for var, op in interpolations(raw) if var == SERVICE_DB_PASSWORD] == [":?"]
    for password in ("first-operator-value", operator_variables[SERVICE_DB_PASSWORD]):
        url = interpolate(raw, {**operator_variables, SERVICE_DB_PASSWORD: password})
        assert urlsplit(url).password == password


@pytest.mark.parametrize("name", DATABASE_PROCESSES)
@pytest.mark.parametrize("how", ["empty", "unset"])
def test_database_processes_do_not_start_without_the_service_password(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str], name: str, how: str
) -> None:
    # The three secrets filled in, the role's password not: migrate would make a role nobody can log
    # in as, and the services would fail to connect, so compose must refuse before that.
    variables = dict(operator_variables)
    if how == "empty":
        variables[SERVICE_DB_PASSWORD] = ""
    else:
        del variables[SERVICE_DB_PASSWORD]
    with pytest.raises(MissingVariable, match=SERVICE_DB_PASSWORD):
        resolved_environment(services[name], variables)


def test_admin_password_is_passed_through_never_defaulted(services: dict[str, dict[str, Any]]) -> None:
    # An empty string would become the Admin's password; unset, `tokenhub migrate` generates one.
    env = environment(services[MIGRATE])
    assert env_name("admin_password") in env
    value = env[env_name("admin_password")]
    assert value is None or ":?" in value


def test_env_example_documents_every_required_variable(
    compose: dict[str, Any], env_example: tuple[dict[str, str], dict[str, str]]
) -> None:
    values, _ = env_example
    required = {name for text in _strings(compose) for name, op in interpolations(text) if op in (":?", "?")}
    assert required >= set(GENERATED_VARS)
    assert required - set(values) == set()


@pytest.mark.parametrize("name", PROCESSES)
def test_env_example_copied_unchanged_does_not_start(
    services: dict[str, dict[str, Any]], env_example: tuple[dict[str, str], dict[str, str]], name: str
) -> None:
    # The secrets are left empty there, so `cp .env.example .env` cannot start with published secrets.
    values, _ = env_example
    assert {secret: values.get(secret) for secret in GENERATED_VARS} == dict.fromkeys(GENERATED_VARS, "")
    with pytest.raises(MissingVariable):
        resolved_environment(services[name], values)


# --- (i) the environment compose hands each process builds a production Settings -------------------


@pytest.mark.parametrize("name", PROCESSES)
def test_service_environment_builds_production_settings(
    services: dict[str, dict[str, Any]],
    operator_variables: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    # model_validate does not read os.environ or .env files; this proves nothing leaks in from them.
    monkeypatch.setenv(env_name("env"), "development")
    monkeypatch.setenv(env_name("host"), "127.0.0.1")
    env = resolved_environment(services[name], operator_variables)

    settings = Settings.model_validate(env)

    assert settings.env == "production"
    for field in SECRET_FIELDS:
        assert getattr(settings, field) == operator_variables[env_name(field)]
    assert settings.metrics_public is False
    if name == MIGRATE:
        assert settings.service_db_user is not None
        assert settings.service_db_password == operator_variables[SERVICE_DB_PASSWORD]
    else:
        assert settings.service_db_user is None
    if name == "gateway":
        assert settings.gateway_metrics_port not in (0, settings.gateway_port)
    if name != MIGRATE:
        assert settings.host == "0.0.0.0"
        assert [getattr(settings, port_field(name))] == healthcheck_ports(services[name])
    if env_name("database_url") in env:
        assert urlsplit(settings.database_url).hostname == "postgres"
    if env_name("redis_url") in env:
        assert urlsplit(settings.redis_url).hostname == "redis"


@pytest.mark.parametrize("secret", SECRET_VARS)
def test_settings_check_refuses_a_missing_secret(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str], secret: str
) -> None:
    # The check above can fail: without one secret, production falls back to a development default.
    env = resolved_environment(services["gateway"], operator_variables)
    del env[secret]
    with pytest.raises(ValidationError, match=secret):
        Settings.model_validate(env)


def test_database_url_matches_the_postgres_service(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str]
) -> None:
    postgres = resolved_environment(services["postgres"], operator_variables)
    migrate = resolved_environment(services[MIGRATE], operator_variables)
    connecting = [name for name in PROCESSES if env_name("database_url") in environment(services[name])]
    assert connecting == list(DATABASE_PROCESSES)

    # The migration changes the schema, so it connects as the owner the postgres image creates.
    owner = urlsplit(migrate[env_name("database_url")])
    assert (owner.username, owner.password, owner.hostname, owner.port, owner.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "postgres",
        5432,
        "/" + postgres["POSTGRES_DB"],
    )
    # Everything else connects as the role the migration creates, which owns no table.
    role = migrate[SERVICE_DB_USER]
    assert role != postgres["POSTGRES_USER"]
    for name in SERVICE_ROLE_PROCESSES:
        url = urlsplit(resolved_environment(services[name], operator_variables)[env_name("database_url")])
        assert (url.username, url.password, url.hostname, url.port, url.path) == (
            role,
            migrate[SERVICE_DB_PASSWORD],
            "postgres",
            5432,
            "/" + postgres["POSTGRES_DB"],
        ), name


def test_an_external_multi_host_postgres_is_one_variable(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str]
) -> None:
    """TOKENHUB_DATABASE_HOSTS (docker-compose.yml's comment) points every process that connects at
    the hosts of an external primary and its standbys, in order; the settings take that URL and
    ask for the host that takes writes."""
    variables = {**operator_variables, "TOKENHUB_DATABASE_HOSTS": "pg-a:5432,pg-b:5433"}
    for name in DATABASE_PROCESSES:
        url = resolved_environment(services[name], variables)[env_name("database_url")]
        assert [str(host) for host in hosts_of(url)] == ["pg-a:5432", "pg-b:5433"], name
        assert urlsplit(url).path == "/tokenhub", name
        check_dsn(url)
        assert Hosts(url).attrs == "read-write"


@pytest.mark.parametrize("name", SERVICE_ROLE_PROCESSES)
def test_services_are_not_handed_the_role_setup(services: dict[str, dict[str, Any]], name: str) -> None:
    # Only the migration creates the role; a service has its password in DATABASE_URL alone.
    env = environment(services[name])
    assert SERVICE_DB_USER not in env
    assert SERVICE_DB_PASSWORD not in env


# --- (j) metrics stay on the internal network ------------------------------------------------------


def test_gateway_metrics_listener_is_internal(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str]
) -> None:
    gateway = services["gateway"]
    env = environment(gateway)
    metrics_port = env.get(env_name("gateway_metrics_port"))
    assert metrics_port is not None
    assert metrics_port.isdigit()
    assert int(metrics_port) not in (0, int(str(env[env_name("gateway_port")])))
    for variables in ({}, operator_variables):
        assert int(metrics_port) not in published_container_ports(gateway, variables)
    # The comment that tells Prometheus where to scrape names the port compose really sets.
    assert f"gateway:{metrics_port}/metrics" in COMPOSE_FILE.read_text()


@pytest.mark.parametrize("name", [*PROCESSES, *STORES])
def test_metrics_are_never_public(
    services: dict[str, dict[str, Any]], operator_variables: dict[str, str], name: str
) -> None:
    # Any spelling Settings reads as true ("1", "yes", "on", ...) counts; so does a default of true.
    env = resolved_environment(services[name], operator_variables)
    if env_name("metrics_public") in env:
        assert Settings.model_validate(env).metrics_public is False
