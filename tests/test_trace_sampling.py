"""Trace sampling: the platform's sampler decides as the SDK's parent-based composition it
replaces (decision 95): a trace whole or absent, new traces at the ratio, none started by a
client call, a caller's unsampled flag decided afresh."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState

from core.trace_provider import parent_based_sampler

PARENT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=False,
    trace_state=TraceState([("vendor", "opaque")]),
)


class _Reference(Sampler):
    """The composition `parent_based_sampler` replaces, from the SDK's own samplers:
    parent-based, new traces at the ratio, none started by a client call."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        kind = args[3] if len(args) > 3 else kwargs.get("kind")
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "reference"


def _parents() -> list[Context | None]:
    contexts: list[Context | None] = [None]
    for remote in (False, True):
        for sampled in (False, True):
            flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
            parent = SpanContext(PARENT.trace_id, PARENT.span_id, remote, flags, PARENT.trace_state)
            contexts.append(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    return contexts


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_the_sampler_decides_as_the_parent_based_composition_it_replaces(ratio: float) -> None:
    ours = parent_based_sampler(ratio)
    reference = ParentBased(root=_Reference(ratio), remote_parent_not_sampled=_Reference(ratio))
    attributes = {"db.statement": "SELECT 1"}
    for parent in _parents():
        for kind in SpanKind:
            for trace_id in (1, 2**127, 2**128 - 1):  # below, around and above a 0.5 bound
                args = (parent, trace_id, "span", kind, attributes)
                mine, theirs = ours.should_sample(*args), reference.should_sample(*args)
                assert (mine.decision, mine.trace_state, dict(mine.attributes)) == (
                    theirs.decision,
                    theirs.trace_state,
                    dict(theirs.attributes),
                ), (parent, kind, trace_id)
