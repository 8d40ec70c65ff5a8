"""The daily tokens.make quota of one (user, app): its arithmetic over UTC days. The count itself
is in Redis (issuer/pair_store.py), taken by a Lua script after the credentials are checked."""

from __future__ import annotations

import datetime as dt
import time

from shared.contracts.issuer import Quota
from shared.errors import QuotaExceeded


def utc_day(now: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def next_utc_midnight(now: int) -> int:
    """The unix time at which the UTC day containing `now` ends (the next day's first second)."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp())


def seconds_to_reset(now: int) -> int:
    """Retry-After for a refused make: whole seconds until the quota resets, at least 1."""
    return max(1, next_utc_midnight(now) - now)


def quota_after(limit: int, used: int, now: int) -> Quota:
    """The quota as it stands once `used` makes of today's `limit` are spent."""
    return Quota(limit=limit, remaining=max(0, limit - used), reset_at=next_utc_midnight(now))


def used_up(quota: Quota, now: int) -> QuotaExceeded:
    return QuotaExceeded(
        "daily tokens.make quota used up",
        limit=quota.limit,
        reset_at=quota.reset_at,
        retry_after=seconds_to_reset(now),
    )
