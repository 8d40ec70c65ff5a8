"""Every Redis key the gateway writes, and how long it lives. (The issuer's are in
issuer/redis_keys.py; the revocation channel's in shared/revocations.py.)

All keys start with the deployment's prefix (TOKENHUB_REDIS_PREFIX, "th:" by default). The keys one
flush or one summary touches together share the Redis Cluster hash tag `{verifications}`, so they
live in one slot and one pipeline reaches them on one node.
"""

from __future__ import annotations

from datetime import UTC, datetime

# How long an hour's verification counter lives after its last increment: the summary shows the
# last 24 hours, and two more cover a gateway whose clock is a little off and the hour in progress.
VERIFICATIONS_TTL_S = 26 * 3600
# The two outcomes a verification is counted under.
ACCEPTED = "accepted"
REFUSED = "refused"
OUTCOMES = (ACCEPTED, REFUSED)


def hour_label(hour: int) -> str:
    """An hour (unix seconds // 3600) as the keys name it: YYYYMMDDHH, UTC."""
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")


def verifications(prefix: str, hour: int, outcome: str) -> str:
    """The number of credential checks the gateways answered with `outcome` in one UTC hour
    (`hour`: unix seconds // 3600): a plain integer, INCRBY by every gateway's flush (so gateways add
    up), TTL = VERIFICATIONS_TTL_S, renewed by each flush. Tagged `{verifications}`: one slot."""
    return f"{prefix}stats:{{verifications}}:{hour_label(hour)}:{outcome}"
