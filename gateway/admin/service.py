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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.admin.models import (
    AccountUsage,
    AppOut,
    AppUpdate,
    AppUsageOut,
    AuditQuery,
    AuditRow,
    BulkResult,
    CountRow,
    CreatedUser,
    HourBucket,
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
    VerificationBucket,
    VoucherCodes,
    VoucherOut,
    VoucherQuery,
    VoucherResult,
)
from gateway.dialects.wialon.envelope import SESSION_REALM as WIALON_REALM
from gateway.keys import backends_key, verification_cache_key, verification_counter_key
from gateway.redis_keys import ACCEPTED, REFUSED
from shared.contracts import issuer as issuer_api
from shared.contracts.issuer import IssuerClient, OpenSession, TokenSessionsRef
from shared.contracts.registry import RegistryClient
from shared.contracts.registry import admin as registry_api
from shared.contracts.registry import vouchers as voucher_api
from shared.errors import BadCredentials, InvalidInput, NotFound
from shared.secrets import new_urlsafe_secret

# The issuer's session realm of admin sign-ins: the login throttle and the audit events name it.
SESSION_REALM = "admin"
# An admin session ends after this long without a request (sliding): Zabbix's default auto-logout,
# as the Zabbix dialect's sessions (TOKENHUB_ZABBIX_SESSION_IDLE).
SESSION_IDLE_S = 15 * 60


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    role: Role
    # Where the caller's request came from, for the audit log's rows of what it changes ("-" or None
    # when unknown). Not part of who the caller is.
    client_addr: str | None = field(default=None, compare=False)


def _registry(app: web.Application) -> RegistryClient:
    return app[backends_key].registry


def _issuer(app: web.Application) -> IssuerClient:
    return app[backends_key].issuer


M = TypeVar("M", bound=BaseModel)


def _as(model: type[M], value: BaseModel) -> M:
    """A registry reply as the admin API's model of the same fields."""
    return model.model_validate(value.model_dump())


# --- cursors --------------------------------------------------------------------------------------


_NOT_A_CURSOR = "cursor: not a cursor this API handed out"


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, int]:
    """The two parts of a cursor, "<key>|<id>"; InvalidInput for anything this API did not make."""
    try:
        key, _, row_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        number = int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(_NOT_A_CURSOR) from exc
    if not 0 <= number < 2**63:
        raise InvalidInput(_NOT_A_CURSOR)
    return key, number


def encode_cursor(at: datetime, row_id: int) -> str:
    """A keyset position: a row's time and id (tokens by creation, audit events by time)."""
    return _encode(f"{at.astimezone(UTC).isoformat()}|{row_id}")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    key, number = _decode(cursor)
    try:
        moment = datetime.fromisoformat(key)
    except ValueError as exc:
        raise InvalidInput(_NOT_A_CURSOR) from exc
    if moment.tzinfo is None or number < 1:
        raise InvalidInput(_NOT_A_CURSOR)
    return moment, number


def encode_id_cursor(row_id: int) -> str:
    """A position in a listing by id (users)."""
    return _encode(f"id|{row_id}")


def decode_id_cursor(cursor: str) -> int:
    key, number = _decode(cursor)
    if key != "id":
        raise InvalidInput(_NOT_A_CURSOR)
    return number


# --- sessions -------------------------------------------------------------------------------------


async def sign_in(app: web.Application, username: str, password: str, client_addr: str) -> tuple[str, Caller]:
    """Open an admin session through the dialects' one password-login path (the issuer's throttle,
    the registry's login_succeeded / login_failed events). BadCredentials for a wrong password, an
    unknown, disabled or guest account alike; Throttled after too many failures."""
    try:
        opening = OpenSession(
            realm=SESSION_REALM,
            idle=SESSION_IDLE_S,
            username=username,
            password=password,
            client_addr=client_addr,
        )
    except ValidationError as exc:
        raise BadCredentials("incorrect user name or password") from exc
    opened = await _issuer(app).open_session(opening)
    if opened.user.role == "guest":
        # Guests have no console, as they have no Zabbix API access; the session must not outlive this.
        await _issuer(app).end_session(SESSION_REALM, opened.session_id)
        raise BadCredentials("incorrect user name or password")
    return opened.session_id, Caller(opened.user.id, opened.user.username, opened.user.role, client_addr)


async def caller_from_session(
    app: web.Application, token: str, client_addr: str | None = None
) -> Caller | None:
    """The caller of a live admin session (sliding its idle timeout); None if it is not one.
    `client_addr` (gateway.dialects.common.client_addr of the request) goes to the audit log."""
    if not 1 <= len(token) <= 128:
        return None
    try:
        info = await _issuer(app).resolve_session(SESSION_REALM, token)
    except NotFound:
        return None
    if info.user.role == "guest" or info.user.status != "active":
        return None
    return Caller(info.user.id, info.user.username, info.user.role, client_addr)


async def sign_out(app: web.Application, token: str) -> None:
    """End the session, for every gateway (it lives in the issuer)."""
    if 1 <= len(token) <= 128:
        await _issuer(app).end_session(SESSION_REALM, token)


# --- summary --------------------------------------------------------------------------------------


async def summary(app: web.Application, caller: Caller) -> SummaryOut:
    """Counts per kind and status, the last 24 hours by hour (every hour present, oldest first),
    and the sweeper's last pass."""
    got = await _registry(app).admin_summary(
        registry_api.Acting(actor_id=caller.user_id, client_addr=caller.client_addr)
    )
    last_pass = await _issuer(app).sweeper_last_pass()
    by_hour = {hour.hour: hour for hour in got.hourly}
    now_hour = got.counted_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first = int(now_hour.timestamp()) // 3600 - 23
    verified = await app[verification_counter_key].hourly(first, 24)
    hourly = []
    for back in range(23, -1, -1):
        hour = now_hour - timedelta(hours=back)
        seen = by_hour.get(hour)
        hourly.append(
            HourBucket(
                hour=hour, issued=seen.issued if seen else 0, failed_logins=seen.failed_logins if seen else 0
            )
        )
    return SummaryOut(
        tokens=[CountRow(kind=c.kind, status=c.status, count=c.count) for c in got.counts],
        hourly=hourly,
        verifications=[
            VerificationBucket(
                hour=datetime.fromtimestamp(hour * 3600, UTC),
                accepted=verified.get(hour, {}).get(ACCEPTED, 0),
                refused=verified.get(hour, {}).get(REFUSED, 0),
            )
            for hour in range(first, first + 24)
        ],
        sweeper_last_pass=None if last_pass is None else datetime.fromtimestamp(last_pass, UTC),
    )


# --- users ----------------------------------------------------------------------------------------


async def list_users(app: web.Application, caller: Caller, query: UserQuery) -> Page[UserOut]:
    page = await _registry(app).admin_list_users(
        registry_api.ListUsers(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            q=query.q,
            role=query.role,
            status=query.status,
            after_id=0 if query.cursor is None else decode_id_cursor(query.cursor),
            limit=query.limit,
        )
    )
    return Page[UserOut](
        items=[_as(UserOut, u) for u in page.users],
        next_cursor=None if page.next_id is None else encode_id_cursor(page.next_id),
    )


async def get_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    return _as(
        UserOut,
        await _registry(app).admin_get_user(
            registry_api.UserAction(actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id)
        ),
    )


async def create_user(app: web.Application, caller: Caller, new: NewUser) -> CreatedUser:
    """The generated password (when none was given) is in the reply, once."""
    generated = new_urlsafe_secret(12) if new.password is None else None
    created = await _registry(app).admin_create_user(
        registry_api.CreateUser(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            username=new.username,
            role=new.role,
            email=new.email,
            password=new.password or generated or "",
            parent_id=new.parent_id,
        )
    )
    return CreatedUser(user=_as(UserOut, created), password=generated)


async def set_role(app: web.Application, caller: Caller, user_id: int, role: Role) -> UserOut:
    changed = await _registry(app).admin_set_role(
        registry_api.SetRole(
            actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id, role=role
        )
    )
    return _as(UserOut, changed)


async def disable_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    """Refuse every credential of the user at once (sessions, pairs, API tokens, API keys), as
    `tokenhub users disable`: the registry first, then the issuer's account state and the message
    that drops every gateway's cached verifications of the account."""
    changed = await _registry(app).admin_set_status(
        registry_api.SetStatus(
            actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id, status="disabled"
        )
    )
    await _issuer(app).end_account(user_id, disabled=True)
    return _as(UserOut, changed)


async def enable_user(app: web.Application, caller: Caller, user_id: int) -> UserOut:
    changed = await _registry(app).admin_set_status(
        registry_api.SetStatus(
            actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id, status="active"
        )
    )
    await _issuer(app).enable_account(user_id)
    return _as(UserOut, changed)


async def revoke_user(app: web.Application, caller: Caller, user_id: int) -> RevokedOut:
    """End every session and pair, disable Zabbix API tokens, delete Wialon tokens and API keys."""
    revoked = await _registry(app).admin_revoke_user(
        registry_api.UserAction(actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id)
    )
    # The new epoch ends every session, the deleted Wialon tokens' included; the message drops every
    # gateway's cached checks of the account's API tokens and keys.
    await _issuer(app).end_account(user_id, disabled=None)
    return RevokedOut(
        user=_as(UserOut, revoked.user),
        zabbix_tokens=len(revoked.zabbix_tokens),
        wialon_tokens=len(revoked.wialon_tokens),
        api_keys=revoked.api_keys,
    )


async def reset_password(app: web.Application, caller: Caller, user_id: int) -> str:
    """A new generated password, returned once; the user's sessions and pairs end."""
    password = new_urlsafe_secret(12)
    await _registry(app).admin_set_password(
        registry_api.SetPassword(
            actor_id=caller.user_id, client_addr=caller.client_addr, user_id=user_id, password=password
        )
    )
    await _issuer(app).end_account(user_id, disabled=None)
    return password


# Users the tree shows at most (the rest: the users listing, paged).
MAX_TREE = 1000


async def wialon_tree(app: web.Application, caller: Caller, root: int | None = None) -> list[TreeNode]:
    """The users the caller reaches (at most MAX_TREE), as a forest by parent: a user whose parent
    is not in it is a root. With `root`, only that user and those below it (a Wialon parent tree);
    empty if the caller does not reach it."""
    page = await _registry(app).admin_list_users(
        registry_api.ListUsers(
            actor_id=caller.user_id, client_addr=caller.client_addr, limit=MAX_TREE, under=root
        )
    )
    children: dict[int | None, list[registry_api.AdminUser]] = {}
    ids = {u.id for u in page.users}
    for user in page.users:
        children.setdefault(user.parent_id if user.parent_id in ids else None, []).append(user)

    def grow(user: registry_api.AdminUser) -> TreeNode:
        return TreeNode(
            id=user.id,
            username=user.username,
            role=user.role,
            status=user.status,
            children=[grow(child) for child in children.get(user.id, [])],
        )

    return [grow(root) for root in children.get(None, [])]


# --- tokens ---------------------------------------------------------------------------------------


async def list_tokens(app: web.Application, caller: Caller, query: TokenQuery) -> Page[TokenRow]:
    after_at, after_id = (None, None) if query.cursor is None else decode_cursor(query.cursor)
    page = await _registry(app).admin_list_tokens(
        registry_api.ListTokens(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            **query.model_dump(exclude={"cursor"}),
            after_at=after_at,
            after_id=after_id,
        )
    )
    next_cursor = None
    if page.next_at is not None and page.next_id is not None:
        next_cursor = encode_cursor(page.next_at, page.next_id)
    return Page[TokenRow](items=[_as(TokenRow, t) for t in page.tokens], next_cursor=next_cursor)


async def _after_change(app: web.Application, changed: registry_api.TokensChanged) -> BulkResult:
    """Tell every gateway: Zabbix tokens' cached verifications go; Wialon tokens' sessions end."""
    if changed.zabbix:
        await app[verification_cache_key].invalidate(changed.zabbix)
    if changed.wialon:
        await _issuer(app).end_token_sessions(
            TokenSessionsRef(realm=WIALON_REALM, token_ids=changed.wialon, revoked=True)
        )
    return BulkResult(
        done=sorted([*changed.zabbix, *changed.wialon, *changed.voucher]), not_found=changed.not_found
    )


async def revoke_tokens(app: web.Application, caller: Caller, ids: TokenIds) -> BulkResult:
    """Zabbix: disabled; Wialon: deleted (it has no disabled state); voucher: annulled."""
    changed = await _registry(app).admin_revoke_tokens(
        registry_api.TokenIds(actor_id=caller.user_id, client_addr=caller.client_addr, ids=ids.ids)
    )
    return await _after_change(app, changed)


async def delete_tokens(app: web.Application, caller: Caller, ids: TokenIds) -> BulkResult:
    """Zabbix and Wialon tokens are deleted; vouchers soft-deleted (as the hotspot's deletetokens)."""
    changed = await _registry(app).admin_delete_tokens(
        registry_api.TokenIds(actor_id=caller.user_id, client_addr=caller.client_addr, ids=ids.ids)
    )
    return await _after_change(app, changed)


# --- apps -----------------------------------------------------------------------------------------


async def list_apps(app: web.Application, caller: Caller) -> list[AppOut]:
    return [
        _as(AppOut, a)
        for a in await _registry(app).admin_list_apps(
            registry_api.ListApps(actor_id=caller.user_id, client_addr=caller.client_addr)
        )
    ]


async def create_app(app: web.Application, caller: Caller, new: NewApp) -> AppOut:
    created = await _registry(app).admin_create_app(
        registry_api.CreateApp(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            app_id=new.app_id,
            name=new.name or new.app_id,
            daily_quota=new.daily_quota,
            access_ttl=new.access_ttl,
            refresh_ttl=new.refresh_ttl,
        )
    )
    return _as(AppOut, created)


async def update_app(app: web.Application, caller: Caller, app_id: str, change: AppUpdate) -> AppOut:
    updated = await _registry(app).admin_update_app(
        registry_api.UpdateApp(
            actor_id=caller.user_id, client_addr=caller.client_addr, app_id=app_id, **change.model_dump()
        )
    )
    return _as(AppOut, updated)


async def app_usage(app: web.Application, caller: Caller, app_id: str) -> AppUsageOut:
    """Today's tokens.make use of the app by the accounts the caller reaches that have an e-mail
    (the ChatApp login), at most issuer.MAX_USAGE_ACCOUNTS of them; those with any use, most first."""
    the_app = await _registry(app).get_app(app_id)
    page = await _registry(app).admin_list_users(
        registry_api.ListUsers(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            with_email=True,
            limit=issuer_api.MAX_USAGE_ACCOUNTS,
        )
    )
    by_id = {u.id: u for u in page.users}
    accounts: list[AccountUsage] = []
    day = datetime.now(UTC).strftime("%Y%m%d")
    if by_id:
        usage = await _issuer(app).quota_usage(app_id, list(by_id))
        day = usage.day
        accounts = [
            AccountUsage(
                user_id=a.user_id,
                username=by_id[a.user_id].username,
                email=by_id[a.user_id].email,
                used=a.used,
                refused=a.refused,
            )
            for a in usage.accounts
            if a.used or a.refused
        ]
        accounts.sort(key=lambda a: (-a.used, -a.refused, a.user_id))
    return AppUsageOut(
        app_id=the_app.app_id,
        day=f"{day[:4]}-{day[4:6]}-{day[6:]}",
        daily_quota=the_app.daily_quota,
        accounts=accounts,
    )


# --- vouchers -------------------------------------------------------------------------------------


def _voucher(v: voucher_api.Voucher) -> VoucherOut:
    def moment(at: int | None) -> datetime | None:
        return None if at is None else datetime.fromtimestamp(at, UTC)

    return VoucherOut(
        token=v.code,
        owner_id=v.owner_id,
        created_at=datetime.fromtimestamp(v.created_at, UTC),
        used_at=moment(v.first_used_at),
        expired_at=moment(v.expires_at),
        repaid_at=moment(v.repaid_at),
        mac=v.mac,
        multiple=v.multi_use,
        validity=v.lifetime_s,
        u_id=v.external_ref,
    )


async def list_vouchers(app: web.Application, caller: Caller, query: VoucherQuery) -> list[VoucherOut]:
    """As the hotspot's gettokens: the caller's vouchers (a super_admin's: everyone's), but newest
    first (a front desk wants the batch it just made on the first page); paged by limit/offset."""
    found = await _registry(app).search_vouchers(
        voucher_api.SearchVouchers(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            used=query.used,
            repaid=query.repaid,
            multi_use=query.multiple,
            has_lifetime=query.validity,
            code=query.token,
            external_ref=query.u_id,
            limit=query.limit,
            offset=query.offset,
            newest_first=True,
        )
    )
    return [_voucher(v) for v in found]


async def create_vouchers(app: web.Application, caller: Caller, new: NewVouchers) -> list[VoucherOut]:
    """The codes are in the reply (`token`): a printable sheet is made from it, once."""
    made = await _registry(app).create_vouchers(
        voucher_api.CreateVouchers(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            count=new.count,
            multi_use=new.multiple,
            lifetime_s=new.lifetime,
            external_ref=new.u_id,
        )
    )
    return [_voucher(v) for v in made]


async def annul_vouchers(app: web.Application, caller: Caller, codes: VoucherCodes) -> VoucherResult:
    done = await _registry(app).repay_vouchers(
        voucher_api.VoucherCodes(actor_id=caller.user_id, client_addr=caller.client_addr, codes=codes.codes)
    )
    return VoucherResult(done=done.repaid, not_found=done.not_found)


async def delete_vouchers(app: web.Application, caller: Caller, codes: VoucherCodes) -> VoucherResult:
    done = await _registry(app).delete_vouchers(
        voucher_api.VoucherCodes(actor_id=caller.user_id, client_addr=caller.client_addr, codes=codes.codes)
    )
    return VoucherResult(done=done.deleted, not_found=done.not_found)


# --- audit ----------------------------------------------------------------------------------------


async def list_audit(app: web.Application, caller: Caller, query: AuditQuery) -> Page[AuditRow]:
    """Newest first: events by or about the users the caller reaches (a super_admin: all)."""
    after_at, after_id = (None, None) if query.cursor is None else decode_cursor(query.cursor)
    page = await _registry(app).admin_list_audit(
        registry_api.ListAudit(
            actor_id=caller.user_id,
            client_addr=caller.client_addr,
            user_id=query.user_id,
            event=query.event,
            since=query.since,
            until=query.until,
            after_at=after_at,
            after_id=after_id,
            limit=query.limit,
        )
    )
    next_cursor = None
    if page.next_at is not None and page.next_id is not None:
        next_cursor = encode_cursor(page.next_at, page.next_id)
    return Page[AuditRow](items=[_as(AuditRow, e) for e in page.events], next_cursor=next_cursor)
