"""The workers' workflow sandbox, with the code it runs for each call compiled once (decision 83).

The SDK's sandboxed instance (temporalio 1.35) enters the sandbox by `exec`-ing a short source
string: for every activation, and, once payloads are encrypted, for every payload it encodes or
decodes (to ask the workflow which serialization context applies). `exec` of a string compiles
it again each time, about 20 us, and a transfer makes some twenty such calls. This runner hands
the SDK the same strings compiled once: `exec` takes a code object as well, so the sandbox runs
exactly the same code with the same globals, restrictions and importer, minus the compiling.
The serialization-context question, a read of the instance's state, skips the sandbox entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import CodeType
from typing import Any

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

# Same shape as the SDK's own type annotations for these (they are not exported).
WorkflowInstance = Any
WorkflowInstanceDetails = Any


@lru_cache(maxsize=256)  # a handful of fixed strings, plus one import line per workflow class
def compiled(source: str) -> CodeType:
    """The source compiled as `exec(source)` would compile it ("<string>", exec mode)."""
    return compile(source, "<string>", "exec")


class _CompiledOnceInstance(_Instance):
    """The SDK's sandboxed instance, fed compiled code instead of source strings."""

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        super()._run_code(compiled(code), **extra_globals)  # type: ignore[arg-type]

    def get_serialization_context(self, command_info: Any) -> Any:
        """The payload's serialization context, read from the workflow instance directly.

        The SDK enters the sandbox for this (restricting builtins, then exec), though the
        answer is a plain read of the instance's own state (its info and pending commands): no
        workflow code and no import runs. Called for every payload once a codec is set, that
        entry was most of its cost. Falls back to the SDK's way if its internals move."""
        in_sandbox = self.globals_and_locals.get("__temporal_in_sandbox")
        direct = getattr(in_sandbox, "get_serialization_context", None)
        if direct is None:
            return super().get_serialization_context(command_info)
        return direct(command_info)


@dataclass(frozen=True)
class CompiledOnceSandboxedRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances compile their sandbox entry code once."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """Implements `WorkflowRunner.create_instance` with the compiled-once instance."""
        return _CompiledOnceInstance(det, self.runner_class, self.restrictions)
