"""The three services built in this process with their own `create_app`, against the run's real
Postgres and Redis (the model: aiohttp-demos' `polls` conftest). The registry and issuer listen on
loopback ports (the gateway reaches them over real HTTP, as in production); the gateway is driven
with aiohttp's test client. A dialect's behaviour is tested here in milliseconds; what needs
separate processes (signals, crashes, the CLI, several replicas) stays in tests/e2e.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app as create_gateway
from issuer.app import create_app as create_issuer
from registry.app import create_app as create_registry
from shared.contracts.issuer import IssuerClient
from shared.contracts.registry import RegistryClient
from shared.internal import InternalClient
from shared.settings import DEV_INTERNAL_KEY, Settings


@dataclass(frozen=True)
class Trio:
    gateway: TestClient[web.Request, web.Application]
    registry: RegistryClient  # typed clients straight to the services, as the gateway holds them
    issuer: IssuerClient
    settings: Settings


def settings_for(database_url: str, redis_url: str, redis_prefix: str, **more: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TOKENHUB_REDIS_PREFIX": redis_prefix,
            **more,
        }
    )


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture(scope="session")
async def trio(database_url: str, redis_server: str, redis_prefix: str) -> AsyncIterator[Trio]:
    # A key prefix of its own inside the run's, so the run's cleanup covers it.
    prefix = f"{redis_prefix}ip{secrets.token_hex(2)}:"
    base = settings_for(database_url, redis_server, prefix)
    registry = await _serve(await create_registry(base))
    registry_url = str(registry.make_url("")).rstrip("/")
    issuer = await _serve(
        await create_issuer(
            settings_for(database_url, redis_server, prefix, TOKENHUB_REGISTRY_URL=registry_url)
        )
    )
    issuer_url = str(issuer.make_url("")).rstrip("/")
    settings = settings_for(
        database_url,
        redis_server,
        prefix,
        TOKENHUB_REGISTRY_URL=registry_url,
        TOKENHUB_ISSUER_URL=issuer_url,
    )
    gateway = TestClient(TestServer(await create_gateway(settings), host="127.0.0.1"))
    await gateway.start_server()
    registry_client = RegistryClient(InternalClient("registry", registry_url, DEV_INTERNAL_KEY, 5.0))
    issuer_client = IssuerClient(InternalClient("issuer", issuer_url, DEV_INTERNAL_KEY, 5.0))
    await registry_client.transport.start()
    await issuer_client.transport.start()
    try:
        yield Trio(gateway, registry_client, issuer_client, settings)
    finally:
        await registry_client.transport.close()
        await issuer_client.transport.close()
        await gateway.close()
        await issuer.close()
        await registry.close()


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to hold a transaction open while the registry works."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()
