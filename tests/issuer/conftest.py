"""The issuer suite runs twice: against the run's one Redis and against the private Redis Cluster
(`redis_target`, tests/conftest.py). Each test gets a client made as the issuer makes its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from issuer.redis_keys import REDIS_POOL_MAX
from shared.redis import AnyRedis, prepare, redis_client
from shared.settings import Settings
from tests.conftest import RedisTarget


@pytest.fixture
def redis_settings(redis_target: RedisTarget) -> Settings:
    return Settings.model_validate(
        {"REDIS_URL": redis_target.url, "TOKENHUB_REDIS_CLUSTER": redis_target.cluster}
    )


@pytest.fixture
async def redis(redis_settings: Settings) -> AsyncIterator[AnyRedis]:
    # As the issuer's (issuer/app.py): far more connections than the parallel attempts need.
    client = redis_client(redis_settings, max_connections=REDIS_POOL_MAX)
    await prepare(client)
    yield client
    await client.aclose()
