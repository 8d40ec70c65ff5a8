"""`apiinfo.version` and the session methods: `user.login`, `user.logout`, `user.checkAuthentication`."""

from __future__ import annotations

from typing import Any

from gateway.dialects.zabbix.envelope import SESSION_REALM, Context, api_method, authenticate_token
from gateway.dialects.zabbix.errors import (
    invalid_param,
    no_system_access,
    not_authorized,
    params_error,
    session_terminated,
)
from gateway.dialects.zabbix.validator import Field, Flag, Object, String, is_array, validate
from shared.errors import BadCredentials, Forbidden, InvalidInput, NotFound, Throttled

# Zabbix's user types (USER_TYPE_ZABBIX_USER / ADMIN / SUPER_ADMIN) and default role ids by role.
USER_TYPE = {"super_admin": 3, "admin": 2, "user": 1, "guest": 1}
ROLE_ID = {"super_admin": "3", "admin": "2", "user": "1", "guest": "4"}
LOGIN_FAILED = "Incorrect user name or password or account is temporarily blocked."

LOGIN = Object(
    {
        "username": Field(String(length=255), required=True),
        "password": Field(String(length=255), required=True),
        "userData": Field(Flag()),
    }
)
CHECK_AUTHENTICATION = Object(
    {"sessionid": Field(String()), "token": Field(String()), "extend": Field(Flag())}
)


def require_empty(params: Any) -> None:
    if is_array(params) and params:
        raise invalid_param("/", "should be empty")


def user_data(ctx: Context, user: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The user object of user.login (userData) and user.checkAuthentication."""
    role = user["role"]
    return {
        "userid": str(user["id"]),
        "username": user["username"],
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
        "roleid": ROLE_ID[role],
        "type": USER_TYPE[role],
        "userip": ctx.client_addr,
        "debug_mode": 0,
        "gui_access": 0,
        "sessionid": session_id,
    }


@api_method("apiinfo.version", needs_auth=False)
async def apiinfo_version(ctx: Context, params: Any) -> str:
    require_empty(params)
    return ctx.settings.zabbix_version


@api_method("user.login", needs_auth=False)
async def user_login(ctx: Context, params: Any) -> Any:
    if isinstance(params, dict) and "user" in params:  # the pre-5.4 name of `username`
        if "username" in params:
            raise params_error('Parameter "user" is deprecated.')
        params = {("username" if k == "user" else k): v for k, v in params.items()}
    login = validate(LOGIN, params)
    try:
        reply = await ctx.backends.issuer.call(
            "POST",
            "/v1/sessions",
            {
                "realm": SESSION_REALM,
                "idle": ctx.settings.zabbix_session_idle,
                "username": login["username"],
                "password": login["password"],
                "client_addr": ctx.client_addr,
            },
        )
    except (BadCredentials, NotFound, Throttled, InvalidInput) as exc:
        raise params_error(LOGIN_FAILED) from exc
    except Forbidden as exc:
        raise no_system_access() from exc
    session_id: str = reply["session_id"]
    if reply["user"]["role"] == "guest":
        # Guests have no API access, as in Zabbix's default setup; the session must not outlive this.
        await ctx.backends.issuer.call(
            "POST", "/v1/sessions/end", {"realm": SESSION_REALM, "session_id": session_id}
        )
        raise no_system_access()
    if login.get("userData"):
        return user_data(ctx, reply["user"], session_id)
    return session_id


@api_method("user.logout")
async def user_logout(ctx: Context, params: Any) -> bool:
    require_empty(params)
    if ctx.user.session_id is None:  # an API token is not a session to end
        raise not_authorized()
    await ctx.backends.issuer.call(
        "POST", "/v1/sessions/end", {"realm": SESSION_REALM, "session_id": ctx.user.session_id}
    )
    return True


@api_method("user.checkAuthentication", needs_auth=False)
async def user_check_authentication(ctx: Context, params: Any) -> dict[str, Any]:
    checked = validate(CHECK_AUTHENTICATION, params)
    session_id, token = checked.get("sessionid"), checked.get("token")
    if (session_id is None) == (token is None):
        raise params_error("Session ID or token is expected.")
    if token is not None:
        caller = await authenticate_token(ctx, token)
        return {k: v for k, v in user_data(ctx, caller.user, "").items() if k != "sessionid"}
    assert session_id is not None
    try:
        reply = await ctx.backends.issuer.call(
            "POST", "/v1/sessions/resolve", {"realm": SESSION_REALM, "session_id": session_id}
        )
    except (NotFound, InvalidInput) as exc:
        raise session_terminated() from exc
    return user_data(ctx, reply["user"], session_id)
