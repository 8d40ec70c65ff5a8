"""`core/*`: login with a password, logout, and several calls in one request."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from gateway.dialects.wialon import params as p
from gateway.dialects.wialon.envelope import SESSION_IDLE_S, SESSION_REALM, Context, call, service
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
from shared.errors import BadCredentials, Forbidden, NotFound

log = logging.getLogger(__name__)

# The superclasses a login reply announces (Wialon's ids); TokenHub serves only users' tokens.
CLASSES = {
    "avl_hw": 4,
    "avl_resource": 3,
    "avl_retranslator": 7,
    "avl_route": 6,
    "avl_unit": 2,
    "avl_unit_group": 5,
    "user": 1,
}
USER_CLASS = CLASSES["user"]
# A core/batch runs at most this many calls: each may cost a password check or a database write.
MAX_BATCH = 100


def user_object(user: dict[str, Any]) -> dict[str, Any]:
    """The login reply's `user`: Wialon's fields, filled from TokenHub's user record. `crt` (the
    creator) is the parent of a sub-user; TokenHub has no accounts, rights or properties to show."""
    return {
        "nm": user["username"],
        "cls": USER_CLASS,
        "id": user["id"],
        "mu": 0,
        "prp": {},
        "crt": user.get("parent_id") or 0,
        "bact": 0,
        "fl": 0,
        "hm": "",
        "uacl": -1,
    }


def login_reply(
    ctx: Context, session_id: str, user: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The object both core/login and token/login answer (token/login adds `token` and `th`)."""
    return {
        "host": ctx.client_addr,
        "eid": session_id,
        "gis_sid": "",
        "au": user["username"],
        "tm": int(time.time()),
        "wsdk_version": "",
        "user": user_object(user),
        "classes": CLASSES,
        "features": {"unlim": 1, "svcs": {}},
        **(extra or {}),
    }


@service("core/login")
async def core_login(ctx: Context, params: Any) -> dict[str, Any]:
    """{user, password} → a session. Failed logins are throttled per account and per address
    (the issuer's FailureThrottle, realm "wialon"): error 1003 while refused."""
    args = p.as_object(params)
    username = p.text(args, "user", 4 * p.MAX_USER_NAME)
    password = p.text(args, "password", p.MAX_PASSWORD)
    try:
        reply = await ctx.issuer(
            "/v1/sessions",
            {
                "realm": SESSION_REALM,
                "idle": SESSION_IDLE_S,
                "username": username,
                "password": password,
                "client_addr": ctx.client_addr,
            },
        )
    except (BadCredentials, NotFound) as exc:
        raise WialonError(INVALID_USER_OR_PASSWORD) from exc
    except Forbidden as exc:
        raise WialonError(ACCESS_DENIED, "the user is disabled") from exc
    return login_reply(ctx, reply["session_id"], reply["user"])


@service("core/logout")
async def core_logout(ctx: Context, params: Any) -> dict[str, Any]:
    session = await ctx.session()
    p.as_object(params)
    await ctx.issuer("/v1/sessions/end", {"realm": SESSION_REALM, "session_id": session.id})
    return {"error": OK}


@service("core/batch")
async def core_batch(ctx: Context, params: Any) -> list[Any]:
    """`[{svc, params}, ...]` or `{"params": [...], "flags": 0|1}` → one result per call, an error
    object in place of a failed one. Flags 1 stops at the first failure: every later call gets 10.
    A call's `params` may be an object (as the reference shows) or a JSON text (as in a request)."""
    flags = 0
    if isinstance(params, dict):
        calls = params.get("params")
        flags_value = p.uint(params, "flags", 1, required=False)
        flags = flags_value or 0
    else:
        calls = params
    if not isinstance(calls, list):
        raise invalid('"params" must be a list of calls')
    if len(calls) > MAX_BATCH:
        raise invalid(f"a batch holds at most {MAX_BATCH} calls")
    results: list[Any] = []
    failed = False
    for one in calls:
        if failed and flags == 1:
            results.append({"error": BATCH_STOPPED})
            continue
        result = await _batch_call(ctx, one)
        failed = isinstance(result, dict) and result.get("error", OK) != OK
        results.append(result)
    return results


async def _batch_call(ctx: Context, one: Any) -> Any:
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
        return await call(Context(ctx.request, ctx.sid), svc, args)
    except WialonError as exc:
        return exc.body()
    except Exception:
        log.exception("unhandled error in a core/batch call")
        return {"error": UNKNOWN_ERROR}


def escaped(value: Any) -> str:
    """A JSON text, as Wialon nests one JSON document in another (`token`, `p`)."""
    return orjson.dumps(value).decode()
