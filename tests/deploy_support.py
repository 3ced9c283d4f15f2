"""Reading the deployment files without their tools: a kustomize renderer for the subset our
manifests use (no `kustomize` binary here), YAML and PromQL helpers, and the metric names the
code defines."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OBSERVABILITY = ROOT / "deploy" / "observability"
# Kinds kustomize leaves without a namespace.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
# The kustomization fields this renderer understands; any other makes it refuse.
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches", "labels"}
Doc = dict[str, Any]


def load_documents(path: Path) -> list[Doc]:
    """The non-empty YAML documents of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge as kustomize does it for our patches: maps merge key by key, lists of
    maps that all have a `name` merge by name, any other value replaces."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge_patch(target[key], value) if key in target else value
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in target + patch)
    ):
        by_name = {item["name"]: item for item in target}
        out = [merge_patch(by_name[p["name"]], p) if p["name"] in by_name else p for p in patch]
        patched = {p["name"] for p in patch}
        return [item for item in target if item["name"] not in patched] + out
    return copy.deepcopy(patch)


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    template = spec.get("template", spec.get("jobTemplate", {}).get("spec", {}).get("template"))
    if not template:
        return []
    pod = template.get("spec", {})
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def render(directory: Path) -> list[Doc]:
    """The resources a kustomization directory renders to."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer cannot do: {unknown}")
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        docs += render(path) if path.is_dir() else load_documents(path)
    for patch_ref in kustomization.get("patches", []):
        for patch in load_documents(directory / patch_ref["path"]):
            matches = [i for i, doc in enumerate(docs) if _key(doc) == _key(patch)]
            if len(matches) != 1:
                raise ValueError(f"patch {patch_ref['path']} matches {len(matches)} resources")
            docs[matches[0]] = merge_patch(docs[matches[0]], patch)
    for label in kustomization.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise ValueError("labels into selectors or templates are not rendered here")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    if namespace := kustomization.get("namespace"):
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
    return docs


def containers(doc: Doc) -> list[Doc]:
    """The containers of a workload (Deployment, Job...)."""
    return _containers(doc)


# A metric name in PromQL: a word before `{`, `[` or `(`/`)`/space, that is not a function,
# keyword or label. Good enough for our own expressions (checked against known names anyway).
_PROMQL_WORDS = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_NOT_METRICS = {
    "sum", "rate", "irate", "increase", "by", "without", "on", "ignoring", "group_left",
    "group_right", "histogram_quantile", "max", "min", "avg", "count", "topk", "bottomk",
    "le", "and", "or", "unless", "bool", "offset", "clamp_min", "clamp_max", "abs",
    "max_over_time", "min_over_time", "avg_over_time", "label_replace", "vector", "time",
    "delta", "deriv", "absent", "changes", "resets", "sort", "sort_desc", "count_over_time",
    "sum_over_time", "scalar", "round", "ceil", "floor", "quantile_over_time",
}  # fmt: skip


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression reads (label matchers, strings and durations removed)."""
    stripped = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    stripped = re.sub(r'"[^"]*"', " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)  # range durations
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", stripped)  # label lists
    names = set()
    for word in _PROMQL_WORDS.findall(stripped):
        if word in _PROMQL_NOT_METRICS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        names.add(word)
    return names


_METRIC_DEFINITION = re.compile(
    r"(?:Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*\"(vortex_[a-z0-9_]+)\"", re.S
)


def defined_metrics() -> set[str]:
    """Prometheus series names our code defines (prometheus_client, with their suffixes)."""
    names: set[str] = set()
    for path in ROOT.glob("[a-z]*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        source = path.read_text()
        for match in _METRIC_DEFINITION.finditer(source):
            name = match.group(1)
            kind = source[: match.start(1)].rsplit("(", 1)[0].rsplit(None, 1)[-1]
            names.add(name)
            if kind.endswith("Counter"):
                names.add(name.removesuffix("_total") + "_total")
            if kind.endswith("Histogram"):
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names
