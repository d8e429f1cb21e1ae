"""A renderer for the subset of kustomize that deploy/k8s uses, so the tests can check
the manifests without the kustomize binary or a cluster: `resources` (files and
directories), `patches` (strategic merge, targeted by kind), `labels` (with
includeTemplates), `namespace` and `images`. A field outside the subset is an error,
never silently ignored: extend this, or the manifests, together."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "labels", "namespace", "images"}
CLUSTER_SCOPED = {"Namespace"}
# Lists strategic merge patches merge item by item, by this key (Kubernetes' own
# patchMergeKey for each); any other list is replaced.
MERGE_KEYS = {
    "containers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
Resource = dict[str, Any]


class UnsupportedKustomization(Exception):
    pass


def render(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise UnsupportedKustomization(f"{directory}: {sorted(unsupported)}")
    resources = [
        resource
        for entry in kustomization.get("resources", [])
        for resource in _load(directory / entry)
    ]
    for patch in kustomization.get("patches", []):
        _patch(resources, directory, patch)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        _label(resources, label)
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    return resources


def _load(path: Path) -> list[Resource]:
    if path.is_dir():
        return render(path)
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _patch(resources: list[Resource], directory: Path, entry: dict[str, Any]) -> None:
    if set(entry) - {"path", "target"} or set(entry.get("target", {})) - {"kind"}:
        raise UnsupportedKustomization(f"{directory}: patch {entry}")
    patch = yaml.safe_load((directory / entry["path"]).read_text())
    matched = [resource for resource in resources if _targets(entry, patch, resource)]
    if not matched:
        raise UnsupportedKustomization(f"{directory}: patch {entry} matches nothing")
    body = {
        key: value for key, value in patch.items() if key not in ("apiVersion", "kind", "metadata")
    }
    for resource in matched:
        merged = merge(resource, body)
        resource.clear()
        resource.update(merged)


def _targets(entry: dict[str, Any], patch: Resource, resource: Resource) -> bool:
    """A targeted patch applies to every resource of the kind (its own kind and name are
    replaced by the target's); an untargeted one to the resource it names."""
    if "target" in entry:
        return resource["kind"] == entry["target"]["kind"]
    names = (resource["kind"], resource["metadata"]["name"])
    return names == (patch["kind"], patch["metadata"]["name"])


def merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Strategic merge: maps recursively, keyed lists item by item, anything else replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for name, value in patch.items():
            merged[name] = merge(base[name], value, name) if name in base else copy.deepcopy(value)
        return merged
    merge_key = MERGE_KEYS.get(key or "")
    if merge_key and isinstance(base, list) and isinstance(patch, list):
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next(
                (i for i, old in enumerate(merged) if old[merge_key] == item[merge_key]), None
            )
            if index is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[index] = merge(merged[index], item)
        return merged
    return copy.deepcopy(patch)


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    if resource["kind"] in ("Deployment", "Job"):
        return resource["spec"]["template"]["spec"]
    return None


def _label(resources: list[Resource], entry: dict[str, Any]) -> None:
    if set(entry) - {"pairs", "includeTemplates"}:
        raise UnsupportedKustomization(f"labels {entry}")
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(entry["pairs"])
        if entry.get("includeTemplates") and pod_spec(resource) is not None:
            template = resource["spec"]["template"].setdefault("metadata", {})
            template.setdefault("labels", {}).update(entry["pairs"])


def _set_image(resources: list[Resource], entry: dict[str, str]) -> None:
    for resource in resources:
        spec = pod_spec(resource)
        for container in (spec or {}).get("containers", []):
            name, _, tag = container["image"].partition(":")
            if name == entry["name"]:
                new_tag = entry.get("newTag", tag)
                container["image"] = entry.get("newName", name) + (f":{new_tag}" if new_tag else "")
