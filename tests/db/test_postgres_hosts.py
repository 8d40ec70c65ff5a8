"""Connecting through a DATABASE_URL of several hosts, against the run's real server: a host that
does not answer costs one connect timeout, not every connection (asyncpg's own timeout covers the
whole list, so one silent host first would make the next unreachable); hosts that refuse make one
error that names each."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from registry.store import translate
from shared.errors import Unavailable
from shared.postgres import NoHostAnswers, connect, create_pool, fetch_value
from tests.ports import free_port

TIMEOUT = 1.0


@pytest.fixture
def silent_host() -> Iterator[str]:
    """An address whose port takes the TCP connection and then never says a word, as a host that
    hangs (or a proxy in front of a dead one) does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def with_hosts(dsn: str, *hosts: str) -> str:
    parts = urlsplit(dsn)
    user = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{user}@{','.join(hosts)}" if user else ",".join(hosts)).geturl()


def server_of(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


async def test_a_silent_host_first_costs_one_timeout_then_the_next_host_serves(
    database_url: str, silent_host: str
) -> None:
    dsn = with_hosts(database_url, silent_host, server_of(database_url))
    # What asyncpg does alone: the silent host uses up the timeout of the whole list.
    with pytest.raises(TimeoutError):
        await asyncpg.connect(dsn, timeout=TIMEOUT)

    started = time.monotonic()
    conn = await connect(dsn, TIMEOUT)
    try:
        assert await fetch_value(conn, int, "SELECT 1") == 1
    finally:
        await conn.close()
    assert time.monotonic() - started < TIMEOUT + 1.5

    # A pool remembers which host took writes: its next connections go there first.
    pool = await create_pool(dsn, 3, TIMEOUT)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            started = time.monotonic()
            async with pool.acquire() as third:
                assert await fetch_value(third, int, "SELECT 1") == 1
            assert time.monotonic() - started < TIMEOUT / 2
            assert first is not second
    finally:
        await pool.close()


async def test_hosts_that_all_refuse_are_one_error_naming_each(database_url: str) -> None:
    ports = [free_port(), free_port()]
    dsn = with_hosts(database_url, *(f"127.0.0.1:{port}" for port in ports))
    with pytest.raises(NoHostAnswers) as raised:
        await connect(dsn, TIMEOUT)
    for port in ports:
        assert f"127.0.0.1:{port}: ConnectionRefusedError" in str(raised.value)
    assert isinstance(translate(raised.value), Unavailable)
