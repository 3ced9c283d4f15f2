"""Operator screens of one real transfer: the Temporal UI with and without the codec server, and
its trace.

Against a running `vortex dev --demo` on its default ports, with Debian's `chromium`:

    .venv/bin/pip install -e '.[screens]'          # once: playwright (for the UI screens only)
    .venv/bin/python deploy/observability/screens.py codec --out docs/images
    # with `VORTEX_OTLP_ENDPOINT=http://127.0.0.1:4318 make dev ARGS=--demo`:
    .venv/bin/python deploy/observability/screens.py trace --out docs/images

Each makes one transfer as the demo customer through the API (login with the demo TOTP).

`codec` drives headless Chromium through the Temporal UI's page of that `TransferWorkflow`:
first without a staff session (the codec server refuses, the UI shows ciphertext), then after
the staff login on the codec server's `/login` with the ops token.

`trace` receives the platform's OTLP/HTTP export on port 4318 itself (as a collector would),
keeps the transfer's trace and draws it as a waterfall (every span, by service, nested by
parent), screenshotted by Chromium. Jaeger draws the same trace in production (compose.yaml);
it does not run here.

Each checks that its screen shows what its caption says and fails otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.codec.auth import ops_token
from cli.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_TOTP_SECRET
from core.settings import Settings
from temporal.ids import transfer_workflow_id

AMOUNT = "12.34"
DESCRIPTION = "Savings top-up"
CHROMIUM = "/usr/bin/chromium"
TRANSFER_SPAN = "POST /api/payments/transfer"


def main() -> int:
    """Make a transfer, then write the screens asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("screen", choices=("codec", "trace"))
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--ui", default="http://127.0.0.1:8233")
    parser.add_argument("--codec", default="http://127.0.0.1:8234")
    parser.add_argument("--otlp-port", type=int, default=4318)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.screen == "codec":
        workflow_id = asyncio.run(_transfer(args.api))
        print(f"transfer workflow: {workflow_id}")
        _codec_screens(args, workflow_id, ops_token(Settings()))
    else:
        _trace_screen(args)
    return 0


async def _transfer(api: str) -> str:
    """One completed EUR transfer between the demo customer's accounts; its workflow id."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        login = await _login(client)
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        accounts = (await client.get("/api/accounts", headers=auth)).json()["items"]
        eur = [a for a in accounts if a["currency"] == "EUR"]
        if len(eur) < 2:
            raise SystemExit("the demo customer needs two EUR accounts: run `vortex dev --demo`")
        answer = await client.post(
            "/api/payments/transfer",
            headers=auth | {"Idempotency-Key": str(uuid.uuid4())},
            json={
                "from_account_id": eur[0]["id"],
                "to_account_id": eur[1]["id"],
                "amount": AMOUNT,
                "currency": "EUR",
                "description": DESCRIPTION,
            },
        )
        if answer.status_code >= 300:
            raise SystemExit(f"the transfer was refused: {answer.status_code} {answer.text}")
        return transfer_workflow_id(uuid.UUID(answer.json()["id"]))


async def _login(client: httpx.AsyncClient) -> httpx.Response:
    """The demo customer's login; a code already used (an earlier run in the same 30 s) is
    refused, so it tries once more with the next one."""
    totp = pyotp.TOTP(DEMO_TOTP_SECRET)
    for attempt in range(2):
        login = await client.post(
            "/api/auth/login",
            json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "totp_code": totp.now()},
        )
        if login.status_code == 200 or attempt:
            break
        await asyncio.sleep(totp.interval - time.time() % totp.interval + 1)
    if login.status_code != 200:
        raise SystemExit(f"the demo login was refused: {login.status_code} {login.text}")
    return login


def _codec_screens(args: argparse.Namespace, workflow_id: str, token: str) -> None:
    from playwright.sync_api import sync_playwright

    url = f"{args.ui}/namespaces/default/workflows/{workflow_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        page = browser.new_context(viewport={"width": 1440, "height": 1100}).new_page()
        _codec_settings(page, args.ui, args.codec)
        if DESCRIPTION in _workflow_page(page, url):
            raise SystemExit("the description is readable without a staff session")
        page.screenshot(path=str(args.out / "temporal-ui-encrypted.png"))

        page.goto(f"{args.codec}/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url("**/login?ok=1")
        decoded = _workflow_page(page, url)
        if DESCRIPTION not in decoded or '"amount": 1234' not in decoded:
            raise SystemExit("the decoded page does not show the transfer's input")
        page.screenshot(path=str(args.out / "temporal-ui-decoded.png"))
        browser.close()
    print(f"wrote {args.out}/temporal-ui-encrypted.png and temporal-ui-decoded.png")


def _codec_settings(page: Any, ui: str, codec: str) -> None:
    """Set the UI's codec settings as an operator does once in its codec server dialog (kept in
    localStorage): this endpoint, overriding the server's, with cross-origin credentials, so
    the codec server's session cookie goes along."""
    page.goto(ui)
    settings = {"endpoint": codec, "overrideRemoteCodecConfiguration": True}
    settings["includeCredentials"] = True
    store = "(s) => Object.entries(s).forEach(([k, v]) => localStorage[k] = JSON.stringify(v))"
    page.evaluate(store, settings)


def _workflow_page(page: Any, url: str) -> str:
    """Open the workflow's page; its visible text once payloads are decoded (or refused).
    Refused unless the page is the workflow's (an error page shows no description either)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # the UI asks the codec server after the history arrives
    text: str = page.inner_text("body")
    if "TransferWorkflow" not in text or url.rsplit("/", 1)[-1] not in text.replace("\n", ""):
        raise SystemExit(f"{url} did not show the transfer's workflow page")
    return text


@dataclass(frozen=True)
class Span:
    """One received span, as the waterfall needs it."""

    service: str
    name: str
    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    start_ns: int
    end_ns: int


class _Receiver:
    """An OTLP/HTTP trace endpoint in a thread, keeping every span it is sent."""

    def __init__(self, port: int) -> None:
        self.spans: list[Span] = []
        app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _traces(self, request: Request) -> Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            service = attributes.get("service.name", "?")
            for scope in resource.scope_spans:
                self.spans += [
                    Span(service, s.name, s.trace_id, s.span_id, s.parent_span_id,
                         s.start_time_unix_nano, s.end_time_unix_nano)
                    for s in scope.spans
                ]  # fmt: skip
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    def __enter__(self) -> _Receiver:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():  # it could not bind (the port is taken)
                raise SystemExit(f"cannot receive OTLP on port {self._server.config.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join()


def _trace_screen(args: argparse.Namespace) -> None:
    with _Receiver(args.otlp_port) as receiver:
        workflow_id = asyncio.run(_transfer(args.api))
        print(f"transfer workflow: {workflow_id}")
        spans = _wait_for_trace(receiver)
    services = {s.service for s in spans}
    if not {"API", "workflow", "activity", "SQL"} <= {_kind(s.name) for s in spans}:
        raise SystemExit(f"the trace lacks a part: {sorted({_kind(s.name) for s in spans})}")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "trace.html"
        page.write_text(_waterfall(spans))
        height = 140 + 26 * len(spans)
        shot = (args.out / "trace-transfer.png").resolve()
        subprocess.run(  # noqa: S603 - the chromium binary given on our own command line
            [args.chromium, "--headless", "--no-sandbox", "--hide-scrollbars",
             f"--screenshot={shot}", f"--window-size=1400,{height}", page.as_uri()],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    print(f"wrote {shot} ({len(spans)} spans, services {sorted(services)})")


def _wait_for_trace(receiver: _Receiver, within: float = 30.0) -> list[Span]:
    """The newest transfer request's trace, once no span of it arrived for a while (the
    processes export in batches, every few seconds)."""
    deadline = time.monotonic() + within
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        roots = [s for s in receiver.spans if s.name == TRANSFER_SPAN]
        trace = [s for s in receiver.spans if roots and s.trace_id == roots[-1].trace_id]
        if len(trace) != seen:
            seen, quiet_since = len(trace), time.monotonic()
        elif trace and time.monotonic() - quiet_since > 6:
            return trace
        time.sleep(0.5)
    raise SystemExit("no complete transfer trace arrived: is VORTEX_OTLP_ENDPOINT set for dev?")


def _kind(name: str) -> str:
    """What a span is, by its name (the instrumentations' naming)."""
    if name.startswith(("POST ", "GET ")):
        return "API"
    if name.startswith("RunWorkflow:"):
        return "workflow"
    if name.startswith("RunActivity:"):
        return "activity"
    if name.startswith("StartWorkflow:"):
        return "Temporal call"
    if name.split(" ")[0] in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
        return "SQL"
    return "Redis" if name.isupper() else "other"


def _in_tree_order(spans: list[Span]) -> Iterator[tuple[int, Span]]:
    """Depth-first from the root, children by start time: (depth, span)."""
    children: dict[bytes, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        children.setdefault(span.parent_id if span.parent_id in ids else b"", []).append(span)

    def walk(parent: bytes, depth: int) -> Iterator[tuple[int, Span]]:
        for span in children.get(parent, []):
            yield depth, span
            yield from walk(span.span_id, depth + 1)

    return walk(b"", 0)


_COLOURS = {
    "API": "#3b82f6",
    "Temporal call": "#94a3b8",
    "workflow": "#10b981",
    "activity": "#8b5cf6",
    "SQL": "#f59e0b",
    "Redis": "#ef4444",
    "other": "#14b8a6",
}


def _waterfall(spans: list[Span]) -> str:
    """The trace as an HTML waterfall: one row per span, bar at its time, colour by kind."""
    start = min(s.start_ns for s in spans)
    total = max(s.end_ns for s in spans) - start or 1
    services = ", ".join(sorted({s.service for s in spans}))
    rows = []
    for depth, span in _in_tree_order(spans):
        colour = _COLOURS[_kind(span.name)]
        left = 100 * (span.start_ns - start) / total
        width = max(100 * (span.end_ns - span.start_ns) / total, 0.15)
        rows.append(
            f'<div class="row"><div class="name" style="padding-left:{8 + 14 * depth}px">'
            f'<span class="dot" style="background:{colour}"></span>'
            f"{html.escape(span.name)}</div><div class=lane><div class=bar style='left:{left:.2f}%;"
            f"width:{width:.2f}%;background:{colour}'></div>"
            f"<span class=ms style='left:{min(left + width, 92):.2f}%'>"
            f"{(span.end_ns - span.start_ns) / 1e6:.1f} ms</span></div></div>"
        )
    kinds = {_kind(s.name) for s in spans}
    legend = " ".join(
        f'<span><span class="dot" style="background:{c}"></span>{k}</span>'
        for k, c in _COLOURS.items()
        if k in kinds
    )
    trace_id = spans[0].trace_id.hex()
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font: 13px system-ui, sans-serif; margin: 16px; color: #111; }}
h1 {{ font-size: 17px; margin: 0 0 4px; }} .sub {{ color: #555; margin-bottom: 10px; }}
.row {{ display: flex; height: 26px; align-items: center; border-bottom: 1px solid #eee; }}
.name {{ width: 430px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.lane {{ position: relative; flex: 1; height: 26px; }}
.bar {{ position: absolute; top: 7px; height: 12px; border-radius: 2px; }}
.ms {{ position: absolute; top: 5px; margin-left: 6px; color: #444; font-size: 11px; }}
.dot {{ display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }}
.legend span {{ margin-right: 16px; }}
</style></head><body>
<h1>Trace {trace_id}: one internal transfer, {len(spans)} spans, {total / 1e6:.1f} ms</h1>
<div class="sub">HTTP request &rarr; TransferWorkflow &rarr; local activities &rarr; SQL,
as exported over OTLP by {html.escape(services)} (drawn by deploy/observability/screens.py)</div>
<div class="legend">{legend}</div>
{"".join(rows)}
</body></html>"""


if __name__ == "__main__":
    sys.exit(main())
