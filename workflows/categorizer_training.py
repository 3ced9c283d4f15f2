"""CategorizerTrainingWorkflow: train the categorizer's text classifier on the categorized
history (on the `categorizer-training` Schedule, or started by hand). One activity: the
training and the store are one step, so a retry never stores two versions of one run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ai.activities import AiActivities
    from models.ai.payloads import TrainCategorizerInput, TrainingResult
    from temporal.activity_options import DB_RETRY
    from temporal.status import publish_status


@workflow.defn(name="CategorizerTrainingWorkflow")
class CategorizerTrainingWorkflow:
    """Trains, evaluates against the rules, stores and (if better) activates a model."""

    def __init__(self) -> None:
        self._state = "training"

    @workflow.run
    async def run(self, inp: TrainCategorizerInput) -> TrainingResult:
        """Train and store one version."""
        publish_status(self._state)
        result = await workflow.execute_activity_method(
            AiActivities.train_categorizer,
            inp,
            start_to_close_timeout=timedelta(minutes=30),  # CPU-bound on large histories
            retry_policy=DB_RETRY,
        )
        self._state = "activated" if result.active else "stored" if result.version else "skipped"
        publish_status(self._state)
        return result

    @workflow.query
    def status(self) -> str:
        """training, then activated, stored (not better than rules) or skipped."""
        return self._state
