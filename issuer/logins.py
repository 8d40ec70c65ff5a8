"""Password logins, the one path every dialect's password check takes (Zabbix and Wialon sessions,
ChatApp's tokens.make): an attempt taken from the failure throttle *before* the check, the check by
the registry (which records login_succeeded / login_failed), and the attempt given back only if it
was not a failure. A login the throttle refuses is recorded as login_blocked, once per window.
"""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn

from pydantic import JsonValue

from issuer.scripts import REDIS_DOWN
from issuer.throttle import ACCOUNT, FailureThrottle, Outcome, Refusal, Subjects
from issuer.trail import SecurityTrail
from shared.contracts.registry import RegistryClient
from shared.contracts.registry.accounts import PasswordLogin, User
from shared.errors import BadCredentials, NotFound, TokenHubError

# Longest login name an audit event repeats: enough to recognise it, not a place to store essays.
_AUDITED_LOGIN_CHARS = 100


class Attempt:
    """One login attempt held against the throttle. Used as `async with`, it is settled on the way
    out: no error is a success; BadCredentials or NotFound a failure (a wrong guess); any other
    domain error void (a registry that did not answer says nothing about the guess), and so is Redis
    not answering (a failover must not lock accounts out); anything else (a cancellation) a failure,
    erring on the safe side."""

    def __init__(self, throttle: FailureThrottle, realm: str, subjects: Subjects, attempt: str) -> None:
        self._throttle = throttle
        self._realm = realm
        self._subjects = subjects
        self._attempt = attempt

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        outcome: Outcome
        if exc is None:
            outcome = "succeeded"
        elif _says_nothing_of_the_guess(exc):
            outcome = "void"
        else:
            outcome = "failed"
        await self._throttle.finish(self._realm, self._subjects, self._attempt, outcome)


def _says_nothing_of_the_guess(exc: BaseException) -> bool:
    """A service that did not answer (the registry, Redis): nothing was learnt of the password."""
    if isinstance(exc, REDIS_DOWN):
        return True
    return isinstance(exc, TokenHubError) and not isinstance(exc, BadCredentials | NotFound)


def _login_subjects(login: str, client_addr: str) -> Subjects:
    return {ACCOUNT: login.lower(), "address": client_addr}


def _login_details(login: str) -> dict[str, JsonValue]:
    return {"login": login[:_AUDITED_LOGIN_CHARS]}


class Logins:
    def __init__(self, throttle: FailureThrottle, registry: RegistryClient, trail: SecurityTrail) -> None:
        self._throttle = throttle
        self._registry = registry
        self._trail = trail

    async def hold(
        self, realm: str, subjects: Subjects, *, blocked_event: str | None, details: dict[str, JsonValue]
    ) -> str:
        """Hold an attempt against these subjects and return its id; Throttled when one of them has
        no failures left, the window's first such refusal recorded as `blocked_event` (if any)."""
        taken = await self._throttle.take(realm, subjects)
        if not isinstance(taken, Refusal):
            return taken
        await self._refuse(realm, subjects, taken, blocked_event, details)

    async def _refuse(
        self,
        realm: str,
        subjects: Subjects,
        refusal: Refusal,
        blocked_event: str | None,
        details: dict[str, JsonValue],
    ) -> NoReturn:
        if refusal.first and blocked_event is not None:
            await self._trail.record(
                blocked_event,
                kind=realm,
                client_addr=subjects.get("address", "-"),
                details={**details, "retry_after": refusal.retry_after},
            )
        raise refusal.error()

    async def attempt(self, realm: str, login: str, client_addr: str) -> Attempt:
        """Take an attempt for this account name and address, or raise Throttled."""
        subjects, details = _login_subjects(login, client_addr), _login_details(login)
        taken = await self.hold(realm, subjects, blocked_event="login_blocked", details=details)
        return Attempt(self._throttle, realm, subjects, taken)

    async def refuse_if_blocked(self, realm: str, login: str, client_addr: str) -> None:
        """Throttled (recorded as `attempt` records it) when this account or address is blocked; for
        a login that needs no password check, and so holds no attempt."""
        subjects = _login_subjects(login, client_addr)
        refusal = await self._throttle.refusal(realm, subjects)
        if refusal is not None:
            await self._refuse(realm, subjects, refusal, "login_blocked", _login_details(login))

    async def check_password(
        self,
        realm: str,
        password: str,
        client_addr: str,
        *,
        username: str | None = None,
        email: str | None = None,
    ) -> User:
        """The registry's record of the user whose password this is; BadCredentials otherwise (also
        for a disabled account: a right password must not be told apart from a wrong one)."""
        login = PasswordLogin(
            password=password, username=username, email=email, realm=realm, client_addr=client_addr
        )
        return await self._registry.authenticate(login)
