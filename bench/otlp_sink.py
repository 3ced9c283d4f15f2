"""`python -m bench.otlp_sink PORT`: a collector-like OTLP/HTTP trace receiver for benchmarks.

It decodes every `POST /v1/traces` (protobuf, as the SDK's exporter sends it) and counts the
spans (by service and name), answering as a collector does; `GET /count` tells how many arrived.
Its own process, as a collector would be, so its CPU is not the platform's.
"""

from __future__ import annotations

import sys
from collections import Counter

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_received: dict[str, int] = {"requests": 0, "spans": 0, "bytes": 0}
_names: Counter[str] = Counter()  # spans by "service: name", to see what a transfer costs


async def _traces(request: Request) -> Response:
    body = await request.body()
    export = ExportTraceServiceRequest()
    export.ParseFromString(body)
    _received["requests"] += 1
    _received["bytes"] += len(body)
    for resource in export.resource_spans:
        service = next(
            (a.value.string_value for a in resource.resource.attributes if a.key == "service.name"),
            "?",
        )
        for scope in resource.scope_spans:
            _received["spans"] += len(scope.spans)
            _names.update(f"{service}: {span.name}" for span in scope.spans)
    return Response(
        ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
    )


async def _count(request: Request) -> JSONResponse:
    return JSONResponse(_received | {"names": dict(_names.most_common(40))})


APP = Starlette(routes=[Route("/v1/traces", _traces, methods=["POST"]), Route("/count", _count)])


def main(port: int) -> None:
    """Serve the sink on 127.0.0.1:`port` until terminated."""
    uvicorn.run(APP, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
