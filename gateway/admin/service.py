"""The admin API's service layer (issue 17): typed async functions over the issuer and the registry,
the one place the admin HTTP routes (gateway/admin/api.py) and the web console call.

How to call it: module functions whose first argument is the gateway's `web.Application` (it holds
the backends, `gateway.keys.backends_key`), the second the `Caller` acting (from `sign_in` or
`caller_from_session`). For example::

    token, caller = await service.sign_in(app, "Admin", password, client_addr)
    page = await service.list_tokens(app, caller, TokenQuery(kind="zabbix", q="ci-"))
    more = await service.list_tokens(app, caller, TokenQuery(kind="zabbix", q="ci-", cursor=page.next_cursor))

Errors are `shared.errors` classes (each has `.code`, `.status` and `.message`): BadCredentials
(wrong password, unknown or disabled account, guest), Throttled (too many failures; `retry_after`),
Forbidden (the caller's role may not), NotFound (not there, or out of the caller's reach), Conflict,
InvalidInput (a bad cursor, a value out of range), Unavailable. Nothing else escapes.

Who reaches what (decided by the registry, from Postgres, per call): a `user` its own account and
tokens; an `admin` its own and every user below it in the parent chain (as Wialon's sub-users); a
`super_admin` everything. Vouchers follow the hotspot dialect: an operator its own, a super_admin all.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from pydantic import BaseModel

from gateway.admin.models import (
    AccountUsage,
    AppOut,
    AppUpdate,
    AppUsageOut,
    AuditQuery,
    AuditRow,
    BulkResult,
    CreatedUser,
    NewApp,
    NewUser,
    NewVouchers,
    Page,
    RevokedOut,
    Role,
    SummaryOut,
    TokenIds,
    TokenQuery,
    TokenRow,
    TreeNode,
    UserOut,
    UserQuery,
    VoucherCodes,
    VoucherOut,
    VoucherQuery,
    VoucherResult,
)
from gateway.keys import backends_key
from shared.errors import InvalidInput

# The issuer's session realm of admin sign-ins: the login throttle and the audit events name it.
SESSION_REALM = "admin"
# An admin session ends after this long without a request (sliding), as a Zabbix frontend session.
SESSION_IDLE_S = 30 * 60


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    role: Role


def _backends(app: web.Application):  # type: ignore[no-untyped-def]
    return app[backends_key]


# --- cursors --------------------------------------------------------------------------------------


def encode_cursor(at: datetime, row_id: int) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """A cursor handed out by encode_cursor; InvalidInput for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        number = int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this API handed out") from exc
    if moment.tzinfo is None or not 1 <= number < 2**63:
        raise InvalidInput("cursor: not a cursor this API handed out")
    return moment, number


# --- sessions -------------------------------------------------------------------------------------


async def sign_in(app: web.Application, username: str, password: str, client_addr: str) -> tuple[str, Caller]:
    """Open an admin session (the dialects' one password-login path: throttle, audit events)."""
    raise NotImplementedError


async def caller_from_session(app: web.Application, token: str) -> Caller | None:
    """The caller of a live admin session (sliding its idle timeout); None if it is not one."""
    raise NotImplementedError


async def sign_out(app: web.Application, token: str) -> None:
    """End the session, for every gateway (it lives in the issuer)."""
    raise NotImplementedError


# --- summary --------------------------------------------------------------------------------------


async def summary(app: web.Application, caller: Caller) -> SummaryOut:
    raise NotImplementedError


# --- users ----------------------------------------------------------------------------------------


async def list_users(app: web.Application, caller: Caller, query: UserQuery) -> Page[UserOut]:
    raise NotImplementedError


async def get_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    raise NotImplementedError


async def create_user(app: web.Application, caller: Caller, new: NewUser) -> CreatedUser:
    """The generated password (when none was given) is in the reply, once."""
    raise NotImplementedError


async def set_role(app: web.Application, caller: Caller, user_id: int, role: Role) -> UserOut:
    raise NotImplementedError


async def disable_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    """Refuse every credential of the user at once (sessions, pairs, API tokens, API keys)."""
    raise NotImplementedError


async def enable_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    raise NotImplementedError


async def revoke_user(app: web.Application, caller: Caller, user_id: int) -> RevokedOut:
    """End every session and pair, disable Zabbix API tokens, delete Wialon tokens and API keys."""
    raise NotImplementedError


async def reset_password(app: web.Application, caller: Caller, user_id: int) -> str:
    """A new generated password, returned once; the user's sessions end."""
    raise NotImplementedError


async def wialon_tree(app: web.Application, caller: Caller) -> list[TreeNode]:
    """The users the caller reaches, as a forest by parent (roots first)."""
    raise NotImplementedError


# --- tokens ---------------------------------------------------------------------------------------


async def list_tokens(app: web.Application, caller: Caller, query: TokenQuery) -> Page[TokenRow]:
    raise NotImplementedError


async def revoke_tokens(app: web.Application, caller: Caller, ids: TokenIds) -> BulkResult:
    """Zabbix: disabled; Wialon: deleted (it has no disabled state); voucher: annulled."""
    raise NotImplementedError


async def delete_tokens(app: web.Application, caller: Caller, ids: TokenIds) -> BulkResult:
    raise NotImplementedError


# --- apps -----------------------------------------------------------------------------------------


async def list_apps(app: web.Application, caller: Caller) -> list[AppOut]:
    raise NotImplementedError


async def create_app(app: web.Application, caller: Caller, new: NewApp) -> AppOut:
    raise NotImplementedError


async def update_app(app: web.Application, caller: Caller, app_id: str, change: AppUpdate) -> AppOut:
    raise NotImplementedError


async def app_usage(app: web.Application, caller: Caller, app_id: str) -> AppUsageOut:
    raise NotImplementedError


# --- vouchers -------------------------------------------------------------------------------------


async def list_vouchers(app: web.Application, caller: Caller, query: VoucherQuery) -> list[VoucherOut]:
    raise NotImplementedError


async def create_vouchers(app: web.Application, caller: Caller, new: NewVouchers) -> list[VoucherOut]:
    """The codes are in the reply (`token`): a printable sheet is made from it, once."""
    raise NotImplementedError


async def annul_vouchers(app: web.Application, caller: Caller, codes: VoucherCodes) -> VoucherResult:
    raise NotImplementedError


async def delete_vouchers(app: web.Application, caller: Caller, codes: VoucherCodes) -> VoucherResult:
    raise NotImplementedError


# --- audit ----------------------------------------------------------------------------------------


async def list_audit(app: web.Application, caller: Caller, query: AuditQuery) -> Page[AuditRow]:
    raise NotImplementedError


__all__ = [
    "SESSION_IDLE_S",
    "SESSION_REALM",
    "AccountUsage",
    "BaseModel",
    "Caller",
    "timedelta",
]
