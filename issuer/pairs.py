"""ChatApp-style access/refresh pairs (DESIGN §2.4): tokens.make, refresh, check and revoke.

- Credentials come from the registry (behind the failure throttle, issuer/logins.py); a successful
  check is remembered in Redis for a few seconds (CredentialCache), so a burst of makes with the
  right password costs one Argon2id check, not one each.
- The daily quota per (user, app, UTC day) is taken after the credentials are checked: a wrong
  password never spends it, and it lives in Redis, not in this process (issuer/quota.py).
- A used refresh token presented again revokes its family and is written to the audit log.
- A family records its account's epoch (shared/revocations.py): once `tokenhub users revoke` or
  `users disable` moves it on, every check and refresh of the family fails, and the family is ended.

Token format: issuer/pair_tokens.py; the Redis side: issuer/pair_store.py. The vocabulary is
TokenHub's (access_token, access_expires_at...): the gateway's ChatApp dialect translates it.
"""

from __future__ import annotations

import logging
import time

from issuer.logins import Logins
from issuer.pair_store import CredentialCache, PairStore, StoredPair
from issuer.pair_tokens import token_family
from issuer.quota import used_up
from issuer.redis_keys import PAIRS_REALM
from issuer.trail import SecurityTrail
from shared.contracts.issuer import MakePair, Pair, PairMade, RefreshPair, Verified
from shared.contracts.registry import RegistryClient
from shared.errors import BadCredentials, NotFound
from shared.revocations import AccountState

log = logging.getLogger(__name__)


class Pairs:
    """tokens.make / refresh / check / revoke: credentials from the registry, state in PairStore."""

    def __init__(
        self,
        store: PairStore,
        credentials: CredentialCache,
        registry: RegistryClient,
        logins: Logins,
        trail: SecurityTrail,
        realm: str = PAIRS_REALM,
    ) -> None:
        self.store = store
        self._credentials = credentials
        self._registry = registry
        self._logins = logins
        self._trail = trail
        self._realm = realm

    async def make(self, req: MakePair) -> PairMade:
        # The app first: it is cheap, and an unknown app spends no password check. It reveals only
        # whether an app id exists, never whether an e-mail does.
        app = await self._registry.get_app(req.app_id)
        user_id, state = await self._authenticate(req.email, req.password, req.client_addr)
        # The quota only after the credentials: a wrong password must not spend anyone's quota.
        now = int(time.time())
        taken, quota, refused = await self.store.take_quota(user_id, app.app_id, app.daily_quota, now)
        if not taken:
            if refused == 1:  # the day's first refusal is audited; a client stuck in a loop is not
                await self._trail.record(
                    "quota_refused",
                    kind="chatapp",
                    client_addr=req.client_addr,
                    subject_id=user_id,
                    details={"app_id": req.app_id, "limit": quota.limit},
                )
            raise used_up(quota, now)
        pair = await self.store.make(user_id, app.app_id, app.access_ttl, app.refresh_ttl, now, state.epoch)
        return PairMade(
            user_id=pair.user_id,
            app_id=pair.app_id,
            access_token=pair.access_token,
            access_expires_at=pair.access_expires_at,
            refresh_token=pair.refresh_token,
            refresh_expires_at=pair.refresh_expires_at,
            quota=quota,
        )

    async def _authenticate(self, email: str, password: str, client_addr: str) -> tuple[int, AccountState]:
        """The user id for these credentials and its account's state; BadCredentials otherwise.

        A password the registry confirmed a moment ago (the credential cache) needs no check, so it
        holds no throttle attempt: only a blocked account or address refuses it. A burst of makes
        with the right password then never waits behind its own attempts. Everything else takes an
        attempt for the registry's check (which records the login)."""
        user_id = await self._credentials.user_id(email, password)
        if user_id is not None:
            state = await self.store.account_state(user_id)
            if not state.disabled:
                await self._logins.refuse_if_blocked(self._realm, email, client_addr)
                # No registry check to record it, so recorded here: every tokens.make is a login.
                await self._trail.record(
                    "login_succeeded",
                    kind=self._realm,
                    client_addr=client_addr,
                    subject_id=user_id,
                    details={"realm": self._realm, "cached": True},
                )
                return user_id, state
        attempt = await self._logins.attempt(self._realm, email, client_addr)
        async with attempt:
            if user_id is None:
                user = await self._logins.check_password(self._realm, password, client_addr, email=email)
                await self._credentials.remember(email, password, user.id)
                user_id = user.id
            state = await self.store.account_state(user_id)
            if state.disabled:  # the account was disabled after its password was confirmed
                raise BadCredentials("the account is disabled")
        return user_id, state

    async def _standing(self, user_id: int, epoch: int, family: str) -> bool:
        """Whether the account still honours a family made under `epoch`; if not, the family ends."""
        state = await self.store.account_state(user_id)
        if state.honours(epoch):
            return True
        await self.store.end_family(family)
        return False

    async def refresh(self, req: RefreshPair) -> Pair:
        outcome = await self.store.refresh(req.refresh_token, int(time.time()))
        family = token_family(req.refresh_token, "refresh")
        if isinstance(outcome, StoredPair):
            # Checked after the rotation, which needs the family's owner first; the new pair of a
            # revoked account is never handed out, and its family ends here.
            assert family is not None
            if await self._standing(outcome.user_id, outcome.epoch, family):
                return outcome
            raise NotFound("the account's credentials have been revoked")
        if outcome is not None:
            _, user_id, app_id = outcome
            log.warning("refresh token reused; family revoked", extra={"family": family, "user_id": user_id})
            await self._trail.record(
                "refresh_reuse_detected",
                kind="chatapp",
                client_addr=req.client_addr,
                subject_id=user_id,
                details={"app_id": app_id, "family": family},
            )
            raise NotFound("refresh token already used; its family is revoked")
        raise NotFound("unknown, expired or revoked refresh token")

    async def check(self, access_token: str) -> Verified:
        live = await self.store.check(access_token, int(time.time()))
        if live is None or not await self._standing(live.user_id, live.epoch, live.family):
            raise NotFound("unknown, expired or revoked access token")
        return live.verified()

    async def revoke(self, access_token: str) -> None:
        if await self.store.revoke(access_token, int(time.time())) is None:
            raise NotFound("unknown, expired or revoked access token")
