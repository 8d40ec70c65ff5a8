"""Every Redis key the issuer writes, and how long it lives. One place, so nothing is forgotten.

All keys start with the deployment's prefix (TOKENHUB_REDIS_PREFIX, "th:" by default). Secrets
never appear in keys: a session id or a token is stored under its peppered hash.

Keys that one Lua script or transaction touches together carry the same Redis Cluster hash tag (the
part in braces), so they live in one slot: a ChatApp pair family's keys are tagged by the family id,
a daily quota counter by its account. Nothing a caller chooses ever goes between the braces.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import revocations


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    def session(self, realm: str, session_hash: str) -> str:
        """A login session (JSON of the user); TTL = the realm's idle timeout, renewed on each use."""
        return f"{self.prefix}sess:{realm}:{session_hash}"

    def failures(self, realm: str, kind: str, subject_hash: str) -> str:
        """Failures of one subject (an account, an address) in a realm: a hash {n: failures, b:
        refusals}; TTL = the failure window, set by the window's first failure. Tagged by realm: one
        attempt's subjects are counted by one script, so they share one slot."""
        return f"{self.prefix}fail:{{{realm}}}:{kind}:{subject_hash}"

    def attempt_leases(self, realm: str, kind: str, subject_hash: str) -> str:
        """The attempts of one subject still being checked: a sorted set of attempt ids, scored by
        when each lease lapses (unix ms), so that one never settled (its issuer was killed) stops
        holding the budget by itself. TTL: the longest lease in it."""
        return f"{self.prefix}fly:{{{realm}}}:{kind}:{subject_hash}"

    def token_sessions(self, realm: str, token_id: int) -> str:
        """The sessions opened with one long-lived token (a set of session hashes), so that deleting
        or changing the token ends them; a token session counts only while it is a member. TTL: at
        least that of every session in it (set at open, pushed forward, never back, on each use)."""
        return f"{self.prefix}sesstok:{realm}:{token_id}"

    # --- ChatApp-style access/refresh pairs (issuer/pair_store.py) --------------------------------
    # A family is everything descended from one tokens.make. The family hash holds who it belongs
    # to and the lifetimes the app had at make time; each token is a small key of its own, so Redis
    # expires it at its end. Revoking a family deletes only the family hash: every token lookup
    # reads it too, so all tokens of the family die at once, and their own keys expire on time.

    def pair_family(self, family: str) -> str:
        """Hash {user_id, app_id, access_ttl, refresh_ttl, created_at}; expires with the family's
        last-ending token (pushed forward by each refresh, never back)."""
        return f"{self.prefix}cp:{{{family}}}"

    def access_token(self, family: str, token_hash: str) -> str:
        """An access token: its end (unix seconds) as the value; expires at that end."""
        return f"{self.prefix}cp:{{{family}}}:at:{token_hash}"

    def refresh_token(self, family: str, token_hash: str) -> str:
        """A refresh token: "live:<end>" until its one use, then "used:<end>" (kept until its end,
        so that a replay is recognised as reuse and revokes the family); expires at its end."""
        return f"{self.prefix}cp:{{{family}}}:rt:{token_hash}"

    def pair_quota(self, account_hash: str, day: str) -> str:
        """Hash {used, refused}: successful and refused tokens.make of one (user, app) on one UTC
        day (YYYYMMDD). Expires an hour after that day ends (the hour covers an issuer whose clock
        is a little behind), so yesterday's count can never leak into today's."""
        return f"{self.prefix}cq:{{{account_hash}}}:{day}"

    def verified_credentials(self, credential_hash: str) -> str:
        """A successful tokens.make credential check: the user id, under an HMAC of e-mail and
        password with a key that exists only in the issuer process that wrote it. TTL =
        TOKENHUB_CREDENTIAL_CACHE_TTL. Never written for a failed check."""
        return f"{self.prefix}cred:{PAIRS_REALM}:{credential_hash}"

    @property
    def pair_revocations(self) -> str:
        """Pub/sub channel on which a revoked family is announced ({"families": [id]}), for
        gateways that cache verifications: the one revocation channel of shared/revocations.py."""
        return revocations.channel(self.prefix)


# Realm of the ChatApp credential throttle (failed tokens.make per e-mail and per client address).
PAIRS_REALM = "chatapp"
# Extra life of a day's quota counter past UTC midnight.
QUOTA_GRACE_S = 3600

# An attempt that finds its subjects' whole failure budget in flight waits for a share to come free:
# first this long (then twice as long each time, jittered, up to the longest), at most the maximum in
# all, then gets "try again". Below the gateway's backend timeout, so the wait never becomes a hang.
ATTEMPT_WAIT_FIRST_S = 0.005
ATTEMPT_WAIT_LONGEST_S = 0.1
ATTEMPT_WAIT_MAX_S = 2.0
# How much longer than the check it guards an attempt's lease lasts (the check itself is bounded by
# TOKENHUB_BACKEND_TIMEOUT): long enough never to lapse under a live check.
ATTEMPT_LEASE_MARGIN_S = 1.0
# Connections an issuer process opens to Redis at most; a command beyond them fails as "unavailable".
REDIS_POOL_MAX = 1000
