"""IncidentWorkflow: a security incident from report to post-mortem.

    open -> (not acknowledged within the SLA: escalate, email the on-call staff; again after
    each SLA, up to `max_escalations`) -> acknowledged -> resolved (with a post-mortem note)

Human input (names are part of the runbook):
- signal `acknowledge(IncidentAck)`: a person took the incident (stops the escalation);
- signal `note_added(IncidentNoteAdded)`: a timeline entry was stored by the API;
- signal `review(FraudReview)`: staff decided on a fraud report (lift or keep the freeze);
- signal `resolve(IncidentResolution)`: ends the incident (the workflow's result is the final
  state; a signal rather than an update so the time-skipping test server can drive it).
Texts (descriptions, notes, the post-mortem) live in PostgreSQL; only ids pass through here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.security.activities import SecurityActivities
    from models.security.payloads import (
        EscalateInput,
        EscalationNotice,
        FraudReview,
        IncidentAck,
        IncidentInput,
        IncidentNoteAdded,
        IncidentResolution,
        IncidentState,
        IncidentStatusInput,
        ReviewInput,
    )
    from models.security.tables import IncidentStatus
    from temporal.activity_options import db_step, external_call
    from temporal.status import publish_status


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow:
    """Escalates an unacknowledged incident and records its life until resolution."""

    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        self._inp = inp
        self._db = db_step(inp.activity_timeout_seconds)
        self._state = IncidentState(incident_id=inp.incident_id, status=IncidentStatus.OPEN)
        self._ack: IncidentAck | None = None
        self._resolution: IncidentResolution | None = None
        self._reviews: list[FraudReview] = []

    @workflow.run
    async def run(self, inp: IncidentInput) -> IncidentState:
        """Escalate until acknowledged, then wait for the resolution."""
        publish_status(self._state.status.value)
        await self._until_acknowledged()
        if self._ack is not None and self._resolution is None:
            await self._record(IncidentStatus.ACKNOWLEDGED, self._ack.actor_id)
        await self._wait_for(lambda: self._resolution is not None, None)
        assert self._resolution is not None
        await self._record(
            IncidentStatus.RESOLVED, self._resolution.actor_id, self._resolution.note_id
        )
        return self._state

    async def _until_acknowledged(self) -> None:
        """Escalate each time the SLA passes without a person (up to `max_escalations`)."""
        sla = timedelta(seconds=self._inp.ack_sla_seconds)
        while True:
            can_escalate = self._state.escalations < self._inp.max_escalations
            deadline = workflow.now() + sla if can_escalate else None
            taken = lambda: self._ack is not None or self._resolution is not None  # noqa: E731
            if await self._wait_for(taken, deadline):
                return
            await self._escalate()

    async def _wait_for(self, done: Callable[[], bool], deadline: datetime | None) -> bool:
        """Wait until `done()`, applying fraud reviews as they come; False at the deadline."""
        while True:
            while self._reviews:
                await self._apply_review(self._reviews.pop(0))
            if done():
                return True
            timeout = None if deadline is None else deadline - workflow.now()
            if timeout is not None and timeout <= timedelta(0):
                return False
            woken = lambda: done() or bool(self._reviews)  # noqa: E731
            try:
                await workflow.wait_condition(woken, timeout=timeout)
            except TimeoutError:
                return False

    async def _escalate(self) -> None:
        level = self._state.escalations + 1
        on_call = await workflow.execute_activity_method(
            SecurityActivities.escalate,
            EscalateInput(incident_id=self._inp.incident_id, level=level),
            **self._db,
        )
        self._state.escalations = level
        self._state.status = IncidentStatus.ESCALATED
        publish_status(self._state.status.value)
        for user_id in on_call:
            await workflow.execute_activity_method(
                SecurityActivities.email_escalation,
                EscalationNotice(incident_id=self._inp.incident_id, level=level, user_id=user_id),
                task_queue=self._inp.email_task_queue or None,
                **external_call(),
            )

    async def _record(
        self, status: IncidentStatus, actor_id: uuid.UUID, note_id: uuid.UUID | None = None
    ) -> None:
        await workflow.execute_activity_method(
            SecurityActivities.record_status,
            IncidentStatusInput(
                incident_id=self._inp.incident_id, status=status, actor_id=actor_id, note_id=note_id
            ),
            **self._db,
        )
        self._state.status = status
        publish_status(status.value)

    async def _apply_review(self, review: FraudReview) -> None:
        await workflow.execute_activity_method(
            SecurityActivities.review_fraud,
            ReviewInput(
                incident_id=self._inp.incident_id,
                actor_id=review.actor_id,
                lift_freeze=review.lift_freeze,
            ),
            **self._db,
        )
        self._state.fraud_reviewed = True

    @workflow.query
    def status(self) -> IncidentState:
        """Current state of the incident."""
        return self._state

    @workflow.signal
    def acknowledge(self, ack: IncidentAck) -> None:
        """A person took the incident; the first acknowledgement counts."""
        if self._ack is None:
            self._ack = ack

    @workflow.signal
    def note_added(self, note: IncidentNoteAdded) -> None:
        """A timeline entry was stored (counted; the text stays in PostgreSQL)."""
        self._state.notes += 1

    @workflow.signal
    def review(self, review: FraudReview) -> None:
        """Staff decided on a fraud report."""
        self._reviews.append(review)

    @workflow.signal
    def resolve(self, resolution: IncidentResolution) -> None:
        """Resolve with the post-mortem note (a signal: the API waits for the result); the
        first resolution counts."""
        if self._resolution is None:
            self._resolution = resolution
