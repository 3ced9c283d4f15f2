"""compose.yaml and its observability files, checked offline: the stack is complete and
consistent, the Prometheus config and alert rules are valid (and their unit tests pass, with
promtool), and every metric a dashboard panel or an alert reads is one our code defines, or
one the Temporal SDK or server emits (this catches a renamed metric)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio import workflow
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from core.embedded import free_port
from tests.deploy_support import OBSERVABILITY, ROOT, defined_metrics, promql_metrics
from tests.rail_support import eventually

COMPOSE = ROOT / "compose.yaml"
PROMETHEUS = OBSERVABILITY / "prometheus"
GRAFANA = OBSERVABILITY / "grafana"
PLATFORM = {
    "api", "worker", "relay", "codec-server", "migrate", "rail", "postgres", "redis",
    "temporal", "temporal-ui",
}  # fmt: skip
OBSERVING = {"prometheus", "grafana", "loki", "promtail", "jaeger"}
# Emitted by the Temporal SDK core on the workers' :9464 and by the Temporal server, not by our
# code (the task-failure counter the alert reads is scraped live below; the server's backlog
# gauge is from the server's metrics reference).
TEMPORAL_METRICS = {
    "temporal_request",
    "temporal_workflow_task_execution_failed",
    "temporal_num_pollers",
    "approximate_backlog_count",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _dashboards() -> list[Path]:
    found = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert found, "no Grafana dashboard found"  # no vacuous pass on an empty folder
    return found


def _known_metrics() -> set[str]:
    return defined_metrics() | TEMPORAL_METRICS


def test_compose_runs_every_platform_and_observability_service(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    assert set(services) >= PLATFORM | OBSERVING
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on", [])
        for dependency in depends if isinstance(depends, list) else depends.keys():
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source.startswith("/") or source in compose["volumes"], volume
    assert services["worker"]["command"] == ["vortex", "worker", "--no-relay"]
    assert services["relay"]["command"] == ["vortex", "relay"]
    assert compose["x-vortex-env"]["VORTEX_OTLP_ENDPOINT"].endswith("http://jaeger:4318}")


def test_prometheus_scrapes_services_that_exist(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    hosts: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            hosts |= {target.split(":")[0] for target in static["targets"]}
        for dns in job.get("dns_sd_configs", []):
            hosts |= set(dns["names"])
    assert hosts == {"api", "worker", "temporal"}
    assert hosts <= set(compose["services"])
    mounted = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "rules.yml:/etc/prometheus/rules/" in mounted
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_alert_rules_cover_what_ops_must_act_on_and_read_known_metrics() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert {
        "VortexPaymentsRequireAction",
        "VortexRelayLagging",
        "VortexWorkflowTaskFailures",
        "VortexBreakerOpen",
    } <= set(alerts)
    known = _known_metrics()
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"], name
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        unknown = promql_metrics(rule["expr"]) - known
        assert not unknown, f"alert {name} reads metrics nothing defines: {unknown}"


def test_promtool_accepts_the_config_and_the_alert_rules_unit_tests_pass(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        # CI's machine has it (Debian's `prometheus`): there a missing promtool is a failure,
        # never a silent skip; a developer's machine without it skips with the reason.
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing on the CI machine (apt-get install prometheus)")
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    config = (PROMETHEUS / "prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"  # rule_files point at the container's path
    local.write_text(config.replace("/etc/prometheus/rules/*.yml", str(PROMETHEUS / "rules.yml")))
    for command in (
        ["promtool", "check", "config", str(local)],
        ["promtool", "test", "rules", str(PROMETHEUS / "rules.test.yml")],
    ):
        done = subprocess.run(  # noqa: S603 - our fixed command line
            command, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_panel_reads_metrics_the_code_defines() -> None:
    known = _known_metrics()
    titles: list[str] = []
    for path in _dashboards():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        assert dashboard["panels"], path
        for panel in dashboard["panels"]:
            titles.append(panel["title"])
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                names = promql_metrics(target["expr"])
                assert names, f"{panel['title']}: no metric in {target['expr']!r}"
                assert not names - known, f"{panel['title']} reads undefined {names - known}"
    wanted = ["Payments", "Transfers", "Ledger postings", "Relay lag", "Workflow task failures"]
    for word in [*wanted, "breakers", "API latency"]:
        assert any(word.lower() in t.lower() for t in titles), f"no panel about {word}"


def test_the_metric_check_catches_a_renamed_metric() -> None:
    assert promql_metrics("sum by (status) (rate(vortex_payments_renamed[5m]))") == {
        "vortex_payments_renamed"
    }
    assert "vortex_payments_renamed" not in _known_metrics()
    assert "vortex_breaker_state" in _known_metrics()


def test_grafana_links_a_log_line_to_its_trace() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    sources = {d["uid"]: d for d in provisioned["datasources"]}
    assert {"prometheus", "loki", "jaeger"} <= set(sources)
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] in sources
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    line = json.dumps({"event": "payment submitted", "trace_id": trace_id, "level": "info"})
    found = re.search(derived["matcherRegex"], line)
    assert found is not None
    assert found.group(1) == trace_id
    dashboards = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    mounted = dashboards["providers"][0]["options"]["path"]
    grafana_volumes = yaml.safe_load(Path(ROOT / "compose.yaml").read_text())["services"][
        "grafana"
    ]["volumes"]
    assert any(v.endswith(f":{mounted}:ro") for v in grafana_volumes)


@workflow.defn(name="FailsItsFirstTaskWorkflow", sandboxed=False)
class _FailsItsFirstTask:
    @workflow.run
    async def run(self) -> str:
        if workflow.info().attempt == 1 and not workflow.unsafe.is_replaying():
            raise RuntimeError("a bug: the workflow task fails")  # not an ApplicationError
        return "ok"


async def test_the_sdk_metric_the_task_failure_alert_reads_is_what_a_worker_serves(
    temporal_client: Client,
) -> None:
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    client = await Client.connect(
        temporal_client.service_client.config.target_host,
        namespace=temporal_client.namespace,
        runtime=runtime,
    )
    queue = f"sdk-metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[_FailsItsFirstTask]):
        await client.start_workflow(_FailsItsFirstTask.run, id=queue, task_queue=queue)

        async def failure_counted() -> str | None:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            wanted = "temporal_workflow_task_execution_failed{"
            lines = [line for line in text.splitlines() if line.startswith(wanted)]
            return lines[0] if lines else None

        line = await eventually(failure_counted, max_wait=15, interval=0.2)
    assert 'workflow_type="FailsItsFirstTaskWorkflow"' in line  # the dashboard's legend label
    assert "temporal_workflow_task_execution_failed" in TEMPORAL_METRICS
