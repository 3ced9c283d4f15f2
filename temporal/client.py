"""Temporal client construction: every client uses the pydantic data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect_temporal(address: str, namespace: str = "default") -> Client:
    """Connect to a Temporal frontend with the project's data converter."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )
