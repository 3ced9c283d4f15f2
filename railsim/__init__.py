"""A simulated external payment rail: accepts payments, settles or rejects them after a delay,
fails transiently, supports cancellation, sends inbound payments, and calls back a signed webhook.

`core.signatures` (standard library only) is what our API imports to verify the webhooks;
importing this package does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.signatures import SIGNATURE_HEADER, sign, verify
from railsim.models import RailConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["SIGNATURE_HEADER", "RailConfig", "create_rail_app", "sign", "verify"]


def create_rail_app(config: RailConfig) -> FastAPI:
    """Build the simulator's ASGI app (see `railsim.app`)."""
    from railsim.app import create_rail_app as build

    return build(config)
