"""`vortex dev` runs the codec server and points the embedded Temporal UI at it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.supervisor_support import (
    DevRun,
    new_state_dir,
    remove_state_dir,
    wait_for_output,
)


@pytest.fixture(scope="module")
def dev() -> Iterator[DevRun]:
    """One `vortex dev` on free ports."""
    state = new_state_dir()
    run = DevRun(state).start()
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill()
        remove_state_dir(state)


def test_vortex_dev_serves_the_codec_server_and_the_ui_is_configured_to_use_it(
    dev: DevRun,
) -> None:
    codec = f"http://127.0.0.1:{dev.ports['VORTEX_CODEC_SERVER_PORT']}"
    ui = f"http://127.0.0.1:{dev.ports['VORTEX_EMBEDDED_TEMPORAL_UI_PORT']}"
    banner = wait_for_output(dev, "Codec server")

    ui_settings = httpx.get(f"{ui}/api/v1/settings", timeout=10).json()
    refused = httpx.post(f"{codec}/decode", json={"payloads": []}, headers={"Origin": ui})
    preflight = httpx.options(
        f"{codec}/decode", headers={"Origin": ui, "Access-Control-Request-Method": "POST"}
    )

    assert f"Codec server   {codec}" in banner
    assert ui_settings["Codec"]["Endpoint"] == codec
    assert refused.status_code == 401  # the UI's own origin still needs a staff credential
    token = re.search(r"Ops token +(\S+)", banner)
    assert token is not None
    staff = httpx.post(
        f"{codec}/decode",
        json={"payloads": []},
        headers={"Origin": ui, "Authorization": f"Bearer {token.group(1)}"},
    )
    assert staff.status_code == 200
    assert staff.json() == {"payloads": []}
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ui
