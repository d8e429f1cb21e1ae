"""docker-compose.yml, checked without Docker: start order waits on healthchecks, every
environment name is one something reads, every command is a real entry point and the
same one `make run` starts. Also checks that .env.example and the README document every
variable the settings read."""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import importlib.util
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from celery import Celery
from flower.options import options as flower_options

from services.devstack import MIGRATE, LaunchConfig, process_specs
from services.monnify_sim.config import SIM_ENV_NAMES
from services.worker.alive import BEAT_STALE_SECONDS, beat_alive
from shared.settings import FILE_SUFFIX, ConfigError, load_settings
from shared.task_queues import QUEUES

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO_ROOT / "deploy" / "gunicorn.conf.py"
WORKERS = tuple(f"worker-{queue}" for queue in QUEUES)

# Names the compose file may set although shared/settings.py does not read them, each
# with its reader; test_allow_listed_names_are_really_read keeps this list honest.
READ_BY_GUNICORN_CONFIG = {
    "WEB_CONCURRENCY": "gunicorn worker processes",
    "GUNICORN_THREADS": "threads per gunicorn worker",
    "BIND_HOST": "interface gunicorn binds",
}
READ_BY_FLOWER = {
    "FLOWER_PORT": "Flower reads its options from FLOWER_* variables",
    "FLOWER_BASIC_AUTH": "Flower's dashboard login, user:password",
}
READ_BY_SIMULATOR = set(SIM_ENV_NAMES)  # the simulator's own knobs (services/monnify_sim/config.py)
# Documented in .env.example for `make run` only (services/devstack.py).
READ_BY_LAUNCHER = {
    "DEVSTACK_DATA_DIR",
    "EMBEDDED_MONGO_PORT",
    "EMBEDDED_REDIS_PORT",
    "WORKER_CALLS_CONCURRENCY",
    "WORKER_PAYMENTS_CONCURRENCY",
    "WORKER_HOUSEKEEPING_CONCURRENCY",
}
# Launcher only; never in the compose file, whose containers it does not run.
FORBIDDEN_IN_COMPOSE = READ_BY_LAUNCHER


class _RecordingEnv(dict):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.names.add(name)
        return super().get(name, default)


def settings_names() -> set[str]:
    """The variables shared/settings.py reads (without their NAME_FILE alternatives)."""
    env = _RecordingEnv()
    load_settings(env)
    return {name for name in env.names if not name.endswith(FILE_SUFFIX)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


APP_IMAGE = "payment-call-system:local"


def _app_services(services) -> dict[str, dict[str, Any]]:
    """The services run from this repository's image (not mongo, redis)."""
    return {name: spec for name, spec in services.items() if spec.get("image") == APP_IMAGE}


# ---------------------------------------------------------------- start order


def test_every_service_has_a_healthcheck_or_waits_on_healthy_ones(services):
    for name, spec in services.items():
        assert "healthcheck" in spec or spec.get("depends_on"), name
        if spec.get("restart") != "no":  # a one-shot job (migrate) has nothing to check
            assert not spec.get("healthcheck", {}).get("disable"), name


def test_dependencies_wait_until_healthy(services):
    for name, spec in services.items():
        depends_on = spec.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, condition in depends_on.items():
            if condition == {"condition": "service_completed_successfully"}:
                # A one-shot job (the migrations): it must not be restarted once done.
                assert services[target]["restart"] == "no", f"{name} -> {target}"
                continue
            assert condition == {"condition": "service_healthy"}, f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{name} waits on {target}, which has none"


def test_every_app_service_waits_for_its_servers(services):
    apps = _app_services(services)
    for name in ("api", "beat", *WORKERS):
        assert {"mongo", "redis", "migrate"} <= set(apps[name]["depends_on"]), name
    assert {"mongo", "redis"} <= set(apps["migrate"]["depends_on"])
    assert "redis" in apps["flower"]["depends_on"]


def test_mongo_is_a_replica_set_the_services_connect_to(services, compose):
    mongo = services["mongo"]
    command = mongo["command"]
    replica_set = command[command.index("--replSet") + 1]
    url = compose["x-app-environment"]["DATABASE_URL"]
    assert url.startswith("mongodb://mongo:27017/")
    assert f"replicaSet={replica_set}" in url
    assert mongo["image"] == "mongo:7"
    initiation = mongo["healthcheck"]["test"][-1]
    assert "rs.initiate" in initiation
    assert f"_id: '{replica_set}'" in initiation
    assert services["redis"]["image"] == "redis:7"


# ---------------------------------------------------------------- environment


def test_app_services_share_one_environment_block(services, compose):
    shared = compose["x-app-environment"]
    for name, spec in _app_services(services).items():
        environment = spec["environment"]
        assert {key: environment[key] for key in shared} == shared, name


def test_every_environment_name_is_read_by_something(services):
    known = settings_names() | set(READ_BY_GUNICORN_CONFIG) | set(READ_BY_FLOWER)
    known |= READ_BY_SIMULATOR
    for name, spec in services.items():
        if spec.get("image") != APP_IMAGE:
            assert not spec.get("environment"), f"{name}: image services need no variables"
            continue
        unknown = set(spec["environment"]) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"
        assert not set(spec["environment"]) & FORBIDDEN_IN_COMPOSE, name


# Set per service where they apply, not in the shared block.
PER_SERVICE_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR", "WORKER_METRICS_PORT"}


def test_every_setting_can_be_passed_through(services, compose):
    """The other direction: nothing shared/settings.py reads is out of an operator's reach."""
    shared = set(compose["x-app-environment"])
    assert settings_names() - PER_SERVICE_SETTINGS <= shared, sorted(
        settings_names() - PER_SERVICE_SETTINGS - shared
    )
    for name in ("api", *WORKERS):
        assert "PROMETHEUS_MULTIPROC_DIR" in services[name]["environment"], name
    for name in WORKERS:
        assert "WORKER_METRICS_PORT" in services[name]["environment"], name


def test_allow_listed_names_are_really_read():
    gunicorn_config = GUNICORN_CONFIG.read_text()
    for name in READ_BY_GUNICORN_CONFIG:
        assert f'"{name}"' in gunicorn_config or f"'{name}'" in gunicorn_config, name
    for name in READ_BY_FLOWER:
        # Flower turns FLOWER_X into its option x, and fails to start on an unknown one.
        assert name.removeprefix("FLOWER_").lower() in flower_options, name
    launcher = (REPO_ROOT / "services" / "devstack.py").read_text()
    for name in READ_BY_LAUNCHER:
        assert f'"{name}"' in launcher, name


def _env_example_names() -> set[str]:
    """Names in .env.example, set or commented out (`# NAME=`)."""
    text = (REPO_ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_documents_every_setting_and_nothing_unknown():
    documented = _env_example_names()
    assert settings_names() <= documented, sorted(settings_names() - documented)
    known = settings_names() | set(READ_BY_GUNICORN_CONFIG) | set(READ_BY_FLOWER)
    known |= READ_BY_LAUNCHER
    assert documented <= known, sorted(documented - known)


def test_readme_documents_every_setting():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = {name for name in settings_names() if f"`{name}`" not in readme}
    assert not missing, sorted(missing)


# ---------------------------------------------------------------- entry points


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _defines_top_level(module: str, name: str) -> bool:
    """True when the module's source assigns `name` at top level (without importing it:
    services.api.wsgi connects to the database when imported)."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
        for node in tree.body
    )


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def entry_point(argv: list[str]) -> tuple[str, ...]:
    """What a command runs, checked to exist: ("gunicorn", config, app),
    ("celery", app module, subcommand[, queue, node name]) or ("python -m", module)."""
    program = Path(argv[0]).name
    if program == "gunicorn":
        config = argv[argv.index("-c") + 1]
        module, _, attribute = argv[-1].partition(":")
        assert (REPO_ROOT / config).is_file(), config
        assert _module_exists(module) and _defines_top_level(module, attribute), argv[-1]
        return ("gunicorn", config, argv[-1])
    if program == "celery":
        module = argv[argv.index("-A") + 1]
        subcommand = argv[argv.index("-A") + 2]
        assert isinstance(importlib.import_module(module).celery, Celery), module
        assert subcommand in ("worker", "beat", "flower"), subcommand
        if subcommand == "worker":  # which queue it drains, under which node name
            return ("celery", module, subcommand, _option(argv, "-Q"), _option(argv, "-n"))
        return ("celery", module, subcommand)
    if program.startswith("python") and argv[1] == "-m":
        module = argv[2]
        spec = importlib.util.find_spec(module)
        assert spec is not None, module
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert _module_exists(f"{module}.__main__"), f"{module}.__main__"
        return ("python -m", module)
    raise AssertionError(f"not a known entry point: {argv}")


def test_every_command_names_a_real_entry_point(services):
    for name, spec in _app_services(services).items():
        assert isinstance(spec.get("command"), list), f"{name}: command must be a list"
        entry_point(spec["command"])


def test_compose_runs_the_same_entry_points_as_make_run(services):
    in_compose = sorted(entry_point(spec["command"]) for spec in _app_services(services).values())
    in_launcher = sorted(entry_point(list(spec.argv)) for spec in _launched())
    assert in_compose == in_launcher


def _launched():
    return [MIGRATE, *_services_launched()]


def _services_launched():
    return process_specs(LaunchConfig(Path(".data"), None, None, dict.fromkeys(QUEUES, 1)), 9808)


def test_one_worker_per_queue_in_compose_and_under_make_run(services):
    for specs in (services, {spec.name: {"command": spec.argv} for spec in _services_launched()}):
        workers = {name: spec for name, spec in specs.items() if name.startswith("worker")}
        assert sorted(workers) == sorted(WORKERS)
        for name, spec in workers.items():
            queue = name.removeprefix("worker-")
            assert _option(list(spec["command"]), "-Q") == queue, name
            assert _option(list(spec["command"]), "-n") == f"{queue}@%h", name


def test_every_app_service_overrides_the_image_healthcheck(services):
    """The image's HEALTHCHECK asks the API's port; any other service answering it
    would be reported unhealthy."""
    for name, spec in _app_services(services).items():
        assert "healthcheck" in spec, name
    beat = services["beat"]
    schedule = _option(beat["command"], "--schedule")
    assert beat["healthcheck"]["test"][-2:] == ["--beat", schedule]


def test_each_compose_worker_checks_its_own_node(services):
    """services.worker.alive QUEUE pings QUEUE@<hostname>: the node `-n QUEUE@%h` names."""
    for name in WORKERS:
        queue = name.removeprefix("worker-")
        check = services[name]["healthcheck"]["test"]
        assert check == ["CMD", "python", "-m", "services.worker.alive", queue], name
        assert _option(services[name]["command"], "-n") == f"{queue}@%h", name


# ---------------------------------------------------------------- deployment shape


def _compose_spec_schema() -> dict[str, Any]:
    """The compose-spec JSON schema, as check-jsonschema ships it (a dev dependency)."""
    schemas = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((schemas / "compose-spec.json").read_text())


def test_the_file_is_valid_compose(compose):
    """What `docker compose config` checks first, without Docker."""
    schema = _compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(compose)
    ]
    assert not errors, errors


def test_one_image_built_once_and_run_by_every_app_service(services):
    built = [name for name, spec in services.items() if "build" in spec]
    assert built == ["migrate"]
    assert services["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name, spec in _app_services(services).items():
        if name != "migrate":
            assert spec["pull_policy"] == "never", f"{name} would try to pull the local image"


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


def test_workers_get_time_to_finish_their_tasks_on_stop(services):
    for name in WORKERS:
        assert _seconds(services[name]["stop_grace_period"]) >= 30, name


def _host_part(port: str) -> str:
    """The published side of "host_ip:host_port:container_port" (empty when unpublished)."""
    return port.rsplit(":", 1)[0] if ":" in port else ""


def test_services_meant_to_scale_publish_no_single_host_port(services):
    for name in ("api", *WORKERS):
        for port in services[name].get("ports", []):
            host_port = _host_part(port).rsplit(":", 1)[-1]
            assert "-" in host_port, f"{name}: {port} would stop a second replica from starting"


def test_development_tools_listen_on_this_machine_only(services):
    for name in ("monnify-sim", "flower", "prometheus", "grafana"):
        for port in services[name]["ports"]:
            assert _host_part(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_simulator_runs_only_under_its_own_profile(services):
    assert services["monnify-sim"]["profiles"] == ["simulator"]


def test_a_jwt_secret_is_required(compose):
    """Compose refuses to start (`${NAME:?message}`) instead of using the public default."""
    assert compose["x-app-environment"]["JWT_SECRET"].startswith("${JWT_SECRET:?")


def test_production_settings_refuse_compose_default_monnify(compose):
    """The simulator's address is compose's default: production refuses it."""
    default = re.fullmatch(
        r"\$\{MONNIFY_BASE_URL:-(.+)\}", compose["x-app-environment"]["MONNIFY_BASE_URL"]
    )
    assert default, "MONNIFY_BASE_URL should default to the simulator"
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "mongodb://mongo:27017/payment_calls",
        "REDIS_URL": "redis://redis:6379/0",
        "JWT_SECRET": "k3Y-9xQ_vL2mR7pZ0aW4sT8nB6cJ1fH5",
        "MONNIFY_API_KEY": "key",
        "MONNIFY_SECRET_KEY": "secret",
        "MONNIFY_CONTRACT_CODE": "123",
        "MONNIFY_BASE_URL": default.group(1),
        "MONNIFY_WALLET_ACCOUNT_NUMBER": "3934178936",
        "KYC_ENCRYPTION_KEY": "cHJvZHVjdGlvbi1reWMta2V5LWZvci10ZXN0cy0zMmI=",
    }
    with pytest.raises(ConfigError, match="simulator"):
        load_settings(env)


def test_the_beat_check_reads_the_schedule_file_age(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    assert not beat_alive(str(schedule))
    (tmp_path / "celerybeat-schedule.db").write_bytes(b"")
    assert beat_alive(str(schedule))
    stale = time.time() - BEAT_STALE_SECONDS - 1
    os.utime(tmp_path / "celerybeat-schedule.db", (stale, stale))
    assert not beat_alive(str(schedule))


def test_prometheus_finds_every_queue_worker_and_alerts_when_one_is_gone():
    """Scaled replicas are found by DNS; a queue whose every replica is gone has no
    target left, so the alert must name each queue in an absent()."""
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (discovery,) = jobs["payments-worker"]["dns_sd_configs"]
    assert sorted(discovery["names"]) == sorted(WORKERS)
    alerts = yaml.safe_load((REPO_ROOT / "deploy/prometheus/alerts.yml").read_text())
    rules = {rule["alert"]: rule for group in alerts["groups"] for rule in group["rules"]}
    (no_worker,) = [rule for rule in rules.values() if 'up{job="payments-worker"' in rule["expr"]]
    for queue in QUEUES:
        assert f'absent(up{{job="payments-worker", worker="{queue}"}})' in no_worker["expr"]
