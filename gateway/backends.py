"""The gateway's typed clients for the services behind it, each over one keep-alive transport."""

from __future__ import annotations

from dataclasses import dataclass

from shared.balancer import Resolver, resolve_with_dns
from shared.contracts.issuer import IssuerClient
from shared.contracts.registry import RegistryClient
from shared.internal import InternalClient
from shared.settings import Settings


@dataclass(frozen=True)
class Backends:
    issuer: IssuerClient
    registry: RegistryClient

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver = resolve_with_dns) -> Backends:
        return cls(
            issuer=IssuerClient(transport_to("issuer", settings.issuer_url, settings, resolver)),
            registry=RegistryClient(transport_to("registry", settings.registry_url, settings, resolver)),
        )

    async def start(self) -> None:
        await self.issuer.transport.start()
        await self.registry.transport.start()

    async def close(self) -> None:
        await self.issuer.transport.close()
        await self.registry.transport.close()


def transport_to(service: str, url: str, settings: Settings, resolver: Resolver) -> InternalClient:
    return InternalClient(
        service,
        url,
        settings.internal_key,
        settings.backend_timeout,
        resolve_interval=settings.resolve_interval,
        resolver=resolver,
    )
