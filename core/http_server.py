"""The uvicorn settings every VortexCore HTTP server shares (API, gateway, codec server).

Forwarded headers are left to the application: `X-Forwarded-For` is believed only from the
peers in `VORTEX_TRUSTED_PROXIES` (`api/forwarded.py`, decision 86). uvicorn's own proxy
handling, on by default, would rewrite the client address from that header for any peer on
127.0.0.1 before the application sees it, so a local process could pick its own address for
throttling and audit, and the gateway would forward the client twice and its peer never.
"""

from __future__ import annotations

from typing import Any

import uvicorn


def server_config(app: Any, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """A uvicorn config with our logging (none of uvicorn's own) and no proxy-header rewriting."""
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, proxy_headers=False, **options
    )
