"""`core/*`: login with a password, logout, and several calls in one request."""

from __future__ import annotations

import logging
import time

import orjson
from pydantic import JsonValue

from gateway.dialects.common import ErrorTable, JsonObject, saying
from gateway.dialects.wialon import params as p
from gateway.dialects.wialon.envelope import SESSION_IDLE_S, SESSION_REALM, Context
from gateway.dialects.wialon.errors import (
    ACCESS_DENIED,
    BATCH_STOPPED,
    INVALID_SERVICE,
    INVALID_USER_OR_PASSWORD,
    OK,
    UNKNOWN_ERROR,
    WialonError,
    invalid,
)
from shared.contracts.issuer import OpenSession
from shared.contracts.registry.accounts import User
from shared.errors import BadCredentials, Forbidden, NotFound

log = logging.getLogger(__name__)

USER_CLASS = 1
# The superclasses a login reply announces (Wialon's ids); TokenHub serves only users' tokens.
CLASSES: JsonObject = {
    "avl_hw": 4,
    "avl_resource": 3,
    "avl_retranslator": 7,
    "avl_route": 6,
    "avl_unit": 2,
    "avl_unit_group": 5,
    "user": USER_CLASS,
}
# A core/batch runs at most this many calls: each may cost a password check or a database write.
MAX_BATCH = 100

# A password login the issuer refuses: an unknown account or a wrong password is 8 (the issuer does
# not tell them apart), a disabled account 7.
_PASSWORD_REFUSED: ErrorTable[WialonError] = {
    BadCredentials: lambda exc: WialonError(INVALID_USER_OR_PASSWORD),
    NotFound: lambda exc: WialonError(INVALID_USER_OR_PASSWORD),
    Forbidden: lambda exc: WialonError(ACCESS_DENIED, "the user is disabled"),
}


def user_object(user: User) -> JsonObject:
    """The login reply's `user`: Wialon's fields, filled from TokenHub's user record. `crt` (the
    creator) is the parent of a sub-user; TokenHub has no accounts, rights or properties to show."""
    return {
        "nm": user.username,
        "cls": USER_CLASS,
        "id": user.id,
        "mu": 0,
        "prp": {},
        "crt": user.parent_id or 0,
        "bact": 0,
        "fl": 0,
        "hm": "",
        "uacl": -1,
    }


def login_reply(ctx: Context, session_id: str, user: User, extra: JsonObject | None = None) -> JsonObject:
    """The object both core/login and token/login answer (token/login adds `token` and `th`)."""
    return {
        "host": ctx.client_addr,
        "eid": session_id,
        "gis_sid": "",
        "au": user.username,
        "tm": int(time.time()),
        "wsdk_version": "",
        "user": user_object(user),
        "classes": CLASSES,
        "features": {"unlim": 1, "svcs": {}},
        **(extra or {}),
    }


async def login(ctx: Context, params: JsonValue) -> JsonObject:
    """{user, password} → a session. Failed logins are throttled per account and per address
    (the issuer's FailureThrottle, realm "wialon"): error 1003 while refused."""
    args = p.as_object(params)
    username = p.text(args, "user", 4 * p.MAX_USER_NAME)
    password = p.text(args, "password", p.MAX_PASSWORD)
    opening = OpenSession(
        realm=SESSION_REALM,
        idle=SESSION_IDLE_S,
        username=username,
        password=password,
        client_addr=ctx.client_addr,
    )
    with saying(_PASSWORD_REFUSED):
        opened = await ctx.issuer.open_session(opening)
    return login_reply(ctx, opened.session_id, opened.user)


async def logout(ctx: Context, params: JsonValue) -> JsonObject:
    session = await ctx.session()
    p.as_object(params)
    await ctx.issuer.end_session(SESSION_REALM, session.id)
    return {"error": OK}


async def batch(ctx: Context, params: JsonValue) -> list[JsonValue]:
    """`[{svc, params}, ...]` or `{"params": [...], "flags": 0|1}` → one result per call, an error
    object in place of a failed one. Flags 1 stops at the first failure: every later call gets 10.
    A call's `params` may be an object (as the reference shows) or a JSON text (as in a request)."""
    flags = 0
    if isinstance(params, dict):
        calls = params.get("params")
        flags = p.optional_uint(params, "flags", 1) or 0
    else:
        calls = params
    if not isinstance(calls, list):
        raise invalid('"params" must be a list of calls')
    if len(calls) > MAX_BATCH:
        raise invalid(f"a batch holds at most {MAX_BATCH} calls")
    results: list[JsonValue] = []
    failed = False
    for one in calls:
        if failed and flags == 1:
            results.append({"error": BATCH_STOPPED})
            continue
        result = await _batch_call(ctx, one)
        failed = isinstance(result, dict) and result.get("error", OK) != OK
        results.append(result)
    return results


async def _batch_call(ctx: Context, one: JsonValue) -> JsonValue:
    try:
        if not isinstance(one, dict):
            raise invalid("a call must be an object")
        svc = one.get("svc")
        if not isinstance(svc, str):
            raise WialonError(INVALID_SERVICE)
        if svc == "core/batch":
            raise invalid("a batch cannot hold a batch")
        args = one.get("params")
        if isinstance(args, str):
            args = p.decode(args)
        elif args is None:
            args = {}
        # Each call resolves the session itself: a core/logout in the batch ends it for the rest.
        return await ctx.call(svc, args)
    except WialonError as exc:
        return exc.body()
    except Exception:
        log.exception("unhandled error in a core/batch call")
        return {"error": UNKNOWN_ERROR}


def escaped(value: object) -> str:
    """A JSON text, as Wialon nests one JSON document in another (`token`, `p`)."""
    return orjson.dumps(value).decode()
