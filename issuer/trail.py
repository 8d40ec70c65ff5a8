"""The issuer's part of the security trail: events that only the issuer witnesses (a login refused by
the throttle, a refresh token reused, a quota refused), written to the registry's audit log."""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import TokenHubError
from shared.internal import InternalClient

log = logging.getLogger(__name__)


class SecurityTrail:
    def __init__(self, registry: InternalClient) -> None:
        self._registry = registry

    async def record(
        self,
        event: str,
        *,
        kind: str,
        client_addr: str,
        subject_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event. What it records has already happened and must stand, so a registry that
        does not answer costs the event, loudly in the log, never the reply."""
        body = {
            "event": event,
            "subject_id": subject_id,
            "kind": kind,
            "client_addr": client_addr,
            "details": details or {},
        }
        try:
            await self._registry.call("POST", "/v1/audit", body)
        except TokenHubError as exc:
            log.error(
                "audit event lost: %s",
                exc.message,
                extra={"audit_event": event, "user_id": subject_id, **(details or {})},
            )
