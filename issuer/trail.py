"""The issuer's part of the security trail: events that only the issuer witnesses (a login refused by
the throttle, a refresh token reused, a quota refused), written to the registry's audit log."""

from __future__ import annotations

import logging

from pydantic import JsonValue

from shared.contracts.registry import RegistryClient
from shared.contracts.registry.accounts import AuditEvent
from shared.errors import TokenHubError

log = logging.getLogger(__name__)


class SecurityTrail:
    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry

    async def record(
        self,
        event: str,
        *,
        kind: str,
        client_addr: str,
        subject_id: int | None = None,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        """Append one event. What it records has already happened and must stand, so a registry that
        does not answer costs the event, loudly in the log, never the reply."""
        details = details or {}
        witnessed = AuditEvent(
            event=event, subject_id=subject_id, kind=kind, client_addr=client_addr, details=details
        )
        try:
            await self._registry.append_audit(witnessed)
        except TokenHubError as exc:
            log.error(
                "audit event lost: %s",
                exc.message,
                extra={"audit_event": event, "user_id": subject_id, **details},
            )
