"""The sweeper's jobs. Each runs in batches, one short transaction per batch, until a batch comes
back short; a crash loses at most the batch in flight, which the next pass picks up again."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram
from redis.asyncio import Redis

from shared.settings import Settings
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))
log = logging.getLogger(__name__)

ROWS = PromCounter("tokenhub_sweeper_rows_total", "Rows handled by the sweeper, by job.", ["job"])
BATCH_SECONDS = Histogram("tokenhub_sweeper_batch_seconds", "Duration of one sweeper batch, by job.", ["job"])
LAST_PASS = Gauge("tokenhub_sweeper_last_pass_timestamp_seconds", "Unix time of the last complete pass.")


def revocation_channel(settings: Settings) -> str:
    """The pub/sub channel on which token revocations are announced to every gateway and issuer."""
    return f"{settings.redis_prefix}revocations"


@dataclass(frozen=True)
class Job:
    name: str
    batch_query: str
    count_query: str
    audit_event: str
    revokes: bool  # whether every service must stop honouring these tokens at once

    def days(self, settings: Settings) -> int | None:
        return {
            "delete_idle": settings.idle_days,
            "purge_vouchers": settings.voucher_retention_days,
        }.get(self.name)


JOBS: Sequence[Job] = (
    Job("expire", Q["expire_batch"], Q["count_expirable"], "expired", revokes=True),
    Job("delete_idle", Q["delete_idle_batch"], Q["count_idle"], "swept_idle", revokes=True),
    Job("purge_vouchers", Q["purge_vouchers_batch"], Q["count_purgeable"], "purged", revokes=False),
)


class Sweeper:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, settings: Settings) -> None:
        self.pool = pool
        self.redis = redis
        self.settings = settings

    async def run_job(self, job: Job) -> int:
        """Process the job's rows batch by batch; return how many rows it handled."""
        total = 0
        days = job.days(self.settings)
        args: tuple[int, ...] = (
            (self.settings.sweep_batch,) if days is None else (self.settings.sweep_batch, days)
        )
        while True:
            started = time.perf_counter()
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(job.batch_query, *args)
                if rows:
                    kinds = Counter(row["kind"] for row in rows)
                    await conn.execute(
                        Q["insert_audit"], job.audit_event, None, {"count": len(rows), "by_kind": dict(kinds)}
                    )
            BATCH_SECONDS.labels(job.name).observe(time.perf_counter() - started)
            if rows:
                ROWS.labels(job.name).inc(len(rows))
                total += len(rows)
                if job.revokes:
                    # After commit: a revocation is only announced for what is really gone.
                    await self._announce([row["id"] for row in rows])
            if len(rows) < self.settings.sweep_batch:
                return total

    async def _announce(self, token_ids: list[int]) -> None:
        try:
            await self.redis.publish(
                revocation_channel(self.settings), orjson.dumps({"token_ids": token_ids})
            )
        except Exception:  # Redis down must not stop the sweep; the rows' state is already final.
            log.warning("could not announce %d revocations", len(token_ids), exc_info=True)

    async def count(self, job: Job) -> int:
        days = job.days(self.settings)
        args = () if days is None else (days,)
        value: int = await self.pool.fetchval(job.count_query, *args)
        return value

    async def run_pass(self, dry_run: bool = False) -> dict[str, int]:
        """One full pass over every job; with dry_run, count what would be done and change nothing."""
        done = {}
        for job in JOBS:
            done[job.name] = await (self.count(job) if dry_run else self.run_job(job))
        if not dry_run:
            LAST_PASS.set(time.time())
        log.info("sweep pass %s", "counted" if dry_run else "done", extra={"rows": done, "dry_run": dry_run})
        return done
