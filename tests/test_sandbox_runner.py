"""The workers' sandbox runner (temporal/sandbox_runner.py): same sandbox, entry code compiled
once. Recorded histories replay through it too (tests/replay_support.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import ActivitySerializationContext
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox._runner import _Instance

from temporal.sandbox_runner import _CompiledOnceInstance, compiled
from workers.assembly import WORKFLOW_RUNNER


@workflow.defn(name="SandboxEchoWorkflow", sandboxed=True)
class SandboxEchoWorkflow:
    """Answers its input: a workflow that only needs the sandbox to work."""

    @workflow.run
    async def run(self, text: str) -> str:
        """Echo, after a round through a query-free activation."""
        return text.upper()


@activity.defn(name="sandbox.shout")
async def shout(text: str) -> str:
    """An activity, so payloads are encoded in an activity's serialization context."""
    return text.upper() + "!"


@workflow.defn(name="SandboxActivityWorkflow", sandboxed=True)
class SandboxActivityWorkflow:
    """One regular and one local activity: commands with their own contexts."""

    @workflow.run
    async def run(self, text: str) -> str:
        """Shout twice."""
        timeout = timedelta(seconds=10)
        once = await workflow.execute_activity(shout, text, start_to_close_timeout=timeout)
        return await workflow.execute_local_activity(shout, once, start_to_close_timeout=timeout)


@workflow.defn(name="SandboxFileWorkflow", sandboxed=True)
class SandboxFileWorkflow:
    """Opens a file: I/O, which the sandbox must still refuse at run time."""

    @workflow.run
    async def run(self) -> str:
        """Non-deterministic on purpose."""
        with open("/etc/hostname") as handle:  # noqa: ASYNC230 - the point of the test
            return handle.read()


def test_compiled_source_is_compiled_once_and_runs_like_exec() -> None:
    source = "answer = base * 2\n"
    code = compiled(source)
    assert compiled(source) is code
    names: dict[str, int] = {"base": 21}
    exec(code, names)  # noqa: S102 - what the SDK does with it
    assert names["answer"] == 42
    assert code.co_filename == "<string>"


async def test_workflows_run_and_file_io_is_still_refused(
    temporal_client: Client,
) -> None:
    queue = f"sandbox-runner-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[SandboxEchoWorkflow, SandboxFileWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        workflow_failure_exception_types=[Exception],
    ):
        echoed = await temporal_client.execute_workflow(
            SandboxEchoWorkflow.run, "vortex", id=f"echo-{queue}", task_queue=queue
        )
        assert echoed == "VORTEX"
        with pytest.raises(WorkflowFailureError) as failure:
            await temporal_client.execute_workflow(
                SandboxFileWorkflow.run, id=f"file-{queue}", task_queue=queue
            )
    assert "restricted" in str(failure.value.cause).lower()


async def test_serialization_contexts_read_directly_equal_the_sandboxed_answer(
    temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test client encrypts (TEST_CONVERTER), so every payload asks for its context.
    answers: list[Any] = []
    mismatches: list[tuple[Any, Any]] = []
    direct = _CompiledOnceInstance.get_serialization_context

    def compared(self: _CompiledOnceInstance, command_info: Any) -> Any:
        mine = direct(self, command_info)
        theirs = _Instance.get_serialization_context(self, command_info)
        answers.append(mine)
        if mine != theirs:
            mismatches.append((mine, theirs))
        return mine

    monkeypatch.setattr(_CompiledOnceInstance, "get_serialization_context", compared)
    queue = f"sandbox-context-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[SandboxActivityWorkflow],
        activities=[shout],
        workflow_runner=WORKFLOW_RUNNER,
    ):
        result = await temporal_client.execute_workflow(
            SandboxActivityWorkflow.run, "hi", id=f"context-{queue}", task_queue=queue
        )
    assert result == "HI!!"
    assert mismatches == []
    assert any(isinstance(a, ActivitySerializationContext) for a in answers)
