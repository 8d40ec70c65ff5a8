"""Failure throttles: failures counted per subject (an account, a client address, a device...) in a
fixed window; once one subject has used up its limit, attempts touching it are refused until the
window ends.

An attempt is *taken* before the check it guards (a password check, a voucher lookup) and *settled*
after it: failed, succeeded, or void (the check never happened). Taking is one Lua script over every
subject (count, compare, refuse), and an attempt in flight holds a share of each subject's budget
(a lease) until it is settled, so no number of parallel guesses can slip past a counter that each of
them read before any of them failed: N parallel wrong passwords for one account cost at most
TOKENHUB_LOGIN_FAILURES_MAX password checks. When a subject's whole budget is in flight, further
attempts wait (briefly, with back-off) for a share to come free rather than being refused, so right
passwords sent in parallel are queued, never turned away. A lease lapses by itself a little after
the longest a check may take, so an issuer killed mid-check holds a budget for seconds, not for the
failure window. An attempt whose taking or settling met Redis down (a lost reply: its lease may be
written) is settled again in the background as soon as Redis answers (a failover's few seconds),
rather than holding its share until the lease lapses.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from issuer.redis_keys import ATTEMPT_WAIT_FIRST_S, ATTEMPT_WAIT_LONGEST_S, ATTEMPT_WAIT_MAX_S, RedisKeys
from issuer.scripts import REDIS_DOWN, Script, ScriptReply
from shared.errors import Throttled, Unavailable
from shared.redis import AnyRedis
from shared.secrets import lookup_hash

# What an attempt is counted against: {"account": "alice", "address": "192.0.2.1"}.
Subjects = dict[str, str]
# The subject kind whose failures a success forgives (its owner has just proved who they are); a
# success gives every other kind back only its own attempt (others behind one address may be guessing).
ACCOUNT = "account"
Outcome = Literal["failed", "succeeded", "void"]

_TAKEN, _BUSY = 1, 2
# An attempt settled again in the background: first this long after the error, then twice as long
# each time up to the longest (a failover takes a few seconds).
SETTLE_AGAIN_FIRST_S = 0.25
SETTLE_AGAIN_LONGEST_S = 1.0


@dataclass(frozen=True)
class Refusal:
    """An attempt refused: how long until the window ends, and whether this is the window's first
    refusal for a refusing subject (the one a security trail records; the rest would repeat it)."""

    retry_after: int
    first: bool

    def error(self) -> Throttled:
        return Throttled("too many failed attempts, try again later", retry_after=self.retry_after)


class FailureThrottle:
    def __init__(
        self,
        redis: AnyRedis,
        keys: RedisKeys,
        pepper: str,
        limits: dict[str, int],
        default_limit: int,
        window: int,
        lease: float,
        max_wait: float = ATTEMPT_WAIT_MAX_S,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._pepper = pepper
        self._limits = limits  # by subject kind; other kinds get the default
        self._default_limit = default_limit
        self.window = window
        self._lease_ms = int(lease * 1000)
        self._max_wait = max_wait
        self._settling: set[asyncio.Task[None]] = set()  # attempts settled again in the background
        # Replicated (in a cluster, acknowledged once a replica has them): a failover must neither
        # forget failures (more guesses) nor bring back a settled lease (a budget held for nothing).
        self._take = Script(redis, "attempt_take", replicated=True)
        self._finish = Script(redis, "attempt_finish", replicated=True)

    def _keys_of(self, realm: str, subjects: Subjects) -> list[str]:
        """Each subject's failures and leases, in attempt_take.lua's order."""
        keys = []
        for kind, value in subjects.items():
            # Hashed: account names are personal data and keys are listed by anyone with Redis access.
            subject_hash = lookup_hash(value.lower(), self._pepper).hex()
            keys += [
                self._keys.failures(realm, kind, subject_hash),
                self._keys.attempt_leases(realm, kind, subject_hash),
            ]
        return keys

    async def take(self, realm: str, subjects: Subjects) -> str | Refusal:
        """Hold one attempt against every subject: its id once held (to settle it with), the Refusal
        when a subject has no failures left in its window. Unavailable when the budget stays in
        flight for longer than the wait: nothing failed, so the answer is "try again", not "blocked"."""
        attempt = secrets.token_hex(8)
        if not subjects:
            return attempt
        keys = self._keys_of(realm, subjects)
        limits = [self._limits.get(kind, self._default_limit) for kind in subjects]
        deadline = time.monotonic() + self._max_wait
        pause = ATTEMPT_WAIT_FIRST_S
        while True:
            reply = await self._take_or_give_back(realm, subjects, keys, [attempt, self._lease_ms, *limits])
            assert reply is not None
            status = int(reply[0])
            if status == _TAKEN:
                return attempt
            if status != _BUSY:
                return Refusal(max(1, int(reply[1])), bool(int(reply[2])))
            if time.monotonic() + pause > deadline:
                raise Unavailable("every attempt the throttle allows is in flight; try again")
            # Jittered, so that waiters do not all come back in the same instant.
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, ATTEMPT_WAIT_LONGEST_S)

    async def refusal(self, realm: str, subjects: Subjects) -> Refusal | None:
        """The Refusal `take` would give now, or None; holds nothing (for a login that needs no check)."""
        if not subjects:
            return None
        limits = [self._limits.get(kind, self._default_limit) for kind in subjects]
        # A lease of 0: attempt_take.lua only looks.
        reply = await self._take(keys=self._keys_of(realm, subjects), args=["look", 0, *limits])
        assert reply is not None
        if int(reply[0]) == _TAKEN:
            return None
        return Refusal(max(1, int(reply[1])), bool(int(reply[2])))

    async def _take_or_give_back(
        self, realm: str, subjects: Subjects, keys: list[str], args: list[str | int]
    ) -> ScriptReply:
        try:
            return await self._take(keys=keys, args=args)
        except REDIS_DOWN:
            # The lease may have been written before the reply was lost: give it back once Redis
            # answers ("void": nothing is counted; removing a lease that is not there is nothing).
            self._settle_later(self._settling_args(realm, subjects, str(args[0]), "void"))
            raise

    async def finish(self, realm: str, subjects: Subjects, attempt: str, outcome: Outcome) -> None:
        """Settle an attempt held by `take`. If Redis does not answer, the same settling is sent
        again in the background until it does (or the lease has lapsed anyway); the caller still
        hears of the error. (A failure settled twice, the first reply lost, counts twice: the rare
        error errs on the side of the throttle.)"""
        if not subjects:
            return
        keys, args = self._settling_args(realm, subjects, attempt, outcome)
        try:
            await self._finish(keys=keys, args=args)
        except REDIS_DOWN:
            self._settle_later((keys, args))
            raise

    def _settling_args(
        self, realm: str, subjects: Subjects, attempt: str, outcome: Outcome
    ) -> tuple[list[str], list[str | int]]:
        actions = [_action(outcome, kind) for kind in subjects]
        return self._keys_of(realm, subjects), [attempt, self.window, *actions]

    def _settle_later(self, settling: tuple[list[str], list[str | int]]) -> None:
        task = asyncio.create_task(self._settle_when_redis_answers(*settling))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_when_redis_answers(self, keys: list[str], args: list[str | int]) -> None:
        give_up_at = time.monotonic() + self._lease_ms / 1000  # by then the lease has lapsed anyway
        pause = SETTLE_AGAIN_FIRST_S
        while time.monotonic() + pause < give_up_at:
            await asyncio.sleep(pause)
            try:
                await self._finish(keys=keys, args=args)
                return
            except REDIS_DOWN:
                pause = min(pause * 2, SETTLE_AGAIN_LONGEST_S)

    async def close(self) -> None:
        """Stop settling in the background (the process is stopping: the leases lapse by themselves)."""
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)


def _action(outcome: Outcome, kind: str) -> str:
    """What attempt_finish.lua does to one subject's counter."""
    if outcome == "failed":
        return "fail"
    return "clear" if outcome == "succeeded" and kind == ACCOUNT else "void"
