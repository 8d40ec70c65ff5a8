"""deploy/kubernetes/ checked against the API schemas and against the code, without a cluster.

Every manifest validates (strict: unknown fields are errors) against the bundled Kubernetes schemas
of kubernetes-validate. Then, as tests/unit/test_compose.py does for docker-compose.yml, the
manifests are compared with `shared.settings`: every process gets each setting it depends on, from
the ConfigMap, the Secret or its own Deployment; ports, probes and backend URLs agree; secrets only
ever come from the Secret; every container runs unprivileged on a read-only root; Services,
autoscalers and disruption budgets point at the Deployments they mean; the gateway's metrics port
is not on its public Service; and the environment each container gets builds a production Settings.
"""

from __future__ import annotations

import asyncio
import copy
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import ValidationError

from registry.migrate import available
from shared.balancer import parse_targets
from shared.settings import SERVICE_FIELDS, Service, Settings, env_name
from tests.unit.test_compose import BACKEND_URLS, MIGRATE_FIELDS, SECRET_FIELDS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
README = K8S / "README.md"

# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
OLDEST_VERSION = "1.29.0"
VERSIONS: tuple[str, ...] = (OLDEST_VERSION, str(kubernetes_validate.latest_version()))

Manifest = dict[str, Any]

SERVICES: tuple[Service, ...] = tuple(SERVICE_FIELDS)
MIGRATE = "migrate"
PROCESS_FIELDS: dict[str, tuple[str, ...]] = {
    **{service: fields for service, fields in SERVICE_FIELDS.items()},
    MIGRATE: MIGRATE_FIELDS,
}
PROCESSES = tuple(PROCESS_FIELDS)
DATABASE_PROCESSES = tuple(name for name, fields in PROCESS_FIELDS.items() if "database_url" in fields)
SERVICE_ROLE_PROCESSES = tuple(name for name in DATABASE_PROCESSES if name != MIGRATE)
# Services that other pods or clients send requests to, through a Service of their name.
SERVED: tuple[Service, ...] = ("gateway", "issuer", "registry")
# Scaled by a HorizontalPodAutoscaler and guarded by a PodDisruptionBudget.
AUTOSCALED: tuple[Service, ...] = ("gateway", "issuer", "registry")

NAME = "tokenhub"  # the ConfigMap's, the Secret's and the image's
IMAGE = "tokenhub"
SETTING_VARS = frozenset(env_name(field) for field in Settings.model_fields)
# Variables whose values are secret, or may hold a password (URLs): only ever from the Secret.
SECRET_VARS = frozenset(
    env_name(field)
    for field in (
        *SECRET_FIELDS,
        "database_url",
        "redis_url",
        "service_db_password",
        "admin_password",
    )
)
# The Secret's values an operator generates with the command the template documents.
GENERATED_KEYS = (*(env_name(field) for field in SECRET_FIELDS), env_name("service_db_password"))
# Which Secret key each process's DATABASE_URL comes from.
SERVICE_DATABASE_URL = "SERVICE_DATABASE_URL"
OWNER_DATABASE_URL = "OWNER_DATABASE_URL"


def _shutdown_timeout() -> int:
    """aiohttp's grace for requests in flight after SIGTERM (shared/web.py, `web.run_app`)."""
    match = re.search(r"shutdown_timeout=(\d+)", (ROOT / "shared" / "web.py").read_text())
    assert match
    return int(match[1])


SHUTDOWN_TIMEOUT_S = _shutdown_timeout()
# CoreDNS's default TTL for cluster records: a caller may see a removed pod's address this long.
DNS_TTL_S = 5


# --- reading the manifests -------------------------------------------------------------------------


def load_documents(path: Path) -> list[Manifest]:
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document is not None]
    for document in documents:
        assert isinstance(document, dict), f"{path.name}: a document that is not a mapping"
    return documents


@cache
def kustomization() -> Manifest:
    document = yaml.safe_load(KUSTOMIZATION.read_text())
    assert isinstance(document, dict)
    return document


def resource_files() -> list[str]:
    resources = kustomization()["resources"]
    assert isinstance(resources, list)
    return [str(resource) for resource in resources]


@cache
def objects() -> tuple[Manifest, ...]:
    """Everything `kubectl apply -k` applies, in the kustomization's order."""
    return tuple(document for name in resource_files() for document in load_documents(K8S / name))


def of_kind(kind: str) -> dict[str, Manifest]:
    found = [document for document in objects() if document["kind"] == kind]
    named = {str(document["metadata"]["name"]): document for document in found}
    assert len(named) == len(found), f"two {kind} objects share a name"
    return named


def one(kind: str, name: str) -> Manifest:
    found = of_kind(kind)
    assert name in found, f"no {kind} named {name}"
    return found[name]


def configmap_data() -> dict[str, str]:
    data = one("ConfigMap", NAME)["data"]
    assert isinstance(data, dict)
    assert all(isinstance(value, str) for value in data.values()), "quote ConfigMap values"
    return {str(key): str(value) for key, value in data.items()}


def workload(process: str) -> Manifest:
    return one("Job", MIGRATE) if process == MIGRATE else one("Deployment", process)


def workloads() -> dict[str, Manifest]:
    return {process: workload(process) for process in PROCESSES}


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    """The init containers and the containers of a workload's pods."""
    spec = pod_spec(manifest)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(process: str) -> dict[str, Any]:
    (container,) = pod_spec(workload(process))["containers"]
    assert container["name"] == process
    assert isinstance(container, dict)
    return container


def every_container() -> Iterator[tuple[str, dict[str, Any]]]:
    for process, manifest in workloads().items():
        for container in containers(manifest):
            yield f"{process}/{container['name']}", container


def env_entries(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    # Named one by one: `envFrom` would hand a service every key, and hide which it depends on.
    assert "envFrom" not in container
    entries = container.get("env", [])
    named = {str(entry["name"]): entry for entry in entries}
    assert len(named) == len(entries), f"{container['name']}: a variable set twice"
    return named


def literal(container: Mapping[str, Any], name: str) -> str:
    entry = env_entries(container)[name]
    assert "valueFrom" not in entry
    return str(entry["value"])


def resolve_env(container: Mapping[str, Any], secret: Mapping[str, str]) -> dict[str, str]:
    """The environment the kubelet would give the container, with `secret` as the Secret's data."""
    config = configmap_data()
    resolved: dict[str, str] = {}
    for name, entry in env_entries(container).items():
        if "value" in entry:
            value = str(entry["value"])
            assert "$(" not in value, f"{name}: no dependent variables"
            resolved[name] = value
            continue
        source = entry["valueFrom"]
        (kind,) = source
        assert kind in ("configMapKeyRef", "secretKeyRef"), f"{name}: {kind}"
        ref = source[kind]
        assert ref["name"] == NAME
        data = config if kind == "configMapKeyRef" else secret
        if ref["key"] in data:
            resolved[name] = data[ref["key"]]
        else:
            assert ref.get("optional") is True, f"{name}: {kind} {ref['key']} does not exist"
    return resolved


def ref_of(entry: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    """(kind, key, optional) of a variable from the ConfigMap or the Secret; None for a literal."""
    source = entry.get("valueFrom")
    if source is None:
        return None
    (kind,) = source
    ref = source[kind]
    return str(kind), str(ref["key"]), bool(ref.get("optional", False))


def port_of(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's or a Service's target port as a number (a name is the container port's)."""
    if isinstance(port, int):
        return port
    named = [entry["containerPort"] for entry in container["ports"] if entry.get("name") == port]
    assert len(named) == 1, f"no container port named {port}"
    return int(named[0])


def service_port(process: Service) -> int:
    return int(literal(main_container(process), env_name(f"{process}_port")))


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def selected_deployments(selector: Mapping[str, str]) -> list[str]:
    return [
        name
        for name, deployment in of_kind("Deployment").items()
        if selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
    ]


_QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>m|Ki|Mi|Gi)?$")
_UNITS = {None: 1.0, "m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}


def quantity(text: object) -> float:
    match = _QUANTITY.match(str(text))
    assert match, f"not a quantity this test reads: {text!r}"
    return float(match["number"]) * _UNITS[match["unit"]]


def test_helpers_read_quantities_and_selectors() -> None:
    assert quantity("500m") == 0.5
    assert quantity("128Mi") == 128 * 2**20
    assert quantity(2) == 2.0
    assert selects({"a": "1"}, {"a": "1", "b": "2"})
    assert not selects({"a": "1", "c": "3"}, {"a": "1", "b": "2"})
    assert not selects({}, {"a": "1"})


# --- the files -------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    files = resource_files()
    assert len(files) == len(set(files))
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name, SECRET_TEMPLATE.name}
    assert set(files) == on_disk
    assert kustomization()["namespace"] == one("Namespace", NAME)["metadata"]["name"]
    # The template's empty values must never replace the real Secret.
    assert SECRET_TEMPLATE.name not in files
    assert [document["kind"] for document in objects()].count("Secret") == 0


def test_kustomization_names_the_image_every_container_runs() -> None:
    (image,) = kustomization()["images"]
    assert image["name"] == IMAGE
    assert image["newName"]
    assert image["newTag"]
    for where, container in every_container():
        assert container["image"] == IMAGE, where
        assert container["imagePullPolicy"] == "IfNotPresent", where


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "path",
    # kustomization.yaml is kustomize's own file, not an API object (checked above).
    sorted(path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION),
    ids=lambda path: path.name,
)
def test_every_manifest_validates(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_validation_is_strict() -> None:
    # The check above can fail: a misspelt field is an error, not silently ignored.
    deployment = copy.deepcopy(one("Deployment", "gateway"))
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_namespaced_release() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    documents = [document for document in yaml.safe_load_all(built) if document]
    (image,) = kustomization()["images"]
    assert len(documents) == len(objects())
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == kustomization()["namespace"]
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            assert container["image"] == f"{image['newName']}:{image['newTag']}"


def test_readme_describes_every_file() -> None:
    text = README.read_text()
    assert "## On Kubernetes" in (ROOT / "README.md").read_text()
    for path in K8S.glob("*.yaml"):
        assert f"`{path.name}`" in text, path.name


# --- what runs -------------------------------------------------------------------------------------


def test_one_deployment_per_service_and_the_migration_job() -> None:
    assert set(of_kind("Deployment")) == set(SERVICES)
    assert set(of_kind("Job")) == {MIGRATE}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_own_module(name: Service) -> None:
    assert main_container(name)["command"] == ["python", "-m", name]


def test_migrate_job_runs_once_as_tokenhub_migrate() -> None:
    job = workload(MIGRATE)
    assert main_container(MIGRATE)["command"] == ["tokenhub", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 0 < job["spec"]["backoffLimit"] <= 10
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_autoscaled_deployments_leave_the_count_to_the_autoscaler() -> None:
    # A fixed `replicas` would reset the autoscaler's count at every `kubectl apply`.
    for name, deployment in of_kind("Deployment").items():
        if name in AUTOSCALED:
            assert "replicas" not in deployment["spec"], name
        else:
            assert deployment["spec"]["replicas"] == 1, name


# --- every process gets the settings it depends on -------------------------------------------------


@pytest.mark.parametrize("process", PROCESSES)
def test_every_variable_is_a_setting(process: str) -> None:
    for container in containers(workload(process)):
        unknown = set(env_entries(container)) - SETTING_VARS
        assert unknown == set(), f"{process}/{container['name']}"


@pytest.mark.parametrize("process", PROCESSES)
def test_process_sets_every_setting_it_depends_on(process: str) -> None:
    entries = env_entries(main_container(process))
    missing = [env_name(field) for field in PROCESS_FIELDS[process] if env_name(field) not in entries]
    assert missing == []
    # A setting it depends on never comes from an optional reference: that could leave it unset.
    optional = [
        name
        for name in (env_name(field) for field in PROCESS_FIELDS[process])
        if (ref := ref_of(entries[name])) is not None and ref[2]
    ]
    assert optional == []


@pytest.mark.parametrize("process", PROCESSES)
def test_references_name_keys_that_exist(process: str) -> None:
    config = configmap_data()
    secret_keys = set(secret_template_data())
    for container in containers(workload(process)):
        for name, entry in env_entries(container).items():
            ref = ref_of(entry)
            if ref is None or ref[2]:
                continue
            kind, key, _ = ref
            assert key in (config if kind == "configMapKeyRef" else secret_keys), f"{process}: {name}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_listens_on_every_interface(name: Service) -> None:
    assert resolve_env(main_container(name), filled_secret())[env_name("host")] == "0.0.0.0"


@pytest.mark.parametrize("process", PROCESSES)
def test_everything_runs_in_production(process: str) -> None:
    assert resolve_env(main_container(process), filled_secret())[env_name("env")] == "production"


# --- ports, probes, URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_container_ports_are_the_settings(name: Service) -> None:
    container = main_container(name)
    ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
    expected = {"http": service_port(name)}
    if name == "gateway":
        expected["metrics"] = int(literal(container, env_name("gateway_metrics_port")))
    assert ports == expected


@pytest.mark.parametrize("name", SERVICES)
def test_probes_ask_the_service_port(name: Service) -> None:
    container = main_container(name)
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert port_of(container, get["port"]) == service_port(name), probe
        assert get.get("scheme", "HTTP") == "HTTP", probe


@pytest.mark.parametrize("name", SERVICES)
def test_probes_outlast_the_checks_behind_them(name: Service) -> None:
    # /readyz may wait for a store (TOKENHUB_STORE_TIMEOUT) or, on the gateway, for a backend
    # (TOKENHUB_BACKEND_TIMEOUT); a probe that gives up first would read a slow answer as a failure.
    # Neither is set in the manifests: the defaults apply.
    field = "backend_timeout" if name == "gateway" else "store_timeout"
    assert env_name(field) not in env_entries(main_container(name))
    waits = Settings.model_fields[field].default
    container = main_container(name)
    assert container["readinessProbe"]["timeoutSeconds"] > waits
    assert container["livenessProbe"]["failureThreshold"] >= 3


@pytest.mark.parametrize(
    ("client", "field", "backend"),
    [(client, field, backend) for client, urls in BACKEND_URLS.items() for field, backend in urls],
)
def test_backend_url_names_the_headless_service_and_its_port(
    client: Service, field: str, backend: Service
) -> None:
    url = resolve_env(main_container(client), filled_secret())[env_name(field)]
    (target,) = parse_targets(url)
    assert (target.scheme, target.host, target.port) == ("http", backend, service_port(backend))
    assert urlsplit(url).path == ""
    service = one("Service", backend)
    # Headless: the name resolves to every ready pod, which the caller balances over itself.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"].get("publishNotReadyAddresses", False) is False
    assert selected_deployments(service["spec"]["selector"]) == [backend]
    # A headless name gives pod addresses: the URL's port must be the container's own.
    (port,) = service["spec"]["ports"]
    assert port["port"] == target.port
    assert port_of(main_container(backend), port["targetPort"]) == target.port


def test_backend_urls_are_shared_settings() -> None:
    # Both callers read the registry's URL from the same ConfigMap key: one place to change it.
    keys = {
        ref_of(env_entries(main_container(client))[env_name(field)])
        for client, urls in BACKEND_URLS.items()
        for field, backend in urls
        if backend == "registry"
    }
    assert keys == {("configMapKeyRef", env_name("registry_url"), False)}


# --- secrets ---------------------------------------------------------------------------------------


@cache
def secret_template() -> Manifest:
    (document,) = load_documents(SECRET_TEMPLATE)
    assert document["kind"] == "Secret"
    assert document["metadata"]["name"] == NAME
    return document


def secret_template_data() -> dict[str, str]:
    data = secret_template()["stringData"]
    assert isinstance(data, dict)
    return {str(key): str(value) for key, value in data.items()}


def documented_commands(text: str) -> dict[str, str]:
    """For each key of the template, the `python -c ...` command its comment block documents."""
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
        elif (key := re.match(r"^\s+([A-Z][A-Z0-9_]*):", raw)) and documented is not None:
            commands[key[1]] = documented
            documented = None
    return commands


@cache
def filled_secret() -> dict[str, str]:
    """The template as an operator fills it in: each generated value made by the command the
    template documents, the URLs in the form it shows."""
    commands = documented_commands(SECRET_TEMPLATE.read_text())
    values: dict[str, str] = {}
    for key in GENERATED_KEYS:
        assert key in commands, f"secret.example.yaml documents no `python -c` command for {key}"
        argv = shlex.split(commands[key])
        assert argv[0] == "python"
        generated = subprocess.run(
            [sys.executable, *argv[1:]], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert generated, f"the documented command for {key} printed nothing"
        values[key] = generated
    role = configmap_data()[env_name("service_db_user")]
    password = values[env_name("service_db_password")]
    values[SERVICE_DATABASE_URL] = f"postgresql://{role}:{password}@postgres:5432/tokenhub"
    values[OWNER_DATABASE_URL] = "postgresql://tokenhub:owner-password-0123456789@postgres:5432/tokenhub"
    values[env_name("redis_url")] = "redis://redis:6379/0"
    assert set(values) == set(secret_template_data())
    return values


def test_secret_template_is_empty_and_complete() -> None:
    data = secret_template_data()
    # Empty values: a copy applied unfilled cannot run (the next test shows that).
    assert data == dict.fromkeys(data, "")
    required = {
        ref[1]
        for process in PROCESSES
        for container in containers(workload(process))
        for entry in env_entries(container).values()
        if (ref := ref_of(entry)) is not None and ref[0] == "secretKeyRef" and not ref[2]
    }
    assert set(data) == required
    optional = {
        ref[1]
        for process in PROCESSES
        for container in containers(workload(process))
        for entry in env_entries(container).values()
        if (ref := ref_of(entry)) is not None and ref[0] == "secretKeyRef" and ref[2]
    }
    text = SECRET_TEMPLATE.read_text()
    for key in optional:
        assert f"# {key}:" in text, f"the template does not mention the optional {key}"
    # The example URL for the services shows the role the Job creates.
    assert f"postgresql://{configmap_data()[env_name('service_db_user')]}:" in text


@pytest.mark.parametrize("process", PROCESSES)
def test_secret_template_applied_unfilled_does_not_start(process: str) -> None:
    env = resolve_env(main_container(process), secret_template_data())
    with pytest.raises(ValidationError):
        Settings.model_validate(env)


@pytest.mark.parametrize("process", PROCESSES)
def test_secrets_come_only_from_the_secret(process: str) -> None:
    for container in containers(workload(process)):
        for name, entry in env_entries(container).items():
            if name in SECRET_VARS:
                ref = ref_of(entry)
                assert ref is not None, f"{process}: {name} is written into the manifest"
                assert ref[0] == "secretKeyRef", f"{process}: {name} from {ref[0]}"


def test_configmap_holds_no_secret() -> None:
    data = configmap_data()
    assert set(data) & SECRET_VARS == set()
    assert set(data) & set(secret_template_data()) == set()
    # Nor anything that looks like a password in a URL, anywhere in the applied manifests.
    credentials = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    for document in objects():
        assert not credentials.search(yaml.safe_dump(document)), document["metadata"]["name"]


def test_only_the_migration_connects_as_the_owner() -> None:
    sources = {
        process: ref_of(env_entries(main_container(process))[env_name("database_url")])
        for process in DATABASE_PROCESSES
    }
    assert sources == {
        **{process: ("secretKeyRef", SERVICE_DATABASE_URL, False) for process in SERVICE_ROLE_PROCESSES},
        MIGRATE: ("secretKeyRef", OWNER_DATABASE_URL, False),
    }
    for process in PROCESSES:
        for container in containers(workload(process)):
            for entry in env_entries(container).values():
                if process != MIGRATE:
                    assert ref_of(entry) != ("secretKeyRef", OWNER_DATABASE_URL, False), process


@pytest.mark.parametrize("process", SERVICE_ROLE_PROCESSES)
def test_services_are_not_handed_the_role_setup(process: str) -> None:
    # Only the migration creates the role; a service has its password in DATABASE_URL alone.
    for container in containers(workload(process)):
        entries = env_entries(container)
        assert env_name("service_db_user") not in entries
        assert env_name("service_db_password") not in entries


@pytest.mark.parametrize("process", PROCESSES)
def test_process_environment_builds_production_settings(
    process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # model_validate does not read os.environ; this proves nothing leaks in from it.
    monkeypatch.setenv(env_name("env"), "development")
    monkeypatch.setenv(env_name("host"), "127.0.0.1")
    secret = filled_secret()
    env = resolve_env(main_container(process), secret)

    settings = Settings.model_validate(env)

    assert settings.env == "production"
    for field in SECRET_FIELDS:
        assert getattr(settings, field) == secret[env_name(field)]
    assert settings.metrics_public is False
    if process == MIGRATE:
        assert settings.service_db_user == configmap_data()[env_name("service_db_user")]
        assert settings.service_db_password == secret[env_name("service_db_password")]
        owner = urlsplit(settings.database_url).username
        assert owner != settings.service_db_user
    else:
        assert settings.service_db_user is None
        assert settings.host == "0.0.0.0"
        service = cast(Service, process)
        assert settings.port_of(service) == service_port(service)
    if process in SERVICE_ROLE_PROCESSES:
        url = urlsplit(settings.database_url)
        assert url.username == configmap_data()[env_name("service_db_user")]
        assert url.password == secret[env_name("service_db_password")]
    if process == "gateway":
        assert settings.gateway_metrics_port not in (0, settings.gateway_port)


# --- running unprivileged --------------------------------------------------------------------------


def image_user() -> int:
    match = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match
    return int(match[1])


@pytest.mark.parametrize("process", PROCESSES)
def test_every_container_runs_unprivileged_on_a_read_only_root(process: str) -> None:
    spec = pod_spec(workload(process))
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == image_user() == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in containers(workload(process)):
        context = container["securityContext"]
        where = f"{process}/{container['name']}"
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == image_user(), where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        assert context.get("privileged", False) is False, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where


@pytest.mark.parametrize("process", PROCESSES)
def test_pods_share_nothing_with_the_node_or_the_api(process: str) -> None:
    spec = pod_spec(workload(process))
    assert spec["automountServiceAccountToken"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(key, False) is False, key
    for volume in spec.get("volumes", []):
        assert set(volume) == {"name", "emptyDir"}, volume["name"]


def test_service_links_are_off_in_every_pod() -> None:
    # Kubernetes sets <SERVICE>_PORT=tcp://<ip>:<port> in every pod for every Service with a cluster
    # IP; for the Service `gateway` that is GATEWAY_PORT, a setting every process reads, which would
    # then refuse to start. So the links must be off, in every pod.
    linked = {
        name.upper().replace("-", "_") + "_PORT"
        for name, service in of_kind("Service").items()
        if service["spec"].get("clusterIP") != "None"
    }
    assert linked & SETTING_VARS == {env_name("gateway_port")}
    for process in PROCESSES:
        assert pod_spec(workload(process))["enableServiceLinks"] is False, process


@pytest.mark.parametrize("process", PROCESSES)
def test_every_container_requests_resources_and_limits_memory(process: str) -> None:
    for container in containers(workload(process)):
        resources = container["resources"]
        where = f"{process}/{container['name']}"
        assert quantity(resources["requests"]["cpu"]) > 0, where
        assert quantity(resources["limits"]["memory"]) >= quantity(resources["requests"]["memory"]) > 0, where


# --- graceful shutdown -----------------------------------------------------------------------------


def prestop_sleep(container: Mapping[str, Any]) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    compile(command[2], "preStop", "exec")
    match = re.fullmatch(r"import time; time\.sleep\((\d+(?:\.\d+)?)\)", command[2])
    assert match, command[2]
    return float(match[1])


@pytest.mark.parametrize("name", SERVED)
def test_served_pods_leave_the_service_before_they_stop(name: Service) -> None:
    sleep = prestop_sleep(main_container(name))
    grace = pod_spec(workload(name))["terminationGracePeriodSeconds"]
    assert grace >= sleep + SHUTDOWN_TIMEOUT_S + 5
    if one("Service", name)["spec"].get("clusterIP") == "None":
        # Callers find pods by DNS: wait out the record's TTL and one re-resolution.
        interval = float(configmap_data()[env_name("resolve_interval")])
        assert sleep > interval + DNS_TTL_S
    else:
        assert sleep >= 5


def test_the_sweeper_stops_at_once_within_its_grace() -> None:
    container = main_container("sweeper")
    assert "lifecycle" not in container  # nothing to drain: no Service selects it
    assert not [
        name
        for name, service in of_kind("Service").items()
        if selected_deployments(service["spec"]["selector"]) == ["sweeper"]
    ]
    assert pod_spec(workload("sweeper"))["terminationGracePeriodSeconds"] >= SHUTDOWN_TIMEOUT_S + 5


# --- Services, autoscalers, disruption budgets -----------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_selector_matches_its_pods_and_no_other(name: Service) -> None:
    deployment = one("Deployment", name)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
    assert selected_deployments(selector) == [name]
    assert selects(selector, deployment["metadata"]["labels"])


def test_every_service_selects_one_deployment_of_its_name() -> None:
    services = of_kind("Service")
    assert set(services) == {"gateway", "gateway-metrics", "issuer", "registry"}
    for name, service in services.items():
        spec = service["spec"]
        (deployment,) = selected_deployments(spec["selector"])
        assert name == deployment or name.startswith(f"{deployment}-"), name
        # Reached from inside the cluster only; the operator adds an Ingress or a LoadBalancer.
        assert spec.get("type", "ClusterIP") == "ClusterIP", name
        container = main_container(deployment)
        for port in spec["ports"]:
            assert port_of(container, port["targetPort"]) == port["port"], name


def test_gateway_metrics_port_is_not_on_its_service() -> None:
    container = main_container("gateway")
    metrics = int(literal(container, env_name("gateway_metrics_port")))
    public = one("Service", "gateway")["spec"]["ports"]
    assert [port["port"] for port in public] == [service_port("gateway")]
    assert metrics not in {port_of(container, port["targetPort"]) for port in public}
    # Only a headless Service carries it, for Prometheus; and the pods say where to scrape.
    carriers = [
        name
        for name, service in of_kind("Service").items()
        if any(port_of(container, port["targetPort"]) == metrics for port in service["spec"]["ports"])
        and selected_deployments(service["spec"]["selector"]) == ["gateway"]
    ]
    assert carriers == ["gateway-metrics"]
    assert one("Service", "gateway-metrics")["spec"]["clusterIP"] == "None"
    annotations = one("Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics)


@pytest.mark.parametrize("name", ["issuer", "registry", "sweeper"])
def test_internal_services_are_scraped_on_their_port(name: Service) -> None:
    annotations = one("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(service_port(name))


def test_autoscalers_target_existing_deployments() -> None:
    autoscalers = of_kind("HorizontalPodAutoscaler")
    assert set(autoscalers) == set(AUTOSCALED)
    for name, autoscaler in autoscalers.items():
        spec = autoscaler["spec"]
        target = spec["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", name)
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
        (metric,) = spec["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        assert 0 < metric["resource"]["target"]["averageUtilization"] <= 90
        # Utilization is a share of the request: without one the autoscaler cannot act.
        assert quantity(main_container(name)["resources"]["requests"]["cpu"]) > 0


def test_registry_pods_fit_in_the_database_connections() -> None:
    # Each registry pod holds up to TOKENHUB_DB_POOL_MAX connections; PostgreSQL allows 100 by
    # default (3 kept for superusers), and the sweeper, the Job and an operator need some too.
    most = one("HorizontalPodAutoscaler", "registry")["spec"]["maxReplicas"]
    assert env_name("db_pool_max") not in env_entries(main_container("registry"))
    assert most * Settings.model_fields["db_pool_max"].default <= 100 - 3 - 10


def test_disruption_budgets_guard_the_autoscaled_deployments() -> None:
    budgets = of_kind("PodDisruptionBudget")
    assert set(budgets) == set(AUTOSCALED)
    for name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selected_deployments(selector) == [name]
        assert selector == one("Deployment", name)["spec"]["selector"]["matchLabels"]
        # One pod at a time, and the autoscaler keeps more than that.
        assert budget["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in budget["spec"]
        assert one("HorizontalPodAutoscaler", name)["spec"]["minReplicas"] > 1


# --- the registry and the sweeper start on a migrated database -------------------------------------


def wait_for_migrations(process: str) -> dict[str, Any]:
    spec = pod_spec(workload(process))
    (container,) = [c for c in spec.get("initContainers", []) if c["name"] == "wait-for-migrations"]
    assert isinstance(container, dict)
    return container


def test_database_services_wait_for_the_migration() -> None:
    scripts = {process: wait_for_migrations(process)["command"] for process in SERVICE_ROLE_PROCESSES}
    assert len(scripts) == 2
    assert len({tuple(command) for command in scripts.values()}) == 1
    for process in SERVICE_ROLE_PROCESSES:
        container = wait_for_migrations(process)
        assert container["command"][:2] == ["python", "-c"]
        assert (
            env_entries(container)[env_name("database_url")]
            == env_entries(main_container(process))[env_name("database_url")]
        )
    # The others have no database to wait for.
    for process in set(SERVICES) - set(SERVICE_ROLE_PROCESSES):
        assert "initContainers" not in pod_spec(workload(process)), process


class _Stop(BaseException):
    """Ends the script's retry loop from the test (it catches Exception only)."""


class _Connection:
    def __init__(self, versions: list[str]) -> None:
        self.versions = versions
        self.closed = False

    async def fetch(self, query: str) -> list[dict[str, str]]:
        assert query == "SELECT version FROM schema_migrations"
        return [{"version": version} for version in self.versions]

    async def close(self) -> None:
        self.closed = True


def run_wait_script(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[list[str] | BaseException]
) -> tuple[BaseException | None, list[float], list[_Connection]]:
    """Runs the init container's script against answers from a fake PostgreSQL, one per connect."""
    script = wait_for_migrations("registry")["command"][2]
    url = "postgresql://tokenhub_service:s3cret-password@postgres:5432/tokenhub"
    sleeps: list[float] = []
    opened: list[_Connection] = []

    async def connect(dsn: str, timeout: float) -> _Connection:
        assert dsn == url
        assert timeout > 0
        outcome = outcomes.pop(0) if outcomes else _Stop()
        if isinstance(outcome, BaseException):
            raise outcome
        opened.append(_Connection(outcome))
        return opened[-1]

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    monkeypatch.setattr(asyncpg, "connect", connect)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    monkeypatch.setenv("DATABASE_URL", url)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            exec(compile(script, "wait-for-migrations", "exec"), {"__name__": "__main__"})  # noqa: S102
        except BaseException as exc:
            raised.append(exc)

    # In a thread of its own: asyncio.run there leaves this thread's event loop alone.
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return (raised[0] if raised else None), sleeps, opened


def test_wait_script_returns_once_every_migration_is_recorded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = [migration.version for migration in available()]
    assert versions
    refused = ConnectionRefusedError("role tokenhub_service does not exist yet")
    raised, sleeps, opened = run_wait_script(monkeypatch, [refused, versions[:-1], versions])

    assert raised is None
    assert sleeps == [2, 2]
    assert [connection.closed for connection in opened] == [True, True]
    errors = capsys.readouterr().err
    assert "waiting for the database: ConnectionRefusedError" in errors
    assert f"waiting for tokenhub migrate: {versions[-1]}" in errors
    assert "s3cret-password" not in errors


def test_wait_script_keeps_waiting_while_a_migration_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = [migration.version for migration in available()]
    raised, sleeps, _ = run_wait_script(monkeypatch, [[], versions[1:], versions[:-1]])
    # It never returned: the test's fake database ended it after the third answer.
    assert isinstance(raised, _Stop)
    assert sleeps == [2, 2, 2]


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


def test_manifests_name_no_host_port_or_privileged_mode() -> None:
    for document in objects():
        for text in _strings(document):
            assert text not in ("hostPort", "hostPath", "privileged", "NodePort", "LoadBalancer"), text
