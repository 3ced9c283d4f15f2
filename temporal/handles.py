"""A typed handle to a running workflow, from its run method and id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle

W = TypeVar("W")
R = TypeVar("R")


def handle_for(
    client: Client, run: Callable[[W, Any], Awaitable[R]], workflow_id: str
) -> WorkflowHandle[W, R]:
    """`client.get_workflow_handle_for` through a plain Callable type: mypy loses the
    workflow's types when it matches temporalio's method protocols from functions it checks
    late in a large import cycle (seen once breakers and tracing joined the graph)."""
    return client.get_workflow_handle_for(run, workflow_id)
