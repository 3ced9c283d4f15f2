"""The Kubernetes manifests (deploy/k8s): every file used, the overlay renders, every resource
validates against the Kubernetes schemas (kubernetes-validate's bundled ones, strict), and the
production rules hold: probes, resources, PDBs, HPAs, secrets by reference, graceful shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from core.settings import Settings
from tests.deploy_support import K8S, containers, load_documents, render
from workers.assembly import GRACEFUL_SHUTDOWN

KUBERNETES_VERSION = "1.31.0"  # the oldest minor we support; newer ones accept these too
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "production"
WORKLOADS = {"vortex-api", "vortex-worker", "vortex-relay", "vortex-codec-server"}
SECRET_ENV = ("SECRET", "PASSWORD", "TOKEN", "DATABASE_URL", "USERNAME")


def _manifest_files() -> list[Path]:
    files = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert len(files) >= 8, f"expected the manifests under {K8S}, found {files}"  # no vacuity
    return files


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    """The production overlay, rendered, by (kind, name)."""
    docs = render(OVERLAY)
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(by_key) == len(docs), "two resources with the same kind and name"
    return by_key


def test_every_manifest_file_is_in_its_kustomization() -> None:
    for path in _manifest_files():
        kustomization = load_documents(path.parent / "kustomization.yaml")[0]
        used = set(kustomization.get("resources", [])) | {
            p["path"] for p in kustomization.get("patches", [])
        }
        assert path.name in used, f"{path} is not used by its kustomization"


def test_the_overlay_renders_every_component(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    kinds = {key for key in rendered}
    assert {("Deployment", name) for name in WORKLOADS} <= kinds
    assert ("Job", "vortex-migrate") in kinds
    assert {("PodDisruptionBudget", name) for name in WORKLOADS} <= kinds
    assert {("HorizontalPodAutoscaler", n) for n in ("vortex-api", "vortex-worker")} <= kinds
    assert not [key for key in kinds if key[0] == "Secret"]  # secrets are never in the repo
    for (kind, _), doc in rendered.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "vortexcore"
    images = {c["image"] for doc in rendered.values() for c in containers(doc)}
    assert images == {"registry.example.invalid/vortexcore:1.0.0"}
    assert rendered[("HorizontalPodAutoscaler", "vortex-api")]["spec"]["minReplicas"] == 3


def test_every_resource_validates_against_the_kubernetes_schemas(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    checked = 0
    for doc in rendered.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    for path in _manifest_files():
        if path.parent == BASE:  # base files are whole resources (overlay ones are patches)
            for doc in load_documents(path):
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                checked += 1
    assert checked > 20


def test_a_schema_violation_is_caught() -> None:
    """The validation is real: a Deployment with a misspelt field fails it."""
    deployment = next(d for d in render(OVERLAY) if d["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_workloads_have_probes_resources_and_secrets_by_reference(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for (kind, name), doc in rendered.items():
        if kind not in {"Deployment", "Job"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in containers(doc):
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["limits"]["memory"], name
            for env in container.get("env", []):
                if any(word in env["name"] for word in SECRET_ENV):
                    assert "value" not in env, f"{name}: {env['name']} must come from a Secret"
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "vortexcore-secrets"
            if name in {"vortex-api", "vortex-worker", "vortex-codec-server"}:
                assert container["livenessProbe"], name
                assert container["readinessProbe"], name
    api = containers(rendered[("Deployment", "vortex-api")])[0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"


def test_shutdown_grace_covers_the_worker_drain_and_the_api_pre_stop(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    worker = rendered[("Deployment", "vortex-worker")]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= GRACEFUL_SHUTDOWN.total_seconds() + 10
    api_doc = rendered[("Deployment", "vortex-api")]
    api = api_doc["spec"]["template"]["spec"]
    pre_stop = containers(api_doc)[0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert api["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 20


def test_the_hpas_scale_the_api_on_cpu_and_the_workers_on_task_queue_backlog(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    api = rendered[("HorizontalPodAutoscaler", "vortex-api")]["spec"]["metrics"]
    assert [(m["type"], m["resource"]["name"]) for m in api] == [("Resource", "cpu")]
    worker = rendered[("HorizontalPodAutoscaler", "vortex-worker")]["spec"]["metrics"]
    assert {m["external"]["metric"]["name"] for m in worker} == {"temporal_task_queue_backlog"}
    queues = {m["external"]["metric"]["selector"]["matchLabels"]["taskqueue"] for m in worker}
    defaults = Settings(_env_file=None)
    assert queues == {defaults.task_queue, defaults.external_task_queue}
