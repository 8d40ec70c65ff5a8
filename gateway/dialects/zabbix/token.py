"""The `token.*` methods of the Zabbix 6.0 API, over the registry's named API tokens.

Each method validates as Zabbix does (same rules, same order, same texts), asks the registry, and
says the registry's answer in Zabbix's words. Every value goes out as a string.
"""

from __future__ import annotations

from typing import Any

from gateway.dialects.zabbix.envelope import Context, api_method
from gateway.dialects.zabbix.errors import (
    APPLICATION_ERROR,
    ApiError,
    invalid_param,
    no_permissions,
    params_error,
)
from gateway.dialects.zabbix.validator import (
    Boolean,
    Field,
    Flag,
    Id,
    Ids,
    Int32,
    Loose,
    Object,
    Objects,
    Output,
    SortOrder,
    String,
    Strings,
    check_unique,
    php_string,
    validate,
)
from gateway.keys import verification_cache_key
from shared.errors import Forbidden, InvalidInput, NameTaken, NotFound

FIELDS = (
    "tokenid",
    "name",
    "description",
    "userid",
    "lastaccess",
    "status",
    "expires_at",
    "created_at",
    "creator_userid",
)
SORT_FIELDS = ("tokenid", "name", "lastaccess", "status", "expires_at", "created_at")
FILTER_FIELDS = (
    "tokenid",
    "name",
    "userid",
    "lastaccess",
    "status",
    "expires_at",
    "created_at",
    "creator_userid",
)
NAME_LENGTH = 64  # DB::getFieldLength('token', 'name')
DESCRIPTION_LENGTH = 65535
# TokenHub's bounds on one token.get (docs/zabbix.md): patterns per searched field, and tokens answered.
MAX_SEARCH_PATTERNS = 100
MAX_ROWS = 10_000
TOO_MANY_ROWS = (
    f'More than {MAX_ROWS} API tokens match: narrow the request, or set a "limit" of at most {MAX_ROWS}.'
)

# Zabbix field -> the registry's field, where the names differ.
REGISTRY_FIELD = {
    "tokenid": "id",
    "userid": "owner_id",
    "creator_userid": "creator_id",
    "lastaccess": "last_used_at",
}
STATUS_TO_REGISTRY = {"0": "active", "1": "disabled"}
STATUS_FROM_REGISTRY = {"active": "0", "disabled": "1"}

CREATE = Objects(
    Object(
        {
            "name": Field(String(not_empty=True, length=NAME_LENGTH), required=True),
            "description": Field(String(length=DESCRIPTION_LENGTH)),
            "userid": Field(Id()),
            "status": Field(Int32("0,1")),
            "expires_at": Field(Int32()),
        }
    )
)
UPDATE = Objects(
    Object(
        {
            "tokenid": Field(Id(), required=True),
            "name": Field(String(not_empty=True, length=NAME_LENGTH)),
            "description": Field(String(length=DESCRIPTION_LENGTH)),
            "status": Field(Int32("0,1")),
            "expires_at": Field(Int32()),
        }
    ),
    uniq=(("tokenid",),),
)
IDS = Ids(not_empty=True, uniq=True)
GET = Object(
    {
        "tokenids": Field(Ids(normalize=True), allow_null=True),
        "userids": Field(Ids(normalize=True), allow_null=True),
        "token": Field(String(), allow_null=True),
        "valid_at": Field(Int32(), allow_null=True),
        "expired_at": Field(Int32(), allow_null=True),
        "filter": Field(Object({name: Field(Loose()) for name in FILTER_FIELDS}), allow_null=True),
        "search": Field(
            Object(
                {
                    "name": Field(Loose(search=True, length=MAX_SEARCH_PATTERNS)),
                    "description": Field(Loose(search=True, length=MAX_SEARCH_PATTERNS)),
                }
            ),
            allow_null=True,
        ),
        "searchByAny": Field(Boolean()),
        "startSearch": Field(Flag()),
        "excludeSearch": Field(Flag()),
        "searchWildcardsEnabled": Field(Boolean()),
        "output": Field(Output(FIELDS), default="extend"),
        "countOutput": Field(Flag()),
        "sortfield": Field(Strings(one_of=SORT_FIELDS, uniq=True)),
        "sortorder": Field(SortOrder()),
        "limit": Field(Int32("1:2147483647"), allow_null=True),
        "preservekeys": Field(Boolean()),
    }
)


def _status(value: int | None) -> str | None:
    return None if value is None else STATUS_TO_REGISTRY[str(value)]


def _expiry(value: int) -> int | None:
    """Zabbix's expires_at 0 is "never", which the registry says with null."""
    return value or None


def _no_call_permission(ctx: Context) -> ApiError:
    return ApiError(APPLICATION_ERROR, f'No permissions to call "{ctx.method}".')


def _name_taken(exc: NameTaken) -> ApiError:
    owner, name = exc.owner_id, exc.name
    if exc.position is not None:
        return invalid_param(f"/{exc.position}", f"value (userid, name)=({owner}, {name}) already exists")
    return params_error(f'API token "{name}" already exists for userid "{owner}".')


def to_zabbix(token: dict[str, Any]) -> dict[str, str | None]:
    creator = token["creator_id"]
    return {
        "tokenid": str(token["id"]),
        "name": token["name"],
        "description": token["description"],
        "userid": str(token["owner_id"]),
        "lastaccess": str(token["last_used_at"] or 0),
        "status": STATUS_FROM_REGISTRY[token["status"]],
        "expires_at": str(token["expires_at"] if token["expires_at"] is not None else 0),
        "created_at": str(token["created_at"]),
        "creator_userid": None if creator is None else str(creator),
    }


@api_method("token.create")
async def token_create(ctx: Context, params: Any) -> dict[str, list[str]]:
    tokens = validate(CREATE, params)
    for token in tokens:
        token.setdefault("userid", ctx.user.id)
    check_unique(tokens, ("userid", "name"), "/")
    body = {
        "actor_id": ctx.user.id,
        "client_addr": ctx.client_addr,
        "tokens": [
            {
                "owner_id": t["userid"],
                "name": t["name"],
                "description": t.get("description", ""),
                "status": _status(t.get("status", 0)),
                "expires_at": _expiry(t.get("expires_at", 0)),
            }
            for t in tokens
        ],
    }
    try:
        reply = await ctx.backends.registry.call("POST", "/v1/zabbix-tokens/create", body)
    except NotFound as exc:
        raise params_error(f'User with ID "{exc.details.get("user_id")}" is not available.') from exc
    except NameTaken as exc:
        raise _name_taken(exc) from exc
    except Forbidden as exc:
        raise _no_call_permission(ctx) from exc
    return {"tokenids": [str(i) for i in reply["ids"]]}


@api_method("token.update")
async def token_update(ctx: Context, params: Any) -> dict[str, list[str]]:
    changes = []
    for t in validate(UPDATE, params):
        change: dict[str, Any] = {"id": t["tokenid"]}
        for name in ("name", "description"):
            if name in t:
                change[name] = t[name]
        if "status" in t:
            change["status"] = _status(t["status"])
        if "expires_at" in t:
            change["expires_at"] = _expiry(t["expires_at"])
            change["set_expiry"] = True
        changes.append(change)
    body = {"actor_id": ctx.user.id, "client_addr": ctx.client_addr, "tokens": changes}
    try:
        reply = await ctx.backends.registry.call("POST", "/v1/zabbix-tokens/update", body)
    except NotFound as exc:
        raise no_permissions() from exc
    except NameTaken as exc:
        raise _name_taken(exc) from exc
    except Forbidden as exc:
        raise _no_call_permission(ctx) from exc
    # A disabled or shortened token must stop working on every gateway, not only after caches age.
    await ctx.request.app[verification_cache_key].invalidate(reply["ids"])
    return {"tokenids": [str(i) for i in reply["ids"]]}


async def _by_ids(ctx: Context, path: str, params: Any) -> dict[str, Any]:
    ids = validate(IDS, params)
    body = {"actor_id": ctx.user.id, "client_addr": ctx.client_addr, "ids": ids}
    try:
        reply: dict[str, Any] = await ctx.backends.registry.call("POST", path, body)
    except NotFound as exc:
        raise no_permissions() from exc
    except Forbidden as exc:
        raise _no_call_permission(ctx) from exc
    # A deleted token, or one whose old secret was replaced, must stop working on every gateway.
    await ctx.request.app[verification_cache_key].invalidate(ids)
    return reply


@api_method("token.delete")
async def token_delete(ctx: Context, params: Any) -> dict[str, list[str]]:
    reply = await _by_ids(ctx, "/v1/zabbix-tokens/delete", params)
    return {"tokenids": [str(i) for i in reply["ids"]]}


@api_method("token.generate")
async def token_generate(ctx: Context, params: Any) -> list[dict[str, str]]:
    """A new secret for each token, shown this once; the previous one stops working."""
    reply = await _by_ids(ctx, "/v1/zabbix-tokens/generate", params)
    return [{"tokenid": str(t["id"]), "token": t["secret"]} for t in reply["tokens"]]


def _filters(given: dict[str, list[Any] | None]) -> dict[str, list[Any]]:
    filters: dict[str, list[Any]] = {}
    for name, values in given.items():
        if not values:  # null or empty: not a condition
            continue
        if name == "status":
            filters["status"] = [STATUS_TO_REGISTRY.get(php_string(v), "") for v in values]
        elif name == "name":
            filters["name"] = [php_string(v) for v in values]
        else:
            filters[REGISTRY_FIELD.get(name, name)] = [php_string(v) for v in values]
    return filters


def _sort(fields: list[str], orders: list[str] | None, given_as_string: bool) -> list[tuple[str, str]]:
    result = []
    for index, name in enumerate(fields):
        if orders and given_as_string:
            order = orders[0]
        elif orders and index < len(orders):
            order = orders[index]
        else:
            order = "ASC"
        result.append((REGISTRY_FIELD.get(name, name), order.lower()))
    return result


@api_method("token.get")
async def token_get(ctx: Context, params: Any) -> Any:
    options = validate(GET, params)
    search = {k: [php_string(v) for v in vs] for k, vs in (options.get("search") or {}).items() if vs}
    query: dict[str, Any] = {
        "actor_id": ctx.user.id,
        "ids": options.get("tokenids"),
        "owner_ids": options.get("userids"),
        "secret": options.get("token"),
        "valid_at": options.get("valid_at"),
        "expired_at": options.get("expired_at"),
        "filter": _filters(options.get("filter") or {}),
        "search": search,
        "search_any": options.get("searchByAny", False),
        "search_prefix": options.get("startSearch", False),
        "search_exclude": options.get("excludeSearch", False),
        "search_wildcards": options.get("searchWildcardsEnabled", False),
        "sort": _sort(
            options.get("sortfield", []),
            options.get("sortorder"),
            isinstance(params, dict) and isinstance(params.get("sortorder"), str),
        ),
        "limit": options.get("limit"),
        "count": options.get("countOutput", False),
    }
    try:
        reply = await ctx.backends.registry.call("POST", "/v1/zabbix-tokens/query", query)
    except Forbidden as exc:
        raise _no_call_permission(ctx) from exc
    except InvalidInput as exc:
        if "too_many" not in exc.details:
            raise
        raise ApiError(APPLICATION_ERROR, TOO_MANY_ROWS) from exc
    if query["count"]:
        return str(reply["count"])
    output: list[str] = options["output"]
    rows: list[Any] = []
    for token in reply["tokens"]:
        full = to_zabbix(token)
        # PHP renders an object with no fields as an empty array.
        rows.append({name: full[name] for name in output} if output else [])
    if options.get("preservekeys"):
        return {str(token["id"]): row for token, row in zip(reply["tokens"], rows, strict=True)}
    return rows
