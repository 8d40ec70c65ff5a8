"""`apiinfo.version` and the session methods: `user.login`, `user.logout`, `user.checkAuthentication`."""

from __future__ import annotations

from pydantic import JsonValue, ValidationError

from gateway.dialects.common import JsonObject, saying
from gateway.dialects.zabbix.envelope import (
    SESSION_REALM,
    Context,
    authenticate_token,
    resolve_session,
)
from gateway.dialects.zabbix.errors import (
    Errors,
    invalid_param,
    no_system_access,
    not_authorized,
    params_error,
)
from gateway.dialects.zabbix.validator import Field, Flag, Object, String, is_array, validate
from shared.contracts.issuer import OpenSession
from shared.contracts.registry.accounts import User
from shared.errors import BadCredentials, Forbidden, InvalidInput, NotFound, Throttled

# Zabbix's user types (USER_TYPE_ZABBIX_USER / ADMIN / SUPER_ADMIN) and default role ids by role.
USER_TYPE = {"super_admin": 3, "admin": 2, "user": 1, "guest": 1}
ROLE_ID = {"super_admin": "3", "admin": "2", "user": "1", "guest": "4"}
LOGIN_FAILED = "Incorrect user name or password or account is temporarily blocked."

USERNAME = Field("username", String(length=255), required=True)
PASSWORD = Field("password", String(length=255), required=True)
USER_DATA = Field("userData", Flag())
LOGIN = Object((USERNAME, PASSWORD, USER_DATA))

SESSIONID = Field("sessionid", String())
TOKEN = Field("token", String())
CHECK_AUTHENTICATION = Object((SESSIONID, TOKEN, Field("extend", Flag())))

# A login refused for whatever reason is one answer (no telling a wrong password from a throttled
# or unknown account); a disabled account has no system access.
LOGIN_ERRORS: Errors = {
    BadCredentials: lambda _: params_error(LOGIN_FAILED),
    NotFound: lambda _: params_error(LOGIN_FAILED),
    Throttled: lambda _: params_error(LOGIN_FAILED),
    InvalidInput: lambda _: params_error(LOGIN_FAILED),
    Forbidden: lambda _: no_system_access(),
}


def require_empty(params: JsonValue) -> None:
    if is_array(params) and params:
        raise invalid_param("/", "should be empty")


def user_data(ctx: Context, user: User, session_id: str) -> JsonObject:
    """The user object of user.login (userData) and user.checkAuthentication."""
    return {
        "userid": str(user.id),
        "username": user.username,
        "name": "",
        "surname": "",
        "url": "",
        "autologin": "0",
        "autologout": str(ctx.settings.zabbix_session_idle),
        "lang": "en_US",
        "refresh": "30s",
        "theme": "default",
        "attempt_failed": "0",
        "attempt_ip": "",
        "attempt_clock": "0",
        "rows_per_page": "50",
        "timezone": "system",
        "roleid": ROLE_ID[user.role],
        "type": USER_TYPE[user.role],
        "userip": ctx.client_addr,
        "debug_mode": 0,
        "gui_access": 0,
        "sessionid": session_id,
    }


async def apiinfo_version(ctx: Context, params: JsonValue) -> JsonValue:
    require_empty(params)
    return ctx.settings.zabbix_version


async def login(ctx: Context, params: JsonValue) -> JsonValue:
    if isinstance(params, dict) and "user" in params:  # the pre-5.4 name of `username`
        if "username" in params:
            raise params_error('Parameter "user" is deprecated.')
        params = {("username" if k == "user" else k): v for k, v in params.items()}
    given = validate(LOGIN, params)
    try:
        opening = OpenSession(
            realm=SESSION_REALM,
            idle=ctx.settings.zabbix_session_idle,
            username=given[USERNAME],
            password=given[PASSWORD],
            client_addr=ctx.client_addr,
        )
    except ValidationError as exc:  # what the issuer would refuse as invalid_input
        raise params_error(LOGIN_FAILED) from exc
    with saying(LOGIN_ERRORS):
        opened = await ctx.backends.issuer.open_session(opening)
    if opened.user.role == "guest":
        # Guests have no API access, as in Zabbix's default setup; the session must not outlive this.
        await ctx.backends.issuer.end_session(SESSION_REALM, opened.session_id)
        raise no_system_access()
    if given.get(USER_DATA):
        return user_data(ctx, opened.user, opened.session_id)
    return opened.session_id


async def logout(ctx: Context, params: JsonValue) -> JsonValue:
    require_empty(params)
    if ctx.user.session_id is None:  # an API token is not a session to end
        raise not_authorized()
    await ctx.backends.issuer.end_session(SESSION_REALM, ctx.user.session_id)
    return True


async def check_authentication(ctx: Context, params: JsonValue) -> JsonValue:
    checked = validate(CHECK_AUTHENTICATION, params)
    session_id, token = checked.get(SESSIONID), checked.get(TOKEN)
    if token is not None and session_id is None:
        caller = await authenticate_token(ctx, token)
        return {k: v for k, v in user_data(ctx, caller.user, "").items() if k != "sessionid"}
    if session_id is not None and token is None:
        return user_data(ctx, (await resolve_session(ctx, session_id)).user, session_id)
    raise params_error("Session ID or token is expected.")
