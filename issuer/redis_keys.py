"""Every Redis key the issuer writes, and how long it lives. One place, so nothing is forgotten.

All keys start with the deployment's prefix (TOKENHUB_REDIS_PREFIX, "th:" by default). Secrets
never appear in keys: a session id is stored under its peppered hash.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    def session(self, realm: str, session_hash: str) -> str:
        """A login session (JSON of the user); TTL = the realm's idle timeout, renewed on each use."""
        return f"{self.prefix}sess:{realm}:{session_hash}"

    def failures(self, realm: str, kind: str, subject_hash: str) -> str:
        """Failed attempts of one subject (an account, an address) in a realm; TTL = the failure
        window, set by the first failure of the window."""
        return f"{self.prefix}fail:{realm}:{kind}:{subject_hash}"


# A realm names a family of sessions (a dialect's logins); the issuer attaches no meaning to it.
REALM_PATTERN = r"[a-z][a-z0-9_]{0,31}"
# Longest idle timeout a caller may ask for, and the shortest.
MAX_SESSION_IDLE_S = 7 * 24 * 3600
MIN_SESSION_IDLE_S = 10
