"""Writing the audit log: the registry and the sweeper append with the one insert here, inside their
own transactions, so an event is recorded exactly when what it describes is committed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg

from shared.contracts.registry.accounts import AuditEvent
from shared.postgres import Connection
from shared.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("audit.sql"))


async def record_audit(
    db: asyncpg.Pool | Connection, event: AuditEvent, *, token_ids: Sequence[int] | None = None
) -> None:
    """Append `event` (one row), or one copy of it per token in `token_ids` (none for an empty list)."""
    if token_ids is not None and not token_ids:
        return
    await db.execute(
        Q["insert_audit"],
        event.event,
        event.actor_id,
        event.subject_id,
        None if token_ids is None else list(token_ids),
        event.kind,
        event.client_addr,
        event.details,
    )
