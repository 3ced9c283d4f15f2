"""Starting and reaching IncidentWorkflows from the API."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.services import Services
from core import errors
from models.security.payloads import IncidentInput, IncidentState
from models.security.tables import Incident
from temporal.ids import incident_workflow_id
from workflows.incident import IncidentWorkflow


class IncidentClosed(errors.Conflict):
    """The incident is resolved: it takes no more signals."""

    type, title = "incident-closed", "The incident is closed"


async def start_incident(services: Services, incident: Incident) -> None:
    """Start the incident's workflow (or attach to it: the id is the incident's)."""
    st = services.settings
    await services.temporal.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(
            incident_id=incident.id,
            severity=incident.severity,
            ack_sla_seconds=st.incident_ack_sla_seconds,
            max_escalations=st.incident_max_escalations,
            activity_timeout_seconds=st.db_activity_timeout_seconds,
            email_task_queue=st.external_task_queue,
        ),
        id=incident_workflow_id(incident.id),
        task_queue=st.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"incident {incident.severity} ({incident.kind})",
    )


def incident_handle(
    services: Services, incident_id: uuid.UUID
) -> WorkflowHandle[Any, IncidentState]:
    """The workflow of an incident."""
    return services.temporal.get_workflow_handle(
        incident_workflow_id(incident_id), result_type=IncidentState
    )


async def signal_incident(services: Services, incident_id: uuid.UUID, name: str, arg: Any) -> None:
    """Signal a running incident; 409 `incident-closed` once it has ended."""
    try:
        await incident_handle(services, incident_id).signal(name, arg)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # Temporal unreachable: a 503
        raise IncidentClosed("the incident is resolved") from exc
