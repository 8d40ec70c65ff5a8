"""The gateway's typed clients for the services behind it, each over one keep-alive transport."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.issuer import IssuerClient
from shared.contracts.registry import RegistryClient
from shared.internal import InternalClient
from shared.settings import Settings


@dataclass(frozen=True)
class Backends:
    issuer: IssuerClient
    registry: RegistryClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        return cls(
            issuer=IssuerClient(
                InternalClient("issuer", settings.issuer_url, settings.internal_key, settings.backend_timeout)
            ),
            registry=RegistryClient(
                InternalClient(
                    "registry", settings.registry_url, settings.internal_key, settings.backend_timeout
                )
            ),
        )

    async def start(self) -> None:
        await self.issuer.transport.start()
        await self.registry.transport.start()

    async def close(self) -> None:
        await self.issuer.transport.close()
        await self.registry.transport.close()
