"""The sweeper's jobs. Each runs in batches, one short transaction per batch, until a batch comes
back short; a crash loses at most the batch in flight, whose rows the next pass finds again."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram
from pydantic import BaseModel, JsonValue

from shared import revocations
from shared.audit import record_audit
from shared.contracts.registry.accounts import AuditEvent
from shared.postgres import fetch_value, rows_as
from shared.redis import AnyRedis, sweeper_last_pass_key
from shared.settings import Settings
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))
log = logging.getLogger(__name__)

ROWS = PromCounter("tokenhub_sweeper_rows_total", "Rows handled by the sweeper, by job.", ["job"])
BATCH_SECONDS = Histogram("tokenhub_sweeper_batch_seconds", "Duration of one sweeper batch, by job.", ["job"])
LAST_PASS = Gauge("tokenhub_sweeper_last_pass_timestamp_seconds", "Unix time of the last complete pass.")


@dataclass(frozen=True)
class Job:
    name: str
    audit_event: str
    revokes: bool  # whether every service must stop honouring these tokens at once
    # The job's query parameters after the batch size (limits in days), from the settings.
    limits: Callable[[Settings], tuple[int, ...]]

    @property
    def batch_query(self) -> str:
        return Q[f"{self.name}_batch"]

    @property
    def count_query(self) -> str:
        return Q[f"count_{self.name}"]


JOBS: Sequence[Job] = (
    Job("expire", "expired", revokes=True, limits=lambda s: ()),
    Job(
        "delete_idle",
        "swept_idle",
        revokes=True,
        limits=lambda s: (s.idle_days_for("zabbix"), s.idle_days_for("wialon"), s.idle_days_for("voucher")),
    ),
    Job("purge_vouchers", "purged", revokes=False, limits=lambda s: (s.voucher_retention_days,)),
)


class Swept(BaseModel):
    """A row a batch claimed (what every `*_batch` query returns)."""

    id: int
    kind: str


class Sweeper:
    def __init__(self, pool: asyncpg.Pool, redis: AnyRedis, settings: Settings) -> None:
        self.pool = pool
        self.redis = redis
        self.settings = settings

    async def run_job(self, job: Job) -> int:
        """Process the job's rows batch by batch; return how many rows this sweeper handled."""
        total = 0
        args = (self.settings.sweep_batch, *job.limits(self.settings))
        while True:
            started = time.perf_counter()
            async with self.pool.acquire() as conn, conn.transaction():
                rows = rows_as(Swept, await conn.fetch(job.batch_query, *args))
                if rows:
                    # One event per batch, naming every token: who was swept stays answerable.
                    details: dict[str, JsonValue] = {
                        "count": len(rows),
                        "by_kind": dict[str, JsonValue](Counter(row.kind for row in rows)),
                        "token_ids": [row.id for row in rows],
                    }
                    await record_audit(conn, AuditEvent(event=job.audit_event, details=details))
            BATCH_SECONDS.labels(job.name).observe(time.perf_counter() - started)
            if rows:
                ROWS.labels(job.name).inc(len(rows))
                total += len(rows)
                if job.revokes:
                    # After the commit: only what is really gone is announced. Only Wialon tokens
                    # open sessions, so only they need markers (a million swept tokens would
                    # otherwise leave a million keys in Redis).
                    await self._announce(
                        [row.id for row in rows], [row.id for row in rows if row.kind == "wialon"]
                    )
            if len(rows) < self.settings.sweep_batch:
                return total

    async def _announce(self, token_ids: list[int], marked: list[int]) -> None:
        try:
            await revocations.announce(self.redis, self.settings.redis_prefix, token_ids, marked)
        except Exception:  # Redis down must not stop the sweep; the rows' state is already final.
            log.warning("could not announce %d revocations", len(token_ids), exc_info=True)

    async def count(self, job: Job) -> int:
        return await fetch_value(self.pool, int, job.count_query, *job.limits(self.settings))

    async def run_pass(self, dry_run: bool = False) -> dict[str, int]:
        """One full pass over every job; with dry_run, count what would be done and change nothing."""
        done: dict[str, int] = {}
        for job in JOBS:
            done[job.name] = await (self.count(job) if dry_run else self.run_job(job))
        if not dry_run:
            now = time.time()
            LAST_PASS.set(now)
            try:
                await self.redis.set(sweeper_last_pass_key(self.settings.redis_prefix), int(now))
            except Exception:  # Redis down must not fail the pass; only the admin summary misses it.
                log.warning("could not record the pass in Redis", exc_info=True)
        log.info("sweep pass %s", "counted" if dry_run else "done", extra={"rows": done, "dry_run": dry_run})
        return done
