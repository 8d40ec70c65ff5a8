"""The gateway's clients for the services behind it: one keep-alive session per target."""

from __future__ import annotations

from dataclasses import dataclass

from shared.internal import InternalClient
from shared.settings import Settings


@dataclass(frozen=True)
class Backends:
    issuer: InternalClient
    registry: InternalClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        return cls(
            issuer=InternalClient(
                "issuer", settings.issuer_url, settings.internal_key, settings.backend_timeout
            ),
            registry=InternalClient(
                "registry", settings.registry_url, settings.internal_key, settings.backend_timeout
            ),
        )

    async def start(self) -> None:
        await self.issuer.start()
        await self.registry.start()

    async def close(self) -> None:
        await self.issuer.close()
        await self.registry.close()
