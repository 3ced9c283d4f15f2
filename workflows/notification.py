"""NotificationWorkflow: one event's notice for one user (or an announcement for everyone).

Store the in-app notice (its push goes out in the same transaction unless quiet hours say
wait), sleep out the user's quiet hours, then push and email. An announcement stores everyone's
notice in one step and starts an email-only child per user who wants announcements by email.
The activity returns the quiet window as instants; the workflow decides with `workflow.now()`,
so a replay decides the same.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.notifications.activities import NotificationActivities
    from models.notifications.payloads import (
        AnnouncementPageInput,
        DeliverInput,
        FanOutInput,
        NotificationInput,
        NotificationState,
        RecordInput,
    )
    from temporal.activity_options import db_step, external_call
    from temporal.status import publish_status


PAGE = 200  # announcement email recipients per activity call


@workflow.defn(name="NotificationWorkflow")
class NotificationWorkflow:
    """Delivers one notice per event and recipient, by the recipient's preferences."""

    @workflow.init
    def __init__(self, inp: NotificationInput) -> None:
        self._inp = inp
        self._state = NotificationState(event_id=inp.event_id, status="recording")
        self._db = db_step(inp.activity_timeout_seconds)

    @workflow.run
    async def run(self, inp: NotificationInput) -> NotificationState:
        """Record, wait out quiet hours, push, email."""
        self._publish()
        if inp.user_id is None:
            return await self._announce(inp)
        plan = await workflow.execute_activity_method(
            NotificationActivities.record,
            RecordInput(event_id=inp.event_id, user_id=inp.user_id),
            **self._db,
        )
        if plan.notification_id is None:
            self._state.reason = plan.skipped
            return self._set("skipped")
        if inp.email_only:  # an announcement: the broadcast was its push
            plan.push_pending = False
        self._state.notification_id = plan.notification_id
        self._state.delivered = [
            c for c, done in (("in_app", plan.in_app), ("push", plan.pushed)) if done
        ]
        target = DeliverInput(notification_id=plan.notification_id)
        now = workflow.now()
        waiting = plan.email or plan.push_pending
        if waiting and plan.quiet and plan.quiet.start <= now < plan.quiet.end:
            self._state.deliver_at = plan.quiet.end
            self._set("quiet")
            await workflow.sleep(plan.quiet.end - now)
        self._set("delivering")
        if plan.push_pending:
            await workflow.execute_activity_method(NotificationActivities.push, target, **self._db)
            self._state.delivered.append("push")
        if not plan.email:
            return self._set("delivered")
        try:
            await workflow.execute_activity_method(
                NotificationActivities.send_email,
                target,
                task_queue=inp.email_task_queue,
                **external_call(),
            )
        except ActivityError:
            self._state.reason = "email could not be sent"  # the in-app notice stays
            return self._set("email_failed")
        self._state.delivered.append("email")
        return self._set("delivered")

    async def _announce(self, inp: NotificationInput) -> NotificationState:
        """Store everyone's in-app notice, then start one email-only child per recipient who
        wants announcements by email (each waits out its own quiet hours)."""
        if inp.after_user is None:  # not yet done by an earlier run of this chain
            self._state.recipients = await workflow.execute_activity_method(
                NotificationActivities.fan_out, FanOutInput(event_id=inp.event_id), **self._db
            )
        after, started = inp.after_user, 0
        while True:
            page = await workflow.execute_activity_method(
                NotificationActivities.announcement_emails,
                AnnouncementPageInput(event_id=inp.event_id, after_user=after, limit=PAGE),
                **self._db,
            )
            await asyncio.gather(*(self._email_child(inp, user) for user in page.user_ids))
            started += len(page.user_ids)
            self._state.emails_started = started
            if len(page.user_ids) < PAGE:
                return self._set("delivered")
            after = page.user_ids[-1]
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(inp.model_copy(update={"after_user": after}))

    async def _email_child(self, inp: NotificationInput, user_id: uuid.UUID) -> None:
        # `<prefix>notification-<event>-global` -> `<prefix>notification-<event>-<user>`: the
        # id the feed would give this user's notice, so it is never delivered twice.
        child_id = workflow.info().workflow_id.removesuffix("global") + str(user_id)
        await workflow.start_child_workflow(
            NotificationWorkflow.run,
            inp.model_copy(update={"user_id": user_id, "email_only": True, "after_user": None}),
            id=child_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    @workflow.query
    def status(self) -> NotificationState:
        """Where the delivery stands."""
        return self._state

    def _set(self, status: str) -> NotificationState:
        self._state.status = status
        self._publish()
        return self._state

    def _publish(self) -> None:
        publish_status(f"notification_{self._state.status}", user_id=self._inp.user_id)
