"""deploy/k8s, checked without a cluster: each overlay rendered (tests/deploy/kustomize.py),
every object valid against the Kubernetes schemas (kubernetes-validate), and the
project's own rules: probes, limits, an unprivileged numeric user and a read-only root
in every container; every setting wired; every queue with a worker, an autoscaler and a
disruption budget; only the API reachable from outside, metrics from monitoring only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from services.worker.alive import __name__ as ALIVE_MODULE
from shared.settings import FILE_SUFFIX
from shared.task_queues import QUEUES
from tests.deploy.kustomize import pod_spec, render
from tests.deploy.test_compose import settings_names

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("production", "dev")
KUBERNETES_VERSION = "1.30"
# KEDA's custom resources: no schema ships with kubernetes-validate; checked by rule below.
KEDA = "keda.sh/v1alpha1"
# Read by Flower and gunicorn themselves, by the simulator, not by shared/settings.py.
OWN_VARIABLES = {"FLOWER_PORT", "FLOWER_BASIC_AUTH", "WEB_CONCURRENCY", "GUNICORN_THREADS"}
OWN_VARIABLES |= {"MONNIFY_SIM_HOST", "SIM_PUBLIC_URL"}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> list[dict[str, Any]]:
    return render(K8S / "overlays" / request.param)


def _named(rendered, kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in rendered if r["kind"] == kind}


def _containers(rendered) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(resource, pod spec, container) for every container of every workload."""
    return [
        (resource, spec, container)
        for resource in rendered
        if (spec := pod_spec(resource)) is not None
        for container in spec["containers"]
    ]


def test_every_object_is_valid_kubernetes(rendered):
    for resource in rendered:
        if resource["apiVersion"] == KEDA:
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_every_long_running_container_has_probes(rendered):
    for resource, _, container in _containers(rendered):
        if resource["kind"] == "Job":
            continue
        name = resource["metadata"]["name"]
        assert "livenessProbe" in container, name
        if container.get("ports") and name in _named(rendered, "Service"):
            assert "readinessProbe" in container, f"{name} takes traffic: it needs readiness"


def test_the_api_is_ready_on_its_servers_only_and_alive_on_healthz(rendered):
    api = _named(rendered, "Deployment")["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_every_container_has_requests_and_limits(rendered):
    for resource, _, container in _containers(rendered):
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, resource["metadata"][
                "name"
            ]


def test_every_container_runs_unprivileged_on_a_read_only_root(rendered):
    for resource, spec, container in _containers(rendered):
        name = resource["metadata"]["name"]
        context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
        assert context["runAsNonRoot"] is True, name
        assert isinstance(context["runAsUser"], int) and context["runAsUser"] >= 10000, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name


def _variables(rendered, container) -> set[str]:
    """What the container's environment defines: env, every ConfigMap key in envFrom,
    and NAME for every NAME_FILE."""
    config_maps = _named(rendered, "ConfigMap")
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(config_maps[source["configMapRef"]["name"]]["data"])
    return names | {name.removesuffix(FILE_SUFFIX) for name in names if name.endswith(FILE_SUFFIX)}


def test_every_setting_is_wired_into_every_service_of_the_base(rendered):
    for resource, _, container in _containers(rendered):
        if resource["metadata"]["name"] == "monnify-sim":
            continue  # development only, on the development defaults
        missing = settings_names() - _variables(rendered, container)
        assert not missing, f"{resource['metadata']['name']}: {sorted(missing)}"


def test_every_variable_set_is_read_by_something(rendered):
    known = settings_names() | {name + FILE_SUFFIX for name in settings_names()} | OWN_VARIABLES
    for resource, _, container in _containers(rendered):
        unknown = _variables(rendered, container) - known
        assert not unknown, f"{resource['metadata']['name']}: {sorted(unknown)}"


def test_secrets_come_from_files_not_the_environment(rendered):
    for resource, _, container in _containers(rendered):
        if resource["metadata"]["name"] == "monnify-sim":
            continue
        env = {variable["name"]: variable for variable in container.get("env", [])}
        for secret in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "MONNIFY_SECRET_KEY"):
            assert secret not in env and f"{secret}_FILE" in env, resource["metadata"]["name"]


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_every_queue_has_a_worker_an_autoscaler_and_a_disruption_budget(rendered):
    deployments = _named(rendered, "Deployment")
    scalers = _named(rendered, "ScaledObject")
    budgets = _named(rendered, "PodDisruptionBudget")
    workers = {name for name in deployments if name.startswith("worker-")}
    assert workers == {f"worker-{queue}" for queue in QUEUES}
    for queue in QUEUES:
        name = f"worker-{queue}"
        pod = deployments[name]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert _option(container["command"], "-Q") == queue
        assert _option(container["command"], "-n") == f"{queue}@%h"
        probe = container["livenessProbe"]["exec"]["command"]
        assert probe == ["python", "-m", ALIVE_MODULE, queue], "it must ping this worker's node"
        assert pod["spec"]["terminationGracePeriodSeconds"] >= 60, "room for a warm shutdown"
        scaler = scalers[name]["spec"]
        assert scaler["scaleTargetRef"]["name"] == name
        assert scaler["minReplicaCount"] >= 1
        (trigger,) = scaler["triggers"]
        assert (trigger["type"], trigger["metadata"]["listName"]) == ("redis", queue)
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert "maxUnavailable" in budgets[name]["spec"], "minAvailable would block drains"


def test_the_api_scales_on_cpu_behind_a_disruption_budget(rendered):
    hpa = _named(rendered, "HorizontalPodAutoscaler")["api"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "api" and hpa["minReplicas"] >= 2
    assert _named(rendered, "PodDisruptionBudget")["api"]["spec"]["minAvailable"] == 1


def test_beat_is_exactly_one(rendered):
    beat = _named(rendered, "Deployment")["beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
    assert "beat" not in _named(rendered, "ScaledObject")
    assert "beat" not in _named(rendered, "HorizontalPodAutoscaler")


def test_migrations_run_as_a_job(rendered):
    job = _named(rendered, "Job")["migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["python", "-m", "services.manage", "migrate"]
    assert job["restartPolicy"] == "OnFailure"


def _allowed_sources(policy) -> list[dict[str, Any]]:
    return [source for rule in policy["spec"].get("ingress", []) for source in rule["from"]]


def test_nothing_is_reachable_unless_a_policy_says_so(rendered):
    policies = _named(rendered, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_only_the_api_is_reachable_from_outside_and_metrics_from_monitoring(rendered):
    for policy in _named(rendered, "NetworkPolicy").values():
        selected = policy["spec"]["podSelector"].get("matchLabels", {})
        for source in _allowed_sources(policy):
            namespace = source.get("namespaceSelector", {}).get("matchLabels", {})
            other = namespace.get("kubernetes.io/metadata.name")
            if other == "ingress-nginx":
                assert selected == {"app.kubernetes.io/name": "api"}
            elif other is not None:
                assert other == "monitoring", policy["metadata"]["name"]
            else:
                assert "podSelector" in source, "no source outside the namespace"
    worker_policy = _named(rendered, "NetworkPolicy")["worker-metrics-from-monitoring"]
    (rule,) = worker_policy["spec"]["ingress"]
    assert [port["port"] for port in rule["ports"]] == [9808]


def test_only_the_dev_overlay_runs_the_simulator():
    production = _named(render(K8S / "overlays" / "production"), "Deployment")
    dev = _named(render(K8S / "overlays" / "dev"), "Deployment")
    assert "monnify-sim" not in production and "monnify-sim" in dev


def test_production_routes_the_public_api_and_never_metrics():
    production = render(K8S / "overlays" / "production")
    (ingress,) = _named(production, "Ingress").values()
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert not paths & {"/metrics", "/readyz", "/healthz", "/"}
    assert {"/auth", "/wallet", "/payments", "/calls", "/openapi.json"} <= paths
    images = {c["image"] for _, _, c in _containers(production)}
    assert images == {"registry.example.com/payment-call-system:0.1.0"}, "one pinned image"
    assert _named(production, "ConfigMap")["payments-config"]["data"]["APP_ENV"] == "production"
