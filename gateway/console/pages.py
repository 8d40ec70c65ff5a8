"""The console's pages. Each handler reads its form or query, calls the admin service in-process
(`gateway.admin.service`, as the caller of the session) and renders a template. A refusal of the
service is a message on the page, never an error page of the server; a secret the service generates
(a password, voucher codes) is in the reply to the POST that made it, and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from gateway.admin import service
from gateway.admin.models import (
    AppUpdate,
    AuditQuery,
    NewApp,
    NewUser,
    NewVouchers,
    Role,
    TokenIds,
    TokenQuery,
    UserQuery,
    VoucherCodes,
    VoucherQuery,
)
from gateway.console import security
from gateway.console.chart import Series, line_chart
from gateway.console.frame import (
    PREFIX,
    SIGN_IN,
    Ctx,
    error_text,
    gateway_of,
    render,
    signed_in,
    t_of,
    voucher_mask,
)
from gateway.console.qr import qr_svg
from gateway.dialects.common import client_addr
from shared.errors import InvalidInput, TokenHubError

M = TypeVar("M", bound=BaseModel)
ROLES: tuple[Role, ...] = ("super_admin", "admin", "user", "guest")
KINDS = ("zabbix", "wialon", "voucher")
TOKEN_STATUSES = ("active", "pending", "disabled", "expired", "used", "annulled", "deleted")
Fields = MultiMapping[Any]


# --- reading forms and queries ---------------------------------------------------------------------


def text(source: Fields, name: str) -> str | None:
    """A field's text, stripped; None when absent, empty, or not text."""
    value = source.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def model(cls: type[M], fields: Mapping[str, Any]) -> M:
    """The service's request model from form fields (None: not given); a refusal is InvalidInput."""
    try:
        return cls.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, "invalid form") from None


def grantable(ctx: Ctx) -> tuple[Role, ...]:
    """The roles the caller may give (the registry decides; the page offers no more than that): a
    super_admin any, an admin its users' (user, guest), a user none (it manages no account)."""
    role = ctx.caller.role
    return ROLES if role == "super_admin" else ("user", "guest") if role == "admin" else ()


def tristate(value: str | None) -> bool | None:
    return {"1": True, "0": False}.get(value or "")


def when(value: str | None) -> datetime | None:
    """A `datetime-local` input's value, read as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"not a date and time: {value}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def number(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"not a number: {value}") from None


def back_to(page: str, query: str | None, **outcome: int) -> web.HTTPSeeOther:
    """Back to a listing with its filters as they were, and what was done."""
    extra = urlencode(outcome)
    base = f"{PREFIX}/{page}"
    # The form's own copy of the listing's query, read and written again: only fields survive.
    kept = urlencode([(k, v) for k, v in parse_qsl(query or "")[:20] if k not in ("ok", "done", "missed")])
    joined = "&".join(part for part in (kept, extra) if part)
    return web.HTTPSeeOther(f"{base}?{joined}" if joined else base)


def see_other(location: str) -> web.Response:
    """A redirect to return (not raise), for one that sets cookies."""
    return web.Response(status=303, headers={"Location": location})


def clean_query(
    request: web.Request, drop: tuple[str, ...] = ("ok", "done", "missed", "cursor", "lang")
) -> str:
    return urlencode([(k, v) for k, v in request.query.items() if k not in drop])


# --- sign-in, sign-out ------------------------------------------------------------------------------


async def signin_page(request: web.Request) -> web.StreamResponse:
    return _signin(request, None, 200)


def _signin(request: web.Request, error: str | None, status: int, username: str = "") -> web.StreamResponse:
    pre = request.cookies.get(security.PRESESSION_COOKIE) or security.new_presession()
    t = t_of(request)
    notice = t("Your session has ended. Sign in again.") if request.query.get("ended") else None
    response = render(
        request,
        "signin.html",
        {"csrf": security.csrf_token(request, pre), "error": error, "notice": notice, "username": username},
        status,
    )
    security.set_cookie(request, response, security.PRESESSION_COOKIE, pre)
    return response


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    t = t_of(request)
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return _signin(request, t("Wrong username or password."), 400)
    try:
        token, _ = await service.sign_in(gateway_of(request), username, password, client_addr(request))
    except TokenHubError as exc:
        message = t("Wrong username or password.") if exc.status in (400, 401, 403) else error_text(exc, t)
        return _signin(request, message, exc.status if 400 <= exc.status < 500 else 503, username[:255])
    response = see_other(f"{PREFIX}/")
    security.set_cookie(request, response, security.SESSION_COOKIE, token)
    security.clear_cookie(request, response, security.PRESESSION_COOKIE)
    return response


async def signout(ctx: Ctx) -> web.StreamResponse:
    await service.sign_out(ctx.app, ctx.session)
    response = see_other(SIGN_IN)
    security.clear_cookie(ctx.request, response, security.SESSION_COOKIE)
    return response


# --- overview ---------------------------------------------------------------------------------------


async def overview(ctx: Ctx) -> web.StreamResponse:
    summary = await service.summary(ctx.app, ctx.caller)
    t = ctx.t
    counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for row in summary.tokens:
        counts.setdefault(row.kind, {})[row.status] = row.count
    statuses = [s for s in TOKEN_STATUSES if any(s in by_status for by_status in counts.values())]
    hours = [bucket.hour.astimezone(UTC).strftime("%H:00") for bucket in summary.hourly]
    chart = line_chart(
        t("Issuance, verifications and failed logins over the last 24 hours"),
        hours,
        [
            Series(t("Issued"), "th-s1", [bucket.issued for bucket in summary.hourly]),
            Series(t("Verifications (accepted)"), "th-s3", [b.accepted for b in summary.verifications]),
            Series(t("Failed logins"), "th-s2", [bucket.failed_logins for bucket in summary.hourly]),
        ],
    )
    return ctx.render(
        "overview.html",
        {
            "counts": counts,
            "statuses": statuses,
            "chart": chart,
            "issued_24h": sum(b.issued for b in summary.hourly),
            "failed_24h": sum(b.failed_logins for b in summary.hourly),
            "verified_24h": sum(b.accepted for b in summary.verifications),
            "refused_24h": sum(b.refused for b in summary.verifications),
            "sweeper_last_pass": summary.sweeper_last_pass,
        },
    )


# --- users ------------------------------------------------------------------------------------------


async def users(ctx: Ctx, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    q = ctx.request.query
    filters = {"q": text(q, "q"), "role": text(q, "role"), "status": text(q, "status")}
    try:
        page = await service.list_users(
            ctx.app, ctx.caller, model(UserQuery, {**filters, "cursor": text(q, "cursor")})
        )
    except (InvalidInput, ValidationError) as exc:
        page, error, status = None, _say(ctx, exc), 400
    return ctx.render(
        "users.html",
        {
            "page": page,
            "filters": filters,
            "roles": ROLES,
            "grantable": grantable(ctx),
            "error": error,
            "outcome": _outcome(ctx),
            "query": clean_query(ctx.request),
        },
        status=status,
    )


async def create_user(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    try:
        created = await service.create_user(
            ctx.app,
            ctx.caller,
            model(
                NewUser,
                {
                    "username": text(form, "username"),
                    "role": text(form, "role"),
                    "email": text(form, "email"),
                    "password": text(form, "password"),
                },
            ),
        )
    except TokenHubError as exc:
        return await users(ctx, error=_say(ctx, exc), status=_status(exc))
    if created.password is None:
        raise back_to("users", urlencode({"q": created.user.username}), ok=1)
    return ctx.render(
        "secret.html",
        {"title": ctx.t("User created"), "user": created.user, "secret": created.password},
    )


async def user_action(ctx: Ctx) -> web.StreamResponse:
    user_id = number(ctx.request.match_info["user_id"])
    assert user_id is not None
    action = ctx.request.match_info["action"]
    form = await ctx.request.post()
    back = text(form, "back")
    try:
        if action == "role":
            role = text(form, "role")
            if role not in ROLES:
                raise InvalidInput("role: one of " + ", ".join(ROLES))
            await service.set_role(ctx.app, ctx.caller, user_id, role)
        elif action == "disable":
            await service.disable_user(ctx.app, ctx.caller, user_id)
        elif action == "enable":
            await service.enable_user(ctx.app, ctx.caller, user_id)
        elif action == "revoke":
            revoked = await service.revoke_user(ctx.app, ctx.caller, user_id)
            return ctx.render("revoked.html", {"revoked": revoked})
        elif action == "password":
            user = await service.get_user(ctx.app, ctx.caller, user_id)
            password = await service.reset_password(ctx.app, ctx.caller, user_id)
            return ctx.render(
                "secret.html", {"title": ctx.t("New password"), "user": user, "secret": password}
            )
        else:
            raise web.HTTPNotFound()
    except TokenHubError as exc:
        return await users(ctx, error=_say(ctx, exc), status=_status(exc))
    raise back_to("users", back, ok=1)


async def tree(ctx: Ctx) -> web.StreamResponse:
    return ctx.render("tree.html", {"forest": await service.wialon_tree(ctx.app, ctx.caller)})


# --- tokens -----------------------------------------------------------------------------------------


async def tokens(ctx: Ctx, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    q = ctx.request.query
    filters = {
        "kind": text(q, "kind"),
        "status": text(q, "status"),
        "q": text(q, "q"),
        "owner_id": text(q, "owner_id"),
        "expires_before": text(q, "expires_before"),
    }
    page = None
    try:
        page = await service.list_tokens(
            ctx.app,
            ctx.caller,
            model(
                TokenQuery,
                {
                    **filters,
                    "owner_id": number(filters["owner_id"]),
                    "expires_before": when(filters["expires_before"]),
                    "cursor": text(q, "cursor"),
                },
            ),
        )
    except InvalidInput as exc:
        error, status = _say(ctx, exc), 400
    return ctx.render(
        "tokens.html",
        {
            "page": page,
            "filters": filters,
            "kinds": KINDS,
            "statuses": TOKEN_STATUSES,
            "error": error,
            "outcome": _outcome(ctx),
            "query": clean_query(ctx.request),
        },
        status=status,
    )


async def tokens_bulk(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    action = text(form, "action")
    try:
        ids = [number(v) for v in form.getall("id", []) if isinstance(v, str)]
        if not ids:
            raise InvalidInput(ctx.t("Select at least one."))
        chosen = model(TokenIds, {"ids": ids})
        if action == "revoke":
            result = await service.revoke_tokens(ctx.app, ctx.caller, chosen)
        elif action == "delete":
            result = await service.delete_tokens(ctx.app, ctx.caller, chosen)
        else:
            raise InvalidInput("action: revoke or delete")
    except TokenHubError as exc:
        return await tokens(ctx, error=_say(ctx, exc), status=_status(exc))
    raise back_to("tokens", text(form, "back"), done=len(result.done), missed=len(result.not_found))


# --- apps -------------------------------------------------------------------------------------------


async def apps(ctx: Ctx, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    listing = await service.list_apps(ctx.app, ctx.caller)
    return ctx.render("apps.html", {"apps": listing, "error": error, "outcome": _outcome(ctx)}, status=status)


def _app_fields(form: Fields) -> dict[str, Any]:
    return {
        "name": text(form, "name"),
        "daily_quota": number(text(form, "daily_quota")),
        "access_ttl": number(text(form, "access_ttl")),
        "refresh_ttl": number(text(form, "refresh_ttl")),
    }


async def create_app(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    try:
        made = await service.create_app(
            ctx.app, ctx.caller, model(NewApp, {"app_id": text(form, "app_id"), **_app_fields(form)})
        )
    except TokenHubError as exc:
        return await apps(ctx, error=_say(ctx, exc), status=_status(exc))
    raise web.HTTPSeeOther(f"{PREFIX}/apps/{quote(made.app_id, safe='')}?ok=1")


async def app_page(ctx: Ctx, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    app_id = ctx.request.match_info["app_id"]
    found = [a for a in await service.list_apps(ctx.app, ctx.caller) if a.app_id == app_id]
    if not found:
        raise web.HTTPNotFound()
    usage = await service.app_usage(ctx.app, ctx.caller, app_id)
    return ctx.render(
        "app.html",
        {"one": found[0], "usage": usage, "error": error, "outcome": _outcome(ctx)},
        status=status,
    )


async def update_app(ctx: Ctx) -> web.StreamResponse:
    app_id = ctx.request.match_info["app_id"]
    form = await ctx.request.post()
    try:
        await service.update_app(ctx.app, ctx.caller, app_id, model(AppUpdate, _app_fields(form)))
    except TokenHubError as exc:
        return await app_page(ctx, error=_say(ctx, exc), status=_status(exc))
    raise web.HTTPSeeOther(f"{PREFIX}/apps/{quote(app_id, safe='')}?ok=1")


# --- vouchers ---------------------------------------------------------------------------------------

VOUCHER_PAGE = 50


async def vouchers(ctx: Ctx, *, error: str | None = None, status: int = 200) -> web.StreamResponse:
    q = ctx.request.query
    filters = {name: text(q, name) for name in ("used", "repaid", "multiple", "validity", "token", "u_id")}
    offset = max(0, number(text(q, "offset")) or 0)
    listing = None
    try:
        listing = await service.list_vouchers(
            ctx.app,
            ctx.caller,
            model(
                VoucherQuery,
                {
                    "used": tristate(filters["used"]),
                    "repaid": tristate(filters["repaid"]),
                    "multiple": tristate(filters["multiple"]),
                    "validity": tristate(filters["validity"]),
                    "token": filters["token"],
                    "u_id": filters["u_id"],
                    "limit": VOUCHER_PAGE,
                    "offset": offset,
                },
            ),
        )
    except InvalidInput as exc:
        error, status = _say(ctx, exc), 400
    rows = [(ctx.seal_ref(v.token), voucher_mask(v.token), v) for v in listing or []]
    query = clean_query(ctx.request, ("ok", "done", "missed", "offset", "lang"))
    return ctx.render(
        "vouchers.html",
        {
            "rows": rows,
            "filters": filters,
            "error": error,
            "outcome": _outcome(ctx),
            "query": query,
            "offset": offset,
            "page_size": VOUCHER_PAGE,
            "more": listing is not None and len(listing) == VOUCHER_PAGE,
            "full_query": clean_query(ctx.request, ("ok", "done", "missed", "lang")),
        },
        status=status,
    )


async def create_vouchers(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    try:
        made = await service.create_vouchers(
            ctx.app,
            ctx.caller,
            model(
                NewVouchers,
                {
                    "count": number(text(form, "count")),
                    "multiple": text(form, "multiple") == "1",
                    "lifetime": number(text(form, "lifetime")),
                    "u_id": text(form, "u_id"),
                },
            ),
        )
    except TokenHubError as exc:
        return await vouchers(ctx, error=_say(ctx, exc), status=_status(exc))
    sheet = [(v, qr_svg(v.token, f"{ctx.t('Code')} {v.token}"), lifetime(ctx, v.validity)) for v in made]
    return ctx.render("sheet.html", {"sheet": sheet})


def lifetime(ctx: Ctx, seconds: int) -> str:
    t = ctx.t
    if seconds <= 0:
        return t("No time limit")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days} {t('d')}" if days else "",
        f"{hours} {t('h')}" if hours else "",
        f"{minutes} {t('min')}" if minutes else "",
    ]
    said = " ".join(p for p in parts if p) or f"{seconds} {t('s')}"
    return f"{said} {t('from first use')}"


async def vouchers_bulk(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    action = text(form, "action")
    try:
        codes = [ctx.open_ref(v) for v in form.getall("ref", []) if isinstance(v, str)]
        known = [c for c in codes if c is not None]
        if not known:
            raise InvalidInput(ctx.t("Select at least one."))
        chosen = model(VoucherCodes, {"codes": known})
        if action == "annul":
            result = await service.annul_vouchers(ctx.app, ctx.caller, chosen)
        elif action == "delete":
            result = await service.delete_vouchers(ctx.app, ctx.caller, chosen)
        else:
            raise InvalidInput("action: annul or delete")
    except TokenHubError as exc:
        return await vouchers(ctx, error=_say(ctx, exc), status=_status(exc))
    missed = len(result.not_found) + len(codes) - len(known)
    raise back_to("vouchers", text(form, "back"), done=len(result.done), missed=missed)


# --- audit ------------------------------------------------------------------------------------------


async def audit(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    filters = {name: text(q, name) for name in ("user_id", "event", "since", "until")}
    page, error, status = None, None, 200
    try:
        page = await service.list_audit(
            ctx.app,
            ctx.caller,
            model(
                AuditQuery,
                {
                    "user_id": number(filters["user_id"]),
                    "event": filters["event"],
                    "since": when(filters["since"]),
                    "until": when(filters["until"]),
                    "cursor": text(q, "cursor"),
                },
            ),
        )
    except InvalidInput as exc:
        error, status = _say(ctx, exc), 400
    return ctx.render(
        "audit.html",
        {"page": page, "filters": filters, "error": error, "query": clean_query(ctx.request)},
        status=status,
    )


# --- helpers ----------------------------------------------------------------------------------------


def _say(ctx: Ctx, exc: Exception) -> str:
    if isinstance(exc, TokenHubError):
        return error_text(exc, ctx.t)
    return str(exc)


def _status(exc: TokenHubError) -> int:
    return exc.status if 400 <= exc.status < 500 else 503


def _outcome(ctx: Ctx) -> dict[str, int] | None:
    q = ctx.request.query
    if "ok" in q:
        return {"done": 0, "missed": 0}  # one thing done: "Done." says it all
    if "done" not in q:
        return None
    try:
        return {"done": int(q.get("done", "0")), "missed": int(q.get("missed", "0"))}
    except ValueError:
        return None


def setup_pages(console: web.Application) -> None:
    r = console.router
    r.add_get("/signin", signin_page, name="signin")
    r.add_post("/signin", signin)
    r.add_post("/signout", signed_in(signout), name="signout")
    r.add_get("/", signed_in(overview), name="overview")
    r.add_get("/users", signed_in(users), name="users")
    r.add_post("/users", signed_in(create_user))
    r.add_get("/users/tree", signed_in(tree), name="tree")
    r.add_post(
        r"/users/{user_id:\d{1,18}}/{action:role|disable|enable|revoke|password}", signed_in(user_action)
    )
    r.add_get("/tokens", signed_in(tokens), name="tokens")
    r.add_post("/tokens", signed_in(tokens_bulk))
    r.add_get("/apps", signed_in(apps), name="apps")
    r.add_post("/apps", signed_in(create_app))
    # An app id may hold any printable character, a slash included.
    r.add_get("/apps/{app_id:.+}", signed_in(app_page), name="app")
    r.add_post("/apps/{app_id:.+}", signed_in(update_app))
    r.add_get("/vouchers", signed_in(vouchers), name="vouchers")
    r.add_post("/vouchers", signed_in(create_vouchers))
    r.add_post("/vouchers/bulk", signed_in(vouchers_bulk))
    r.add_get("/audit", signed_in(audit), name="audit")
