"""The caller's side of the contract: a typed client per service, each method one endpoint."""

from __future__ import annotations

from shared.internal import InternalClient


class ServiceClient:
    """Methods of a service's client, grouped by area (sessions, pairs...) in the contract modules
    and combined into one class per service. All of them send through one transport."""

    def __init__(self, transport: InternalClient) -> None:
        self.transport = transport
