"""The deployment files: docker-compose.yaml, the two Dockerfiles, include/k8s and include/clickhouse.

No container runs here (there is no Docker engine on these machines), so each file is checked against
the specification it must satisfy (the Compose Specification JSON schema vendored by check-jsonschema,
the Kubernetes OpenAPI schemas bundled by kubernetes-validate) and against the other files it has to
agree with: service names, addresses, credentials, mounts, the DAG's settings, the job's environment
contract and the ClickHouse DDL's macros.

Every check is a function that returns a list of problems. The ``test_*_catches_*`` tests hand each one
a deliberately broken copy of the real input and assert it reports the breakage, so no check can pass
vacuously.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import ipaddress
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from label_backfill import settings as label_settings
from label_backfill import sql as label_sql
from label_backfill.dev.simulate import SCALES
from label_backfill.naming import database_name
from label_conversations import job as label_job

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
K8S_DIR = REPO / "include" / "k8s"
CLICKHOUSE_DIR = REPO / "include" / "clickhouse"
AIRFLOW_DOCKERFILE = REPO / "docker" / "airflow" / "Dockerfile"
JOB_DOCKERFILE = REPO / "jobs" / "label_conversations" / "Dockerfile"
REPLICATED_DDL = REPO / "plugins" / "label_backfill" / "sql" / "clickhouse" / "create_table_replicated.sql"

CLICKHOUSE_SERVER_IMAGE = "clickhouse/clickhouse-server"
CLICKHOUSE_KEEPER_IMAGE = "clickhouse/clickhouse-keeper"
K3S_IMAGE = "rancher/k3s"
# Every pip install of a dependency in the images: hash-checked from a lock written by `make lock`, wheels only.
LOCKED_INSTALL = "pip install --no-cache-dir --require-hashes --only-binary :all: -r "
# Macros ClickHouse fills in by itself in a Replicated engine's arguments.
BUILTIN_MACROS = {"database", "table", "uuid"}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose() -> dict[str, Any]:
    """A private copy of the compose file (tests mutate it)."""
    return copy.deepcopy(_compose())


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema as vendored by check-jsonschema (offline)."""
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(resource.read_text())


@cache
def _k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return tuple(docs)


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return copy.deepcopy(list(_k8s_docs()))


def image_repository(ref: str) -> str:
    """``name`` of ``name:tag`` or ``name:tag@sha256:...`` (scripts/pin-images.py pins by digest)."""
    ref = ref.split("@", 1)[0]
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref


def services_with_image(data: dict[str, Any], image_repo: str) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in data["services"].items()
        if image_repository(str(svc.get("image", ""))) == image_repo
    }


def airflow_env(data: dict[str, Any]) -> dict[str, str]:
    """The environment of the scheduler (where tasks, and so the job runner, execute)."""
    return {k: str(v) for k, v in data["services"]["airflow-scheduler"]["environment"].items()}


def parse_volume(spec: str | dict[str, Any]) -> tuple[str, str, str]:
    """``(kind, source, target)`` of a service volume; kind is ``bind`` or ``volume``."""
    if isinstance(spec, dict):
        return spec.get("type", "volume"), str(spec.get("source", "")), str(spec["target"])
    parts = spec.split(":")
    source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    return kind, source, target


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts."""
    mounts = {}
    for spec in service.get("volumes", []):
        kind, source, target = parse_volume(spec)
        if kind == "bind":
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def shell_scripts(data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(where, shell, script)`` for every inline script: ``[sh|bash, -c, script]`` commands,
    ``entrypoint: [sh, -c]`` + command, and CMD-SHELL healthchecks."""
    for name, svc in data["services"].items():
        command, entrypoint = svc.get("command"), svc.get("entrypoint")
        if isinstance(command, list) and len(command) >= 3 and command[1] in ("-c", "-ec"):
            yield f"{name}.command", PurePosixPath(command[0]).name, command[2]
        if isinstance(entrypoint, list) and entrypoint[-1:] == ["-c"] and isinstance(command, list):
            yield f"{name}.command", PurePosixPath(entrypoint[0]).name, command[0]
        test = svc.get("healthcheck", {}).get("test")
        if isinstance(test, list) and test[:1] == ["CMD-SHELL"]:
            yield f"{name}.healthcheck", "sh", test[1]


def all_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_strings(item)


# --------------------------------------------------------------------------------------------------
# (a) docker-compose.yaml
# --------------------------------------------------------------------------------------------------


def compose_schema_problems(data: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


def depends_on_problems(data: dict[str, Any]) -> list[str]:
    services = data["services"]
    problems, graph = [], {}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        graph[name] = list(deps)
        problems += [f"{name} depends on unknown service {dep!r}" for dep in deps if dep not in services]
    # A cycle means `docker compose up` can never start any service on it.
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in graph.get(node, []):
            if state.get(dep) == "open":
                problems.append("depends_on cycle: " + " -> ".join([*path, node, dep]))
            elif dep in graph and dep not in state:
                visit(dep, [*path, node])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])
    return problems


def mount_problems(data: dict[str, Any]) -> list[str]:
    """Bind-mount sources, build contexts and Dockerfiles exist in the repository; named volumes and
    configs are declared at the top level."""
    problems = []
    declared_volumes = set(data.get("volumes") or {})
    declared_configs = set(data.get("configs") or {})
    for name, svc in data["services"].items():
        for spec in svc.get("volumes", []):
            kind, source, target = parse_volume(spec)
            if kind == "bind":
                if not (COMPOSE_FILE.parent / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
            elif source and source not in declared_volumes:
                problems.append(f"{name}: named volume {source!r} (at {target}) is not declared")
        for cfg in svc.get("configs", []):
            cfg_name = cfg if isinstance(cfg, str) else cfg["source"]
            if cfg_name not in declared_configs:
                problems.append(f"{name}: config {cfg_name!r} is not declared")
        if build := svc.get("build"):
            build = {"context": build} if isinstance(build, str) else build
            context = COMPOSE_FILE.parent / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
    for cfg_name, cfg in (data.get("configs") or {}).items():
        if "file" in cfg and not (COMPOSE_FILE.parent / cfg["file"]).exists():
            problems.append(f"config {cfg_name}: file {cfg['file']} does not exist")
    return problems


def image_reference_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None: it needs an explicit tag other than latest."""
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {ref!r} has no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {ref!r} uses the latest tag"
    if "$" in ref:
        return f"image {ref!r} is not a literal reference"
    return None


def image_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in data["services"].items():
        if "image" not in svc:
            problems.append(f"{name}: no image (a built service needs an explicit name:tag too)")
        elif problem := image_reference_problem(str(svc["image"])):
            problems.append(f"{name}: {problem}")
    return problems


def network_problems(data: dict[str, Any]) -> list[str]:
    """All services share one network (so service names resolve); static addresses are unique, inside
    the subnet and outside the range Docker hands out dynamically."""
    problems, addresses = [], {}
    networks = data.get("networks") or {}
    for name, svc in data["services"].items():
        attached = svc.get("networks", ["default"])
        attached = list(attached) if isinstance(attached, (list, dict)) else [attached]
        if "stack" not in attached:
            problems.append(f"{name}: not on the shared network 'stack' (its name would not resolve)")
        if isinstance(svc.get("networks"), dict):
            for net, cfg in svc["networks"].items():
                if cfg and cfg.get("ipv4_address"):
                    addresses[name] = (net, ipaddress.ip_address(cfg["ipv4_address"]))
    seen: dict[Any, str] = {}
    for name, (net, address) in addresses.items():
        if address in seen:
            problems.append(f"{name} and {seen[address]} share the address {address}")
        seen[address] = name
        for pool in (networks.get(net) or {}).get("ipam", {}).get("config", []):
            if address not in ipaddress.ip_network(pool["subnet"]):
                problems.append(f"{name}: {address} is outside the subnet {pool['subnet']}")
            if "ip_range" in pool and address in ipaddress.ip_network(pool["ip_range"]):
                problems.append(f"{name}: {address} is inside the dynamic ip_range {pool['ip_range']}")
    return problems


def interpolation_problems(data: dict[str, Any]) -> list[str]:
    """Compose substitutes ``$VAR``/``${VAR}`` from the host in every value; a shell variable in an
    inline script must be written ``$$VAR`` or it silently becomes the host's value (usually empty)."""
    problems = []
    for where, _shell, script in shell_scripts(data):
        if "$" in script.replace("$$", ""):
            problems.append(f"{where}: a single '$' will be interpolated by compose: {script[:60]!r}...")
    return problems


def script_syntax_problems(data: dict[str, Any]) -> list[str]:
    """``bash -n`` / ``dash -n`` (for the busybox ash of the k3s image) on every inline script, after
    compose's own unescaping of ``$$``."""
    problems = []
    for where, shell, script in shell_scripts(data):
        checker = "bash" if shell == "bash" else "dash"
        exe = shutil.which(checker)
        if exe is None:  # pragma: no cover - both ship with Debian
            problems.append(f"{where}: no {checker} to check the script with")
            continue
        result = subprocess.run(  # noqa: S603 - fixed executable, script is repository content
            [exe, "-n"], input=script.replace("$$", "$"), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            problems.append(f"{where}: {checker} -n: {result.stderr.strip()}")
    return problems


def settings_problems(data: dict[str, Any]) -> list[str]:
    """The Airflow services carry settings the DAG accepts, the same in every Airflow container."""
    problems = []
    envs = {
        name: {k: str(v) for k, v in svc.get("environment", {}).items()}
        for name, svc in data["services"].items()
        if name.startswith("airflow-")
    }
    if not envs:
        return ["no airflow-* services"]
    for name, env in envs.items():
        try:
            loaded = label_settings.load(env)
        except ValueError as err:
            problems.append(f"{name}: {err}")
            continue
        if loaded.job_runner != "kubernetes":
            problems.append(f"{name}: LABEL_BACKFILL_JOB_RUNNER is {loaded.job_runner!r}, the stack runs k3s")
        if not loaded.clickhouse_cluster:
            problems.append(f"{name}: LABEL_BACKFILL_CLICKHOUSE_CLUSTER is empty, the stack is a cluster")
    label_keys = {
        k: v for k, v in airflow_env(data).items() if k.startswith(("LABEL_BACKFILL_", "AIRFLOW_CONN_"))
    }
    for name, env in envs.items():
        for key, value in label_keys.items():
            if env.get(key) != value:
                problems.append(f"{name}: {key} differs from airflow-scheduler's")
    return problems


def connection_problems(data: dict[str, Any]) -> list[str]:
    """The AIRFLOW_CONN_* JSON parses, has the type the hooks expect and names a compose service; the
    kubeconfig path is where k3s-setup writes it, on a volume the Airflow services mount."""
    problems = []
    env = airflow_env(data)
    services = data["services"]
    expected = {
        "AIRFLOW_CONN_" + label_settings.POSTGRES_CONN_ID.upper(): "postgres",
        "AIRFLOW_CONN_" + label_settings.STATE_CONN_ID.upper(): "postgres",
        "AIRFLOW_CONN_" + label_settings.CLICKHOUSE_CONN_ID.upper(): "clickhouse",
        "AIRFLOW_CONN_" + label_settings.KUBERNETES_CONN_ID.upper(): "kubernetes",
    }
    conns = {}
    for key, conn_type in expected.items():
        try:
            conns[key] = conn = json.loads(env[key])
        except (KeyError, json.JSONDecodeError) as err:
            problems.append(f"{key}: missing or not JSON ({err})")
            continue
        if conn.get("conn_type") != conn_type:
            problems.append(f"{key}: conn_type {conn.get('conn_type')!r}, expected {conn_type!r}")
        if conn_type != "kubernetes" and conn.get("host") not in services:
            problems.append(f"{key}: host {conn.get('host')!r} is not a compose service")
    kube = conns.get("AIRFLOW_CONN_" + label_settings.KUBERNETES_CONN_ID.upper())
    if kube:
        path = PurePosixPath(kube.get("extra", {}).get("kube_config_path", ""))
        scheduler_volumes = {
            target: source
            for kind, source, target in map(parse_volume, services["airflow-scheduler"].get("volumes", []))
            if kind == "volume"
        }
        volume = scheduler_volumes.get(str(path.parent))
        setup = services.get("k3s-setup", {})
        setup_targets = {
            source: target
            for kind, source, target in map(parse_volume, setup.get("volumes", []))
            if kind == "volume"
        }
        if volume is None:
            problems.append(f"kube_config_path {path} is not on a named volume of airflow-scheduler")
        elif volume not in setup_targets:
            problems.append(f"k3s-setup does not mount the volume {volume!r} that holds {path}")
        elif f"{setup_targets[volume]}/{path.name}" not in "".join(all_strings(setup.get("command"))):
            problems.append(f"k3s-setup never writes {setup_targets[volume]}/{path.name}")
    return problems


def test_compose_file_validates_against_the_compose_specification():
    assert compose_schema()["title"] == "Compose Specification"
    assert compose_schema_problems(compose()) == []


def test_compose_depends_on_targets_exist_without_cycles():
    assert depends_on_problems(compose()) == []


def test_compose_mount_sources_build_contexts_and_declarations_exist():
    assert mount_problems(compose()) == []


def test_compose_images_are_pinned():
    assert image_problems(compose()) == []


def test_compose_network_and_static_addresses():
    assert network_problems(compose()) == []


def test_compose_inline_scripts_escape_dollars_and_parse():
    data = compose()
    assert list(shell_scripts(data)), "expected inline scripts (seed, k3s-setup, airflow-init, healthchecks)"
    assert interpolation_problems(data) == []
    assert script_syntax_problems(data) == []


def test_compose_airflow_settings_and_connections():
    data = compose()
    assert settings_problems(data) == []
    assert connection_problems(data) == []


def test_compose_has_the_stack_the_docs_describe():
    services = compose()["services"]
    expected = {
        "postgres", "clickhouse-keeper", "clickhouse-s1", "clickhouse-s2", "seed", "label-conversations-image",
        "k3s", "k3s-setup", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "airflow-triggerer",
    }  # fmt: skip
    assert expected <= set(services)
    for name in expected - {"airflow-init", "seed", "label-conversations-image", "k3s-setup"}:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    seed = " ".join(services["seed"]["command"])
    assert "label_backfill.dev.simulate" in seed and "--clickhouse-cluster" in seed
    assert "--force-non-embedded" in seed  # the simulator refuses the compose databases otherwise


# (mutation, check, text the problems must contain)
COMPOSE_BREAKAGES = [
    (lambda d: d["services"]["postgres"].update(imagee="x"), compose_schema_problems, "imagee"),
    (lambda d: d["services"]["k3s-setup"]["depends_on"]["k3s"].update(condition="service_ready"),
     compose_schema_problems, "service_ready"),
    (lambda d: d["services"]["seed"]["depends_on"].update(redis={"condition": "service_healthy"}),
     depends_on_problems, "unknown service 'redis'"),
    (lambda d: d["services"]["postgres"].update(depends_on={"seed": {"condition": "service_started"}}),
     depends_on_problems, "cycle"),
    (lambda d: d["services"]["clickhouse-s1"]["volumes"].append("./include/clickhouse/nope.xml:/etc/x.xml:ro"),
     mount_problems, "does not exist"),
    (lambda d: d["services"]["k3s"]["volumes"].append("undeclared:/data"), mount_problems, "not declared"),
    (lambda d: d["services"]["seed"]["build"].update(dockerfile="docker/nope/Dockerfile"),
     mount_problems, "Dockerfile"),
    (lambda d: d["services"]["postgres"].update(image="postgres"), image_problems, "no tag"),
    (lambda d: d["services"]["k3s"].update(image="rancher/k3s:latest"), image_problems, "latest"),
    (lambda d: d["services"]["k3s"].update(networks=["default"]), network_problems, "shared network"),
    (lambda d: d["services"]["clickhouse-s2"]["networks"]["stack"].update(ipv4_address="172.29.57.21"),
     network_problems, "share the address"),
    (lambda d: d["services"]["postgres"]["networks"]["stack"].update(ipv4_address="172.29.57.200"),
     network_problems, "dynamic ip_range"),
    (lambda d: d["services"]["seed"]["command"].__setitem__(2, "echo $HOME"), interpolation_problems,
     "single '$'"),
    (lambda d: d["services"]["seed"]["command"].__setitem__(2, "if true; then echo"), script_syntax_problems,
     "bash -n"),
    (lambda d: d["services"]["airflow-triggerer"]["environment"].update(LABEL_BACKFILL_JOB_RUNNER="docker"),
     settings_problems, "LABEL_BACKFILL_JOB_RUNNER"),
    (lambda d: d["services"]["airflow-apiserver"]["environment"].update(LABEL_BACKFILL_CLICKHOUSE_CLUSTER="x"),
     settings_problems, "differs"),
    (lambda d: d["services"]["airflow-scheduler"]["environment"].update(
        AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS='{"conn_type": "clickhouse", "host": "clickhouse-s9"}'),
     connection_problems, "not a compose service"),
    (lambda d: d["services"]["airflow-scheduler"]["environment"].update(
        AIRFLOW_CONN_KUBERNETES_DEFAULT='{"conn_type": "kubernetes", "extra": {"kube_config_path": "/x/k.yaml"}}'),
     connection_problems, "not on a named volume"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutate, check, expected", COMPOSE_BREAKAGES, ids=[case[-1] for case in COMPOSE_BREAKAGES]
)
def test_compose_checks_catch_breakage(mutate, check, expected):
    data = compose()
    assert check(data) == [], "the real compose file must pass before it is broken"
    mutate(data)
    problems = check(data)
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------------------------------
# (a) docker-compose.yaml: no fixed secrets (issue 12)
# --------------------------------------------------------------------------------------------------

COMPOSE_ENV_SCRIPT = REPO / "scripts" / "compose-env.py"
# What `make compose-env` generates into .env, per checkout; compose names each as ${NAME:?...}.
GENERATED_SECRETS = {
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
}
# service environment key -> the .env variable it must be (nothing else)
SECRET_SETTINGS = {
    "AIRFLOW__CORE__FERNET_KEY": "AIRFLOW_FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW_API_SECRET_KEY",
    "POSTGRES_PASSWORD": "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD": "AIRFLOW_ADMIN_PASSWORD",
}
# the values this file once published
PUBLISHED = (
    "Z68OEewnj-LFBZkpsCyEhpiGo-qf_tHAo2Mn0UZAJV8=",
    "label-backfill-dev-jwt-secret",
    "label-backfill-dev-api-secret",
    "airflow:airflow@",
    "AIRFLOW_ADMIN_PASSWORD:-",
)
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}")


def required_reference(value: str) -> str | None:
    """The variable of a value that is exactly ``${NAME:?message}``, else None."""
    match = REFERENCE.fullmatch(value)
    return match.group(1) if match and (match.group(2) or "").startswith(":?") else None


def secret_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in data["services"].items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for key, value in env.items():
            if key in SECRET_SETTINGS:
                if required_reference(value) != SECRET_SETTINGS[key]:
                    problems.append(
                        f"{name}: {key} must be ${{{SECRET_SETTINGS[key]}:?...}} from .env, not {value!r}"
                    )
            elif re.search(r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY|TOKEN)$", key) and not required_reference(
                value
            ):
                problems.append(f"{name}: {key} holds a literal secret")
        if conn := env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
            userinfo = re.match(r"[a-z0-9+]+://([^@/]*)@", conn)  # urlsplit trips on the ${...:?message}
            password = userinfo.group(1).partition(":")[2] if userinfo else ""
            if required_reference(password) != "AIRFLOW_DB_PASSWORD":
                problems.append(
                    f"{name}: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN's password is not ${{AIRFLOW_DB_PASSWORD:?...}}"
                )
    for service in (
        "airflow-scheduler",
        "airflow-apiserver",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-init",
    ):
        env = data["services"][service].get("environment") or {}
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            if key not in env:
                problems.append(f"{service}: no {key} (every component needs the same one)")
    used = set()
    for text in all_strings(data):
        for match in REFERENCE.finditer(text):
            variable, modifier = match.group(1), match.group(2) or ""
            used.add(variable)
            if variable in GENERATED_SECRETS and not modifier.startswith(":?"):
                problems.append(
                    f"${{{variable}{modifier}}}: a secret needs ${{{variable}:?...}} (no default)"
                )
            elif variable not in GENERATED_SECRETS:
                problems.append(f"${{{variable}}} is not a variable make compose-env generates")
    problems += [f"{v} is generated but never used" for v in sorted(GENERATED_SECRETS - used)]
    text = yaml.safe_dump(data)
    problems += [f"the published value {v!r} is still in the file" for v in PUBLISHED if v in text]
    return problems


def generate_env(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(COMPOSE_ENV_SCRIPT)],
        env={"PATH": "/usr/bin:/bin", "COMPOSE_ENV_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def read_env(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


def interpolate(data: Any, env: dict[str, str]) -> Any:
    """Compose's substitution of ${NAME:?message} ($$ stays a literal $), enough for this file."""
    if isinstance(data, dict):
        return {k: interpolate(v, env) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env) for v in data]
    if not isinstance(data, str):
        return data

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise KeyError(f"required variable {match.group(1)} is missing a value: {match.group(2)[2:]}")
        return env[match.group(1)]

    return REFERENCE.sub(value, data)


def test_compose_holds_no_fixed_secret():
    assert secret_problems(compose()) == []


def test_compose_env_generates_private_random_secrets_and_keeps_them(tmp_path):
    from cryptography.fernet import Fernet

    env_file = tmp_path / ".env"
    first = generate_env(env_file)
    values = read_env(env_file)
    assert set(values) == GENERATED_SECRETS
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert all(v not in first.stdout + first.stderr for v in values.values()), "a value was printed"
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # a valid Fernet key
    assert all(len(v) >= 24 for v in values.values())
    assert (
        urlsplit(f"postgresql://airflow:{values['AIRFLOW_DB_PASSWORD']}@postgres/airflow").password
        == (values["AIRFLOW_DB_PASSWORD"])
    )
    # re-run: nothing changes; another checkout: other values; a set value is kept, the missing added
    again = generate_env(env_file)
    assert read_env(env_file) == values and "nothing changed" in again.stdout
    other = tmp_path / "other.env"
    generate_env(other)
    assert all(read_env(other)[k] != values[k] for k in values)
    partial = tmp_path / "partial.env"
    partial.write_text("AIRFLOW_ADMIN_PASSWORD=my-own-choice\n")
    partial.chmod(0o644)
    generate_env(partial)
    assert read_env(partial)["AIRFLOW_ADMIN_PASSWORD"] == "my-own-choice"
    assert set(read_env(partial)) == GENERATED_SECRETS
    assert oct(partial.stat().st_mode & 0o777) == "0o600"


def test_compose_interpolates_the_generated_env_and_refuses_without_it(tmp_path):
    generate_env(tmp_path / ".env")
    env = read_env(tmp_path / ".env")
    data = interpolate(compose(), env)
    scheduler = data["services"]["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"]
    assert urlsplit(scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password == env["AIRFLOW_DB_PASSWORD"]
    assert data["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["AIRFLOW_DB_PASSWORD"]
    assert compose_schema_problems(data) == []
    with pytest.raises(KeyError, match="run make compose-env"):
        interpolate(compose(), {})


def test_env_file_stays_out_of_git_and_of_the_build_context():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env is not git-ignored"
    dockerignore = (AIRFLOW_DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert ".env" in dockerignore
    assert "compose-env:\n\t$(PYTHON) scripts/compose-env.py" in (REPO / "Makefile").read_text()


SECRET_BREAKAGES = [
    lambda d: d["services"]["airflow-scheduler"]["environment"].update(
        AIRFLOW__CORE__FERNET_KEY="Z68OEewnj-LFBZkpsCyEhpiGo-qf_tHAo2Mn0UZAJV8="),
    lambda d: d["services"]["postgres"]["environment"].update(POSTGRES_PASSWORD="airflow"),
    lambda d: d["services"]["airflow-init"]["environment"].update(AIRFLOW_ADMIN_PASSWORD="${AIRFLOW_ADMIN_PASSWORD:-admin}"),
    lambda d: d["services"]["airflow-triggerer"]["environment"].update(
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:airflow@postgres:5432/airflow"),
    lambda d: d["services"]["airflow-apiserver"]["environment"].pop("AIRFLOW__API_AUTH__JWT_SECRET"),
    lambda d: d["services"]["seed"]["environment"].update(SEED_API_TOKEN="abc123"),
    lambda d: d["services"]["seed"]["environment"].update(SEED_SCALE="${SEED_SCALE_FROM_HOST:?x}"),
]  # fmt: skip


@pytest.mark.parametrize("mutate", SECRET_BREAKAGES)
def test_secret_check_catches_breakage(mutate):
    data = compose()
    assert secret_problems(data) == []
    mutate(data)
    assert secret_problems(data) != []


# --------------------------------------------------------------------------------------------------
# (a) Dockerfiles
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for these files)."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        pending += " " + stripped.rstrip("\\").strip() if pending else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
            pending = ""
    return instructions


def dockerfile_problems(text: str, context: Path) -> list[str]:
    known = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "LABEL",
             "EXPOSE", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD"}  # fmt: skip
    problems = []
    instructions = parse_dockerfile(text)
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        problems.append("a Dockerfile must start with FROM")
    stages: set[str] = set()  # names of earlier stages (FROM <image> AS <name>): FROM <name> needs no tag
    for ins in instructions:
        if ins.keyword not in known:
            problems.append(f"unknown instruction {ins.keyword}")
        elif ins.keyword == "FROM":
            words = ins.args.split()
            if words[0] not in stages and (problem := image_reference_problem(words[0])):
                problems.append(f"FROM: {problem}")
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
        elif ins.keyword in ("COPY", "ADD"):
            words = [w for w in ins.args.split() if not w.startswith("--")]
            if any(w.startswith("--from") for w in ins.args.split()):
                continue
            for source in words[:-1]:
                if not (context / source).exists():
                    problems.append(f"{ins.keyword} source {source} is not in the build context {context}")
        elif ins.keyword in ("ENTRYPOINT", "CMD") and ins.args.startswith("["):
            try:
                json.loads(ins.args)
            except json.JSONDecodeError:
                problems.append(f"{ins.keyword} exec form is not valid JSON: {ins.args}")
    users = [ins.args for ins in instructions if ins.keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image must end with a non-root USER")
    problems += pip_problems(instructions)
    return problems


def pip_problems(instructions: list[Instruction]) -> list[str]:
    """Every package pip fetches is hash-checked: installs come from a lock with --require-hashes (wheels
    only), or are this build's own wheels with --no-deps; wheels are built without build isolation (an
    isolated build fetches its backend unchecked)."""
    problems = []
    for ins in instructions:
        if ins.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", ins.args):
            words = command.split()
            if "pip" not in words:
                continue
            verb = words[words.index("pip") + 1] if words.index("pip") + 1 < len(words) else ""
            if verb == "install":
                locked = (
                    "--require-hashes" in words
                    and "--only-binary" in words
                    and any(w.endswith(".lock") for w in words)
                )
                local_wheels = "--no-deps" in words and all(
                    w.endswith(".whl") for w in words[words.index("install") + 1 :] if not w.startswith("-")
                )
                if not (locked or local_wheels):
                    problems.append(f"pip install is not hash-checked from a lock: {command.strip()}")
            elif verb == "wheel" and not {"--no-deps", "--no-build-isolation"} <= set(words):
                problems.append(f"pip wheel must use --no-deps --no-build-isolation: {command.strip()}")
    return problems


def test_dockerfiles_are_pinned_and_copy_only_what_the_context_has():
    # build contexts as docker-compose.yaml (airflow) and the label-conversations-image service use them
    assert dockerfile_problems(AIRFLOW_DOCKERFILE.read_text(), REPO) == []
    assert dockerfile_problems(JOB_DOCKERFILE.read_text(), JOB_DOCKERFILE.parent) == []


def dockerfile_stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """{stage name: its instructions, FROM first}, in file order."""
    stages: dict[str, list[Instruction]] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages[name] = []
        stages[next(reversed(stages))].append(ins)
    return stages


def test_airflow_dockerfile_installs_the_wheel_with_the_production_requirements():
    instructions = parse_dockerfile(AIRFLOW_DOCKERFILE.read_text())
    stages = dockerfile_stages(instructions)
    assert list(stages) == ["build", "production", "laptop"]
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt pins apache-airflow"
    base = f"apache/airflow:{pinned.group(1)}-python3.11"
    digest = r"(@sha256:[0-9a-f]{64})?"  # scripts/pin-images.py adds it where a registry is reachable
    froms = [ins.args for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) == 3 and froms[2] == "production AS laptop"
    assert re.fullmatch(re.escape(base) + digest + " AS build", froms[0]), froms[0]
    assert re.fullmatch(re.escape(base) + digest + " AS production", froms[1]), froms[1]

    def copies(stage: str) -> list[list[str]]:
        """Each COPY of the stage as [sources..., dest], --from=... kept as the first word."""
        return [
            [w for w in ins.args.split() if not w.startswith("--") or w.startswith("--from")]
            for ins in stages[stage]
            if ins.keyword == "COPY"
        ]

    # build: the hash-checked build backend, then the wheels with it (no isolation), no dependencies
    runs = [ins.args for ins in stages["build"] if ins.keyword == "RUN"]
    assert runs[0] == LOCKED_INSTALL + "requirements-tools.lock"
    assert any("pip wheel" in run and "--no-deps" in run and "--no-build-isolation" in run for run in runs)
    # production: requirements.lock (hash-checked), then the wheel; of the working tree only the lock
    # and dags/ (no editable install, no plugins/ or jobs/ copied)
    runs = [(i, ins.args) for i, ins in enumerate(stages["production"]) if ins.keyword == "RUN"]
    pip_runs = [(i, args) for i, args in runs if "pip install" in args]
    assert [args for _, args in pip_runs] == [
        LOCKED_INSTALL + "requirements.lock",
        "pip install --no-cache-dir --no-deps /opt/airflow/wheels/label_backfill-*.whl",
    ]
    assert copies("production") == [
        ["requirements.lock", "./"],
        ["--from=build", "/opt/airflow/wheels/label_backfill-*.whl", "/opt/airflow/wheels/"],
        ["dags", "./dags"],
    ]
    # pip runs as the airflow user (the official image's rule), never as root
    for stage in ("build", "production"):
        for index, ins in enumerate(stages[stage]):
            if ins.keyword == "RUN" and "pip " in ins.args:
                user = [i.args for i in stages[stage][:index] if i.keyword == "USER"]
                assert user and user[-1] == "airflow", (stage, ins.args)
    assert [i.args for i in stages["production"] if i.keyword == "USER"][-1] == "airflow"
    # laptop: production (same user) + the reference job from its own lock, hash-checked
    laptop_runs = [ins.args for ins in stages["laptop"] if ins.keyword == "RUN"]
    assert LOCKED_INSTALL + "/opt/airflow/project/job-requirements.lock" in laptop_runs
    assert [
        "jobs/label_conversations/requirements.lock",
        "/opt/airflow/project/job-requirements.lock",
    ] in copies("laptop")
    assert any("label_conversations-*.whl" in run for run in laptop_runs)
    env = dict(
        item.split("=", 1) for ins in instructions if ins.keyword == "ENV" for item in ins.args.split()
    )
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
    # Not the project's plugins/: Airflow's loader would run plugins/label_backfill/compare/__main__.py as the
    # process's __main__ and import the library's modules under bare names (see the Dockerfile's comment).
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/plugins"
    # compose's live-edit bind mounts: the DAG files only, where the Dockerfile copied them (the library
    # is the installed wheel, which a mount of plugins/ would not change)
    project = "/opt/airflow/project/"
    for name in ("airflow-scheduler", "airflow-apiserver", "seed"):
        mounts = bind_mounts(compose()["services"][name])
        project_mounts = {target: source for target, source in mounts.items() if target.startswith(project)}
        assert project_mounts == {project + "dags": REPO / "dags"}, name


def test_compose_builds_the_dockerfiles_with_the_contexts_checked_here():
    services = compose()["services"]
    for name in ("airflow-scheduler", "seed", "airflow-init"):
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).resolve() == AIRFLOW_DOCKERFILE
        assert build["target"] == "laptop"  # the seed imports the reference job
    builder = services["label-conversations-image"]
    assert bind_mounts(builder)["/src"] == JOB_DOCKERFILE.parent
    assert "--local=context=/src" in builder["command"] and "--local=dockerfile=/src" in builder["command"]


def test_job_dockerfile_runs_the_reference_job_as_the_cronjob_user():
    instructions = parse_dockerfile(JOB_DOCKERFILE.read_text())
    assert instructions[0].args.startswith("python:3.11-slim")
    entry = [json.loads(ins.args) for ins in instructions if ins.keyword in ("ENTRYPOINT", "CMD")]
    assert ["python", "-m", "label_conversations"] in entry
    # its dependencies: the job's own lock, hash-checked (make lock writes it from requirements.txt)
    assert [ins.args for ins in instructions if ins.keyword == "RUN" and "pip" in ins.args][0] == (
        LOCKED_INSTALL + "requirements.lock"
    )
    assert "requirements.lock ./" in [ins.args for ins in instructions if ins.keyword == "COPY"]
    cronjob = _find(k8s_docs(), "CronJob")
    pod_security = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]
    user = [ins.args for ins in instructions if ins.keyword == "USER"][-1]
    assert user.split(":")[0] == str(pod_security["runAsUser"])


# (Dockerfile text, text the problems must contain)
DOCKERFILE_BREAKAGES = [
    ("FROM python:latest\nUSER 1\n", "latest"),
    ("FROM python\nUSER 1\n", "no tag"),
    ("FROM python:3.11-slim AS base\nFROM bsae\nUSER 1\n", "no tag"),
    ("FROM python:3.11-slim\nCOPY missing.txt ./\nUSER 1\n", "not in the build context"),
    ("FROM python:3.11-slim\nENTRYPOINT [python, -m]\nUSER 1\n", "not valid JSON"),
    ("FROM python:3.11-slim\nRUN true\n", "non-root USER"),
    ("FROM python:3.11-slim\nCOPPY a b\nUSER 1\n", "unknown instruction"),
    ("FROM python:3.11-slim\nRUN pip install requests==2.32.0\nUSER 1\n", "not hash-checked"),
    ("FROM python:3.11-slim\nRUN pip install --require-hashes -r requirements.txt\nUSER 1\n", "not hash-checked"),
    ("FROM python:3.11-slim\nRUN true && pip install --no-deps requests\nUSER 1\n", "not hash-checked"),
    ("FROM python:3.11-slim\nRUN pip wheel --no-deps .\nUSER 1\n", "--no-build-isolation"),
]  # fmt: skip


@pytest.mark.parametrize(
    "text, expected", DOCKERFILE_BREAKAGES, ids=[case[-1] for case in DOCKERFILE_BREAKAGES]
)
def test_dockerfile_checks_catch_breakage(text, expected):
    problems = dockerfile_problems(text, JOB_DOCKERFILE.parent)
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------------------------------
# (b) include/k8s
# --------------------------------------------------------------------------------------------------


def _find(docs: list[tuple[str, dict[str, Any]]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for _, d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in include/k8s, found {len(matches)}"
    return matches[0]


def kubernetes_version(data: dict[str, Any]) -> str:
    """The Kubernetes minor the compose stack runs (the k3s image tag), as kubernetes-validate names it."""
    (k3s,) = [
        svc["image"] for svc in data["services"].values() if svc.get("image", "").startswith(K3S_IMAGE + ":")
    ][:1]
    match = re.fullmatch(rf"{re.escape(K3S_IMAGE)}:v(\d+)\.(\d+)\.\d+-k3s\d+(@sha256:[0-9a-f]{{64}})?", k3s)
    assert match, f"unexpected k3s image tag {k3s}"
    return f"{match.group(1)}.{match.group(2)}.0"


def manifest_schema_problems(docs: list[tuple[str, dict[str, Any]]], version: str) -> list[str]:
    problems = []
    for filename, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(
                f"{filename} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {err.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append(f"{filename}: no schema for {doc.get('apiVersion')} {doc.get('kind')} ({err})")
    return problems


def _pod_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def cronjob_problems(docs: list[tuple[str, dict[str, Any]]], conf: label_settings.Settings) -> list[str]:
    """The CronJob the kubernetes runner copies: names from the DAG settings, the secret, no retries."""
    problems = []
    cronjobs = [d for _, d in docs if d.get("kind") == "CronJob" and d["metadata"]["name"] == conf.cronjob]
    if len(cronjobs) != 1:
        return [f"no CronJob named {conf.cronjob!r} (LABEL_BACKFILL_CRONJOB)"]
    cronjob = cronjobs[0]
    if cronjob["metadata"].get("namespace", "default") != conf.k8s_namespace:
        problems.append(f"CronJob is not in namespace {conf.k8s_namespace!r} (LABEL_BACKFILL_K8S_NAMESPACE)")
    spec, pod = cronjob["spec"], _pod_spec(cronjob)
    if spec.get("concurrencyPolicy") != "Forbid":
        problems.append("concurrencyPolicy must be Forbid (two runs would write the same window twice)")
    if spec["jobTemplate"]["spec"].get("backoffLimit") != 0:
        problems.append("backoffLimit must be 0 (a retry re-inserts rows: duplicates)")
    if pod.get("restartPolicy") != "Never":
        problems.append("restartPolicy must be Never")
    containers = {c["name"]: c for c in pod.get("containers", [])}
    container = containers.get(conf.k8s_container)
    if container is None:
        return [*problems, f"no container named {conf.k8s_container!r} (LABEL_BACKFILL_K8S_CONTAINER)"]
    if container.get("imagePullPolicy") not in ("Never", "IfNotPresent"):
        problems.append("imagePullPolicy must be Never/IfNotPresent: the image is imported, not pulled")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
        problems.append("the job container needs resource requests and a memory limit")
    secret_refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    if not secret_refs:
        problems.append("the job container takes no envFrom secretRef")
    secrets = {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == "Secret"}
    for ref in secret_refs:
        if ref not in secrets:
            problems.append(f"envFrom secret {ref!r} is not defined in include/k8s")
            continue
        keys = set(secrets[ref].get("stringData", {})) | set(secrets[ref].get("data", {}))
        for env_name in (
            label_job.ENV_POSTGRES_DSN,
            label_job.ENV_CLICKHOUSE_DSN,
            label_job.ENV_CLICKHOUSE_TABLE,
        ):
            if env_name not in keys:
                problems.append(f"secret {ref!r} lacks {env_name} (the job's environment contract)")
    return problems


def secret_dsns(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    cronjob = next(d for _, d in docs if d.get("kind") == "CronJob")
    container = _pod_spec(cronjob)["containers"][0]
    refs = {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    values: dict[str, str] = {}
    for _, doc in docs:
        if doc.get("kind") == "Secret" and doc["metadata"]["name"] in refs:
            values.update(doc.get("stringData", {}))
    return values


def pod_network_problems(docs: list[tuple[str, dict[str, Any]]], data: dict[str, Any]) -> list[str]:
    """Every host in the job's DSNs resolves in the pod: a hostAlias pinned to that compose service's
    static address."""
    problems = []
    cronjob = next(d for _, d in docs if d.get("kind") == "CronJob")
    aliases = {h: a["ip"] for a in _pod_spec(cronjob).get("hostAliases", []) for h in a["hostnames"]}
    for host, ip in aliases.items():
        svc = data["services"].get(host)
        static = (svc or {}).get("networks", {})
        static = static.get("stack", {}).get("ipv4_address") if isinstance(static, dict) else None
        if svc is None:
            problems.append(f"hostAlias {host} is not a compose service")
        elif static != ip:
            problems.append(f"hostAlias {host} -> {ip}, but compose gives it {static}")
    dsns = secret_dsns(docs)
    for key in (label_job.ENV_POSTGRES_DSN, label_job.ENV_CLICKHOUSE_DSN):
        host = urlsplit(dsns.get(key, "")).hostname
        if host not in aliases:
            problems.append(f"{key} host {host!r} has no hostAlias: the pod cannot resolve it")
    image = _pod_spec(cronjob)["containers"][0]["image"]
    builder = " ".join(all_strings(data["services"].get("label-conversations-image", {}).get("command")))
    built = re.search(r"name=(?:docker\.io/library/)?([^,\s]+)", builder)
    if not built or built.group(1) != image:
        problems.append(
            f"the CronJob runs {image!r} but label-conversations-image builds {built and built.group(1)}"
        )
    return problems


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    if not (has(rule.get("verbs", []), verb) and has(rule.get("apiGroups", []), group)):
        return False
    if not has(rule.get("resources", []), resource):
        return False
    names = rule.get("resourceNames")
    return not names or (name is not None and name in names)


def rbac_problems(docs: list[tuple[str, dict[str, Any]]], conf: label_settings.Settings) -> list[str]:
    """A ServiceAccount bound to a Role that lets the kubernetes runner do its work."""
    problems = []
    required = runner_calls(conf)
    accounts = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "ServiceAccount"}
    roles = {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == "Role"}
    bindings = [d for _, d in docs if d.get("kind") == "RoleBinding"]
    bound = [
        (roles.get(b["roleRef"]["name"]), s["name"])
        for b in bindings
        for s in b.get("subjects", [])
        if b["roleRef"]["kind"] == "Role" and s.get("kind") == "ServiceAccount"
    ]
    bound = [(role, sa) for role, sa in bound if role is not None and sa in accounts]
    if not bound:
        return ["no RoleBinding binds a Role in include/k8s to a ServiceAccount in include/k8s"]
    for role, sa in bound:
        if role["metadata"].get("namespace", "default") != conf.k8s_namespace:
            problems.append(f"Role {role['metadata']['name']} is not in {conf.k8s_namespace!r}")
        for verb, group, resource, name in required:
            if not any(_rule_allows(r, verb, group, resource, name) for r in role.get("rules", [])):
                what = f"{resource}/{name}" if name else resource
                problems.append(f"ServiceAccount {sa} may not {verb} {group or 'core'} {what}")
        # nothing more: every (verb, group, resource, names) the Role grants is one the runner calls
        for rule in role.get("rules", []):
            names = rule.get("resourceNames")
            for verb in rule.get("verbs", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        calls = [c for c in required if c[:3] == (verb, group, resource)]
                        if not calls or "*" in (verb, group, resource):
                            problems.append(
                                f"ServiceAccount {sa} may {verb} {group or 'core'} {resource}, "
                                "which the runner never calls"
                            )
                        elif any(c[3] for c in calls) and not names:
                            problems.append(
                                f"ServiceAccount {sa} may {verb} any {resource}; the runner reads "
                                f"{', '.join(sorted(c[3] for c in calls if c[3]))} only (resourceNames)"
                            )
    for _, token in docs:
        if token.get("kind") == "Secret" and token.get("type") == "kubernetes.io/service-account-token":
            problems.append(
                f"Secret {token['metadata']['name']} is a long-lived ServiceAccount token; request short-lived "
                "ones (TokenRequest: kubectl create token, or the projected token in-cluster)"
            )
    return problems


def runner_calls(conf: label_settings.Settings) -> list[tuple[str, str, str, str | None]]:
    """What label_backfill.k8s_operator calls (tests/fakes/kube_api.py refuses anything else in the
    Kubernetes tests): (verb, apiGroup, resource, name or None)."""
    return [
        ("get", "batch", "cronjobs", conf.cronjob),
        ("create", "batch", "jobs", None),
        ("get", "batch", "jobs", None),
        ("delete", "batch", "jobs", None),
        ("get", "batch", "jobs/status", None),
        ("get", "", "pods", None),
        ("list", "", "pods", None),
        ("get", "", "pods/log", None),
    ]


PSS_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret", "name",
}  # fmt: skip


def restricted_pod_problems(pod: dict[str, Any]) -> list[str]:
    """The Kubernetes Pod Security Standard "restricted" (v1.33), for a pod spec: what a namespace labelled
    pod-security.kubernetes.io/enforce=restricted admits."""
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key}: true")
    for volume in pod.get("volumes", []):
        if kinds := set(volume) - PSS_RESTRICTED_VOLUMES:
            problems.append(f"volume {volume.get('name')}: {sorted(kinds)} not allowed")
    pod_sc = pod.get("securityContext") or {}
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name, sc = container.get("name"), container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def test_the_cronjob_pod_passes_the_restricted_pod_security_standard():
    assert restricted_pod_problems(_pod_spec(_cronjob_of(k8s_docs()))) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
        (lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (
            lambda pod: pod["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "Escalation",
        ),
        (lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(drop=[]), "drop ALL"),
        (lambda pod: pod["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda pod: pod["securityContext"].pop("seccompProfile"), "seccompProfile"),
    ],
    ids=["hostNetwork", "hostPath", "escalation", "capabilities", "runAsNonRoot", "seccomp"],
)
def test_the_restricted_check_catches_breakage(mutate, expected):
    pod = _pod_spec(_cronjob_of(k8s_docs()))
    mutate(pod)
    assert any(expected in p for p in restricted_pod_problems(pod))


def test_k8s_manifests_validate_against_the_stack_kubernetes_version():
    version = kubernetes_version(compose())
    assert version in kubernetes_validate.utils.all_versions(), (
        f"kubernetes-validate has no schemas for {version}"
    )
    docs = k8s_docs()
    assert {d["kind"] for _, d in docs} >= {"CronJob", "Secret", "ServiceAccount", "Role", "RoleBinding"}
    assert manifest_schema_problems(docs, version) == []


def test_cronjob_matches_the_dag_settings_defaults_and_the_compose_settings():
    docs = k8s_docs()
    assert cronjob_problems(docs, label_settings.load({})) == []
    assert cronjob_problems(docs, label_settings.load(airflow_env(compose()))) == []
    assert label_settings.load({}).k8s_container == "label-conversations"


def test_cronjob_pods_reach_the_compose_services_and_run_the_built_image():
    assert pod_network_problems(k8s_docs(), compose()) == []


def test_rbac_grants_what_the_kubernetes_runner_needs_and_nothing_more():
    docs = k8s_docs()
    assert rbac_problems(docs, label_settings.load({})) == []
    assert rbac_problems(docs, label_settings.load(airflow_env(compose()))) == []
    # k3s-setup requests a short-lived token for the bound account, writes it into Airflow's kubeconfig
    # and checks the account's rights as it, the forbidden ones included
    setup = " ".join(all_strings(compose()["services"]["k3s-setup"]["command"]))
    account = next(d for _, d in docs if d.get("kind") == "ServiceAccount")["metadata"]["name"]
    assert re.search(rf"kubectl -n default create token {account} --duration=\d+h", setup), setup
    assert f"system:serviceaccount:default:{account}" in setup
    for verb in ("patch pods", "delete pods", "get secrets", "list jobs", "get cronjobs/other"):
        assert f"deny {verb}" in setup, verb


def _cronjob_of(docs):
    return next(d for _, d in docs if d.get("kind") == "CronJob")


def _role_of(docs):
    return next(d for _, d in docs if d.get("kind") == "Role")


# (mutation, check, text the problems must contain)
K8S_BREAKAGES = [
    (lambda docs, _: _cronjob_of(docs)["spec"]["jobTemplate"]["spec"].update(backoffLimit="zero"),
     "schema", "'zero' is not of type 'integer'"),
    (lambda docs, _: _cronjob_of(docs)["spec"].update(schedule_="*/15 * * * *"), "schema", "schedule_"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["containers"][0].update(name="labeler"),
     "cronjob", "no container named 'label-conversations'"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["containers"][0].pop("envFrom"), "cronjob", "envFrom"),
    (lambda docs, _: _cronjob_of(docs)["metadata"].update(name="cron-other"), "cronjob", "no CronJob"),
    (lambda docs, _: _cronjob_of(docs)["spec"].update(concurrencyPolicy="Allow"), "cronjob", "Forbid"),
    (lambda docs, _: next(d for _, d in docs if d["metadata"]["name"] == "label-conversations-db")[
        "stringData"].pop("LABEL_CONVERSATIONS_CLICKHOUSE_DSN"), "cronjob", "LABEL_CONVERSATIONS_CLICKHOUSE_DSN"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["hostAliases"][0].update(ip="172.29.57.99"),
     "network", "compose gives it"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["hostAliases"].append(
        {"ip": "172.29.57.23", "hostnames": ["clickhouse-s3"]}), "network", "not a compose service"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["hostAliases"].pop(0), "network", "has no hostAlias"),
    (lambda docs, _: _pod_spec(_cronjob_of(docs))["containers"][0].update(image="label-conversations:prod"),
     "network", "builds"),
    (lambda docs, _: _role_of(docs)["rules"][1]["verbs"].remove("delete"), "rbac", "may not delete batch jobs"),
    (lambda docs, _: _role_of(docs)["rules"][0].update(resourceNames=["other"]), "rbac", "get batch cronjobs"),
    (lambda docs, _: _role_of(docs)["rules"][4]["resources"].remove("pods/log"), "rbac", "pods/log"),
    (lambda docs, _: next(d for _, d in docs if d.get("kind") == "RoleBinding")["subjects"][0].update(
        name="someone-else"), "rbac", "no RoleBinding"),
    (lambda docs, _: _role_of(docs)["rules"][3]["verbs"].append("delete"), "rbac", "may delete core pods"),
    (lambda docs, _: _role_of(docs)["rules"][1]["verbs"].append("list"), "rbac", "may list batch jobs"),
    (lambda docs, _: _role_of(docs)["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
     "rbac", "may get core secrets"),
    (lambda docs, _: _role_of(docs)["rules"][0].pop("resourceNames"), "rbac", "may get any cronjobs"),
    (lambda docs, _: docs.append(("rbac.yaml", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
                                                "type": "kubernetes.io/service-account-token"})),
     "rbac", "long-lived ServiceAccount token"),
]  # fmt: skip


@pytest.mark.parametrize("mutate, check, expected", K8S_BREAKAGES, ids=[case[-1] for case in K8S_BREAKAGES])
def test_k8s_checks_catch_breakage(mutate, check, expected):
    data = compose()
    conf = label_settings.load({})
    version = kubernetes_version(data)
    checks = {
        "schema": lambda docs: manifest_schema_problems(docs, version),
        "cronjob": lambda docs: cronjob_problems(docs, conf),
        "network": lambda docs: pod_network_problems(docs, data),
        "rbac": lambda docs: rbac_problems(docs, conf),
    }
    docs = k8s_docs()
    assert checks[check](docs) == [], "the real manifests must pass before they are broken"
    mutate(docs, data)
    problems = checks[check](docs)
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------------------------------
# (c) include/clickhouse
# --------------------------------------------------------------------------------------------------


@dataclass
class ClickHouseSetup:
    """What the checks need from the XML files, as plain data (so tests can break it)."""

    # cluster name -> shards, each {"internal_replication": bool, "replicas": [(host, port), ...]}
    clusters: dict[str, list[dict[str, Any]]]
    zookeeper: list[tuple[str, int]]
    keeper_port: int
    keeper_raft_hosts: list[str]
    macros: dict[str, dict[str, str]] = field(default_factory=dict)  # compose service -> macros it mounts
    users: dict[str, str] = field(default_factory=dict)  # user -> password_sha256_hex
    plaintext: dict[str, str] = field(default_factory=dict)  # user -> <password> (must be none)
    networks: dict[str, list[str]] = field(default_factory=dict)  # user -> <networks><ip>
    grants: dict[str, list[str] | None] = field(default_factory=dict)  # user -> <grants><query>, None: absent


def _xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314 - repository files, not untrusted input


def load_clickhouse_setup(data: dict[str, Any]) -> ClickHouseSetup:
    config = _xml(CLICKHOUSE_DIR / "config.d" / "cluster.xml")
    clusters = {}
    for cluster in config.find("remote_servers") or []:
        clusters[cluster.tag] = [
            {
                "internal_replication": (shard.findtext("internal_replication") or "").strip().lower()
                == "true",
                "replicas": [(r.findtext("host"), int(r.findtext("port"))) for r in shard.findall("replica")],
            }
            for shard in cluster.findall("shard")
        ]
    zookeeper = [(n.findtext("host"), int(n.findtext("port"))) for n in config.findall("zookeeper/node")]
    keeper = _xml(CLICKHOUSE_DIR / "keeper.xml")
    setup = ClickHouseSetup(
        clusters=clusters,
        zookeeper=zookeeper,
        keeper_port=int(keeper.findtext("keeper_server/tcp_port")),
        keeper_raft_hosts=[
            s.findtext("hostname") for s in keeper.findall("keeper_server/raft_configuration/server")
        ],
    )
    for name, svc in services_with_image(data, CLICKHOUSE_SERVER_IMAGE).items():
        for target, source in bind_mounts(svc).items():
            root = _xml(source) if source.suffix == ".xml" and source.is_file() else None
            if root is None:
                continue
            if target.startswith("/etc/clickhouse-server/config.d/") and root.find("macros") is not None:
                setup.macros[name] = {m.tag: (m.text or "").strip() for m in root.find("macros")}
            if target.startswith("/etc/clickhouse-server/users.d/"):
                for user in root.find("users") or []:
                    setup.users[user.tag] = user.findtext("password_sha256_hex") or ""
                    if user.find("password") is not None:
                        setup.plaintext[user.tag] = user.findtext("password") or ""
                    setup.networks[user.tag] = [(ip.text or "").strip() for ip in user.findall("networks/ip")]
                    setup.networks[user.tag] += [f"host {h.text}" for h in user.findall("networks/host")]
                    grants = user.find("grants")
                    setup.grants[user.tag] = (
                        None
                        if grants is None
                        else [" ".join((q.text or "").split()) for q in grants.findall("query")]
                    )
    return setup


def clickhouse_problems(setup: ClickHouseSetup, data: dict[str, Any]) -> list[str]:
    problems = []
    cluster_name = airflow_env(data).get("LABEL_BACKFILL_CLICKHOUSE_CLUSTER", "")
    servers = services_with_image(data, CLICKHOUSE_SERVER_IMAGE)
    keepers = services_with_image(data, CLICKHOUSE_KEEPER_IMAGE)
    shards = setup.clusters.get(cluster_name)
    if shards is None:
        return [f"cluster {cluster_name!r} (LABEL_BACKFILL_CLICKHOUSE_CLUSTER) is not in <remote_servers>"]
    if len(shards) != 2:
        problems.append(f"cluster {cluster_name} has {len(shards)} shards, the stack runs 2")
    hosts = []
    for number, shard in enumerate(shards, 1):
        if not shard["internal_replication"]:
            problems.append(f"shard {number}: internal_replication must be true (replicated tables)")
        if not shard["replicas"]:
            problems.append(f"shard {number} has no replica")
        for host, port in shard["replicas"]:
            hosts.append(host)
            if host not in servers:
                problems.append(f"shard {number}: {host} is not a compose ClickHouse server service")
            elif servers[host].get("hostname", host) != host:
                problems.append(f"{host}: compose hostname differs, ON CLUSTER would not find itself")
            if port != 9000:
                problems.append(f"shard {number}: {host}:{port} is not the native port 9000")
    if sorted(hosts) != sorted(servers):
        problems.append(f"cluster hosts {sorted(hosts)} != ClickHouse services {sorted(servers)}")
    # every server: its own macros (distinct shard + replica), and every macro the replicated DDL uses
    needed = set(re.findall(r"\{(\w+)\}", REPLICATED_DDL.read_text())) - BUILTIN_MACROS
    for name in servers:
        if name not in setup.macros:
            problems.append(f"{name} mounts no macros file into config.d")
            continue
        missing = needed - set(setup.macros[name])
        if missing:
            problems.append(
                f"{name}: macros {sorted(missing)} used by create_table_replicated.sql are undefined"
            )
    for macro in ("shard", "replica"):
        values = [m.get(macro) for m in setup.macros.values()]
        if len(set(values)) != len(values):
            problems.append(f"two servers share the {macro} macro value: {values}")
    # Keeper
    if not setup.zookeeper:
        problems.append("no <zookeeper> node: replicated tables and ON CLUSTER need Keeper")
    for host, port in setup.zookeeper:
        if host not in keepers:
            problems.append(f"<zookeeper> host {host} is not a compose clickhouse-keeper service")
        if port != setup.keeper_port:
            problems.append(f"<zookeeper> port {port} != keeper tcp_port {setup.keeper_port}")
    for host in setup.keeper_raft_hosts:
        if host not in keepers:
            problems.append(f"keeper raft member {host} is not a compose clickhouse-keeper service")
    for name, svc in keepers.items():
        if bind_mounts(svc).get("/etc/clickhouse-keeper/keeper_config.xml") != (
            CLICKHOUSE_DIR / "keeper.xml"
        ):
            problems.append(f"{name} does not mount include/clickhouse/keeper.xml as its keeper_config.xml")
    return problems


def credential_problems(
    setup: ClickHouseSetup, data: dict[str, Any], docs: list[tuple[str, Any]]
) -> list[str]:
    """Every ClickHouse / Postgres credential in the stack is one the servers actually create."""
    problems = []
    env = airflow_env(data)
    seed_env = {k: str(v) for k, v in data["services"]["seed"]["environment"].items()}
    dsns = secret_dsns(docs)
    ch_conn = json.loads(env["AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS"])
    clickhouse_users = {"airflow connection": (ch_conn.get("login"), ch_conn.get("password"))}
    for where, dsn in (
        ("seed", seed_env["SEED_CLICKHOUSE_DSN"]),
        ("k8s secret", dsns[label_job.ENV_CLICKHOUSE_DSN]),
    ):
        parts = urlsplit(dsn)
        clickhouse_users[where] = (parts.username, parts.password)
        if parts.hostname not in services_with_image(data, CLICKHOUSE_SERVER_IMAGE) or parts.port != 8123:
            problems.append(f"{where}: ClickHouse DSN does not point at a server's HTTP port: {parts.netloc}")
    for where, (user, password) in clickhouse_users.items():
        if setup.users.get(user) != hashlib.sha256((password or "").encode()).hexdigest():
            problems.append(f"{where}: ClickHouse user {user!r} with that password is not in users.d")
    init = data["configs"]["postgres-init"]["content"]
    roles = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']*)'", init))
    databases = set(re.findall(r"CREATE DATABASE (\w+)", init))
    pg_conn = json.loads(env["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])
    postgres = {"airflow connection": (pg_conn.get("login"), pg_conn.get("password"), pg_conn.get("schema"))}
    for where, dsn in (
        ("seed", seed_env["SEED_POSTGRES_DSN"]),
        ("k8s secret", dsns[label_job.ENV_POSTGRES_DSN]),
    ):
        parts = urlsplit(dsn)
        postgres[where] = (parts.username, parts.password, parts.path.lstrip("/"))
    for where, (user, password, database) in postgres.items():
        if roles.get(user) != password:
            problems.append(
                f"{where}: Postgres role {user!r} with that password is not created by postgres-init"
            )
        if database not in databases:
            problems.append(f"{where}: Postgres database {database!r} is not created by postgres-init")
    return problems


def _privileges(grants: list[str]) -> set[tuple[str, str]]:
    """``GRANT A, B ON x [TO u]`` as {(A, x), (B, x)}."""
    found = set()
    for grant in grants:
        names, target = grant.removeprefix("GRANT ").rsplit(" TO ", 1)[0].rsplit(" ON ", 1)
        found |= {(name.strip(), target) for name in names.split(",")}
    return found


def clickhouse_user_problems(setup: ClickHouseSetup, data: dict[str, Any]) -> list[str]:
    """The compose ClickHouse users: hashed passwords, the compose network only, explicit grants; the DAGs'
    user holds exactly the package's grants (``label_backfill.sql.clickhouse_grants``, cluster mode, no
    local runner) in every database the seed creates."""
    problems = []
    subnets = [
        ipaddress.ip_network(pool["subnet"])
        for pool in (data.get("networks") or {}).get("stack", {}).get("ipam", {}).get("config", [])
    ]
    for user in setup.users:
        if user in setup.plaintext:
            problems.append(f"ClickHouse user {user}: plaintext <password>; use <password_sha256_hex>")
        if not setup.users[user]:
            problems.append(f"ClickHouse user {user}: no <password_sha256_hex>")
        if not setup.networks.get(user):
            problems.append(f"ClickHouse user {user}: no <networks> (any address)")
        for network in setup.networks.get(user, []):
            try:
                net = ipaddress.ip_network(network)
            except ValueError:
                problems.append(f"ClickHouse user {user}: network {network!r} is not an address range")
                continue
            if not any(net.version == s.version and net.subnet_of(s) for s in subnets):
                problems.append(f"ClickHouse user {user}: network {network} is outside the compose subnet")
        if setup.grants.get(user) is None:
            problems.append(
                f"ClickHouse user {user}: no <grants> (a users.xml user without them has every privilege)"
            )
    conn = json.loads(airflow_env(data)["AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS"])
    dag_user = conn.get("login")
    seed_env = {k: str(v) for k, v in data["services"]["seed"]["environment"].items()}
    databases = [
        database_name(customer, region) for customer, region in SCALES[seed_env["SEED_SCALE"]].customers
    ]
    settings = label_settings.load(airflow_env(data))
    expected = _privileges(
        [
            g
            for db in databases
            for g in label_sql.clickhouse_grants(
                db,
                dag_user,
                cluster=bool(settings.clickhouse_cluster),
                local_runner=settings.job_runner == "local",
            )
        ]
    )
    shipped = _privileges(setup.grants.get(dag_user) or [])
    for privilege, target in sorted(expected - shipped):
        problems.append(f"ClickHouse user {dag_user} (the DAGs) lacks {privilege} ON {target}")
    for privilege, target in sorted(shipped - expected):
        problems.append(
            f"ClickHouse user {dag_user} (the DAGs) has {privilege} ON {target}, which the package never needs"
        )
    return problems


def test_clickhouse_users_have_hashed_passwords_the_compose_network_and_exactly_the_grants():
    data = compose()
    assert clickhouse_user_problems(load_clickhouse_setup(data), data) == []


CLICKHOUSE_USER_BREAKAGES = [
    (lambda s, d: s.networks["label_backfill"].append("::/0"), "network ::/0 is outside the compose subnet"),
    (lambda s, d: s.networks["label_conversations"].clear(), "no <networks>"),
    (lambda s, d: s.plaintext.update(label_backfill="label_backfill_dev"), "plaintext <password>"),
    (lambda s, d: s.grants.update(label_conversations=None), "no <grants>"),
    (lambda s, d: s.grants["label_backfill"].append("GRANT INSERT ON alaska_air_us_east_1.conversation_with_labels"),
     "has INSERT ON alaska_air_us_east_1.conversation_with_labels"),
    (lambda s, d: s.grants["label_backfill"].remove("GRANT REMOTE ON *.*"), "lacks REMOTE ON *.*"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutate, expected", CLICKHOUSE_USER_BREAKAGES, ids=[case[-1] for case in CLICKHOUSE_USER_BREAKAGES]
)
def test_clickhouse_user_checks_catch_breakage(mutate, expected):
    data = compose()
    setup = load_clickhouse_setup(data)
    assert clickhouse_user_problems(setup, data) == []
    mutate(setup, data)
    problems = clickhouse_user_problems(setup, data)
    assert any(expected in p for p in problems), problems


def test_clickhouse_cluster_macros_and_keeper_match_the_compose_services():
    data = compose()
    setup = load_clickhouse_setup(data)
    assert airflow_env(data)["LABEL_BACKFILL_CLICKHOUSE_CLUSTER"] in setup.clusters
    assert clickhouse_problems(setup, data) == []


def test_clickhouse_and_postgres_credentials_are_the_ones_the_servers_create():
    data = compose()
    assert credential_problems(load_clickhouse_setup(data), data, k8s_docs()) == []


def _shard(setup: ClickHouseSetup, index: int) -> dict[str, Any]:
    return setup.clusters["conversations"][index]


# (mutation, text the problems must contain)
CLICKHOUSE_BREAKAGES = [
    (lambda s, d: s.clusters.update(other=s.clusters.pop("conversations")), "is not in <remote_servers>"),
    (lambda s, d: s.clusters["conversations"].pop(), "has 1 shards"),
    (lambda s, d: _shard(s, 1).update(replicas=[("clickhouse-s3", 9000)]), "not a compose ClickHouse server"),
    (lambda s, d: _shard(s, 0).update(internal_replication=False), "internal_replication"),
    (lambda s, d: _shard(s, 0).update(replicas=[("clickhouse-s1", 8123)]), "native port"),
    (lambda s, d: s.macros["clickhouse-s2"].update(shard=s.macros["clickhouse-s1"]["shard"]),
     "share the shard macro"),
    (lambda s, d: s.macros["clickhouse-s2"].pop("replica"), "are undefined"),
    (lambda s, d: s.macros.pop("clickhouse-s1"), "mounts no macros file"),
    (lambda s, d: s.zookeeper.__setitem__(0, ("zookeeper", 9181)), "not a compose clickhouse-keeper"),
    (lambda s, d: s.zookeeper.__setitem__(0, ("clickhouse-keeper", 2181)), "keeper tcp_port"),
    (lambda s, d: s.keeper_raft_hosts.__setitem__(0, "keeper-1"), "raft member"),
    (lambda s, d: d["services"]["clickhouse-s2"].update(hostname="ch2"), "hostname differs"),
    (lambda s, d: d["services"]["airflow-scheduler"]["environment"].update(
        LABEL_BACKFILL_CLICKHOUSE_CLUSTER="conversations_v2"), "is not in <remote_servers>"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutate, expected", CLICKHOUSE_BREAKAGES, ids=[case[-1] for case in CLICKHOUSE_BREAKAGES]
)
def test_clickhouse_checks_catch_breakage(mutate, expected):
    data = compose()
    setup = load_clickhouse_setup(data)
    assert clickhouse_problems(setup, data) == [], "the real config must pass before it is broken"
    mutate(setup, data)
    problems = clickhouse_problems(setup, data)
    assert any(expected in p for p in problems), problems


# (mutation, text the problems must contain)
CREDENTIAL_BREAKAGES = [
    (lambda s, d, k: s.users.update(label_backfill="wrong"), "airflow connection: ClickHouse user"),
    (lambda s, d, k: next(x for _, x in k if x.get("kind") == "Secret" and "stringData" in x)["stringData"].update(
        LABEL_CONVERSATIONS_CLICKHOUSE_DSN="http://label_conversations:nope@clickhouse-s1:8123"),
     "k8s secret: ClickHouse user"),
    (lambda s, d, k: d["services"]["seed"]["environment"].update(
        SEED_CLICKHOUSE_DSN="http://label_backfill:label_backfill_dev@clickhouse:8123"), "does not point"),
    (lambda s, d, k: d["services"]["seed"]["environment"].update(
        SEED_POSTGRES_DSN="postgresql://conversations:conversations@postgres:5432/airflow"),
     "database 'airflow'"),
    (lambda s, d, k: d["configs"]["postgres-init"].update(content="CREATE DATABASE conversations;"),
     "Postgres role 'conversations'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutate, expected", CREDENTIAL_BREAKAGES, ids=[case[-1] for case in CREDENTIAL_BREAKAGES]
)
def test_credential_checks_catch_breakage(mutate, expected):
    data, docs = compose(), k8s_docs()
    setup = load_clickhouse_setup(data)
    assert credential_problems(setup, data, docs) == []
    mutate(setup, data, docs)
    problems = credential_problems(setup, data, docs)
    assert any(expected in p for p in problems), problems
