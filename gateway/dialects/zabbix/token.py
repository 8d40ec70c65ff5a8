"""The `token.*` methods of the Zabbix 6.0 API, over the registry's named API tokens.

Each method validates as Zabbix does (same rules, same order, same texts), asks the registry, and
says the registry's answer in Zabbix's words. Every value goes out as a string.
"""

from __future__ import annotations

from pydantic import JsonValue

from gateway.dialects.common import JsonObject, saying
from gateway.dialects.zabbix.envelope import Context
from gateway.dialects.zabbix.errors import (
    APPLICATION_ERROR,
    ApiError,
    Errors,
    NoCallPermission,
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
    Scalar,
    SortOrder,
    String,
    Strings,
    Validated,
    check_unique,
    php_string,
    validate,
)
from gateway.keys import verification_cache_key
from shared.contracts.registry.zabbix_tokens import (
    MAX_ROWS,
    MAX_SEARCH_PATTERNS,
    CreateRequest,
    Direction,
    FilterField,
    IdsRequest,
    NewToken,
    QueryRequest,
    SearchField,
    SortField,
    Status,
    TokenChange,
    UpdateRequest,
    ZabbixToken,
)
from shared.errors import Forbidden, NameTaken, NoSuchUser, NotFound, TokenHubError, TooManyRows

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
# Zabbix's sortable fields, and the registry's name of each.
SORT_FIELDS: dict[str, SortField] = {
    "tokenid": "id",
    "name": "name",
    "lastaccess": "last_used_at",
    "status": "status",
    "expires_at": "expires_at",
    "created_at": "created_at",
}
DIRECTIONS: dict[str, Direction] = {"ASC": "asc", "DESC": "desc"}
NAME_LENGTH = 64  # DB::getFieldLength('token', 'name')
DESCRIPTION_LENGTH = 65535
TOO_MANY_ROWS = (
    f'More than {MAX_ROWS} API tokens match: narrow the request, or set a "limit" of at most {MAX_ROWS}.'
)
STATUS_TO_REGISTRY: dict[str, Status] = {"0": "active", "1": "disabled"}
STATUS_FROM_REGISTRY: dict[Status, str] = {"active": "0", "disabled": "1"}

# --- the methods' parameters ----------------------------------------------------------------------

TOKENID = Field("tokenid", Id(), required=True)
NEW_NAME = Field("name", String(not_empty=True, length=NAME_LENGTH), required=True)
NAME = Field("name", String(not_empty=True, length=NAME_LENGTH))
DESCRIPTION = Field("description", String(length=DESCRIPTION_LENGTH))
USERID = Field("userid", Id())
STATUS = Field("status", Int32("0,1"))
EXPIRES_AT = Field("expires_at", Int32())

CREATE = Objects(Object((NEW_NAME, DESCRIPTION, USERID, STATUS, EXPIRES_AT)))
UPDATE = Objects(Object((TOKENID, NAME, DESCRIPTION, STATUS, EXPIRES_AT)), uniq=(("tokenid",),))
IDS = Ids(not_empty=True, uniq=True)

# token.get's filters, by Zabbix's name, with the registry's name of each.
FILTERS: dict[FilterField, Field[list[Scalar] | None]] = {
    "id": Field("tokenid", Loose()),
    "name": Field("name", Loose()),
    "owner_id": Field("userid", Loose()),
    "last_used_at": Field("lastaccess", Loose()),
    "status": Field("status", Loose()),
    "expires_at": Field("expires_at", Loose()),
    "created_at": Field("created_at", Loose()),
    "creator_id": Field("creator_userid", Loose()),
}
SEARCHES: dict[SearchField, Field[list[Scalar] | None]] = {
    "name": Field("name", Loose(search=True, length=MAX_SEARCH_PATTERNS)),
    "description": Field("description", Loose(search=True, length=MAX_SEARCH_PATTERNS)),
}
TOKENIDS = Field("tokenids", Ids(normalize=True), allow_null=True)
USERIDS = Field("userids", Ids(normalize=True), allow_null=True)
TOKEN = Field("token", String(), allow_null=True)
VALID_AT = Field("valid_at", Int32(), allow_null=True)
EXPIRED_AT = Field("expired_at", Int32(), allow_null=True)
FILTER = Field("filter", Object(tuple(FILTERS.values())), allow_null=True)
SEARCH = Field("search", Object(tuple(SEARCHES.values())), allow_null=True)
SEARCH_BY_ANY = Field("searchByAny", Boolean())
START_SEARCH = Field("startSearch", Flag())
EXCLUDE_SEARCH = Field("excludeSearch", Flag())
WILDCARDS = Field("searchWildcardsEnabled", Boolean())
OUTPUT = Field("output", Output(FIELDS), default="extend")
COUNT_OUTPUT = Field("countOutput", Flag())
SORTFIELD = Field("sortfield", Strings(one_of=tuple(SORT_FIELDS), uniq=True))
SORTORDER = Field("sortorder", SortOrder())
LIMIT = Field("limit", Int32("1:2147483647"), allow_null=True)
PRESERVEKEYS = Field("preservekeys", Boolean())
GET = Object(
    (
        TOKENIDS,
        USERIDS,
        TOKEN,
        VALID_AT,
        EXPIRED_AT,
        FILTER,
        SEARCH,
        SEARCH_BY_ANY,
        START_SEARCH,
        EXCLUDE_SEARCH,
        WILDCARDS,
        OUTPUT,
        COUNT_OUTPUT,
        SORTFIELD,
        SORTORDER,
        LIMIT,
        PRESERVEKEYS,
    )
)

# --- the registry's refusals in Zabbix's words ----------------------------------------------------


def _name_taken(exc: TokenHubError) -> ApiError:
    assert isinstance(exc, NameTaken), "listed under NameTaken"
    owner, name = exc.owner_id, exc.name
    if exc.position is not None:
        return invalid_param(f"/{exc.position}", f"value (userid, name)=({owner}, {name}) already exists")
    return params_error(f'API token "{name}" already exists for userid "{owner}".')


def _owner_not_available(exc: TokenHubError) -> ApiError:
    assert isinstance(exc, NoSuchUser), "listed under NoSuchUser"
    return params_error(f'User with ID "{exc.user_id}" is not available.')


# Tokens and owners the caller may not manage are refused exactly like missing ones.
CREATE_ERRORS: Errors = {
    NoSuchUser: _owner_not_available,
    NameTaken: _name_taken,
    Forbidden: lambda _: NoCallPermission(),
}
CHANGE_ERRORS: Errors = {
    NotFound: lambda _: no_permissions(),
    NameTaken: _name_taken,
    Forbidden: lambda _: NoCallPermission(),
}
GET_ERRORS: Errors = {
    Forbidden: lambda _: NoCallPermission(),
    TooManyRows: lambda _: ApiError(APPLICATION_ERROR, TOO_MANY_ROWS),
}

# --- the methods ----------------------------------------------------------------------------------


def _status(value: int | None) -> Status | None:
    return None if value is None else STATUS_TO_REGISTRY[str(value)]


def _expiry(value: int) -> int | None:
    """Zabbix's expires_at 0 is "never", which the registry says with null."""
    return value or None


def to_zabbix(token: ZabbixToken) -> dict[str, str | None]:
    return {
        "tokenid": str(token.id),
        "name": token.name,
        "description": token.description,
        "userid": str(token.owner_id),
        "lastaccess": str(token.last_used_at or 0),
        "status": STATUS_FROM_REGISTRY[token.status],
        "expires_at": str(token.expires_at if token.expires_at is not None else 0),
        "created_at": str(token.created_at),
        "creator_userid": None if token.creator_id is None else str(token.creator_id),
    }


def _token_ids(ids: list[int]) -> JsonValue:
    return {"tokenids": [str(i) for i in ids]}


# (A Validated read goes to a variable before it goes to a model: pydantic's untyped __init__ would
# make the read's type Any.)


def _new_token(ctx: Context, t: Validated) -> NewToken:
    owner, name, description = t.get(USERID), t[NEW_NAME], t.get(DESCRIPTION)
    status, expires_at = t.get(STATUS), t.get(EXPIRES_AT)
    return NewToken(
        owner_id=ctx.user.id if owner is None else owner,
        name=name,
        description=description or "",
        status=_status(status) or "active",
        expires_at=_expiry(expires_at or 0),
    )


async def create(ctx: Context, params: JsonValue) -> JsonValue:
    tokens = [_new_token(ctx, t) for t in validate(CREATE, params)]
    check_unique(("userid", "name"), [(str(t.owner_id), t.name) for t in tokens], "/")
    request = CreateRequest(actor_id=ctx.user.id, client_addr=ctx.client_addr, tokens=tokens)
    with saying(CREATE_ERRORS):
        ids = await ctx.backends.registry.create_zabbix_tokens(request)
    return _token_ids(ids)


def _change(t: Validated) -> TokenChange:
    token_id, name, description = t[TOKENID], t.get(NAME), t.get(DESCRIPTION)
    status, expires_at = t.get(STATUS), t.get(EXPIRES_AT)
    return TokenChange(
        id=token_id,
        name=name,
        description=description,
        status=_status(status),
        expires_at=None if expires_at is None else _expiry(expires_at),
        set_expiry=expires_at is not None,
    )


async def update(ctx: Context, params: JsonValue) -> JsonValue:
    changes = [_change(t) for t in validate(UPDATE, params)]
    request = UpdateRequest(actor_id=ctx.user.id, client_addr=ctx.client_addr, tokens=changes)
    with saying(CHANGE_ERRORS):
        ids = await ctx.backends.registry.update_zabbix_tokens(request)
    # A disabled or shortened token must stop working on every gateway, not only after caches age.
    await ctx.request.app[verification_cache_key].invalidate(ids)
    return _token_ids(ids)


def _ids_request(ctx: Context, params: JsonValue) -> IdsRequest:
    return IdsRequest(actor_id=ctx.user.id, client_addr=ctx.client_addr, ids=validate(IDS, params))


async def delete(ctx: Context, params: JsonValue) -> JsonValue:
    request = _ids_request(ctx, params)
    with saying(CHANGE_ERRORS):
        ids = await ctx.backends.registry.delete_zabbix_tokens(request)
    # A deleted token must stop working on every gateway.
    await ctx.request.app[verification_cache_key].invalidate(request.ids)
    return _token_ids(ids)


async def generate(ctx: Context, params: JsonValue) -> JsonValue:
    """A new secret for each token, shown this once; the previous one stops working."""
    request = _ids_request(ctx, params)
    with saying(CHANGE_ERRORS):
        tokens = await ctx.backends.registry.generate_zabbix_tokens(request)
    # A token whose old secret was replaced must stop working on every gateway.
    await ctx.request.app[verification_cache_key].invalidate(request.ids)
    return [{"tokenid": str(t.id), "token": t.secret} for t in tokens]


def _filters(given: Validated | None) -> dict[FilterField, list[int | str]]:
    filters: dict[FilterField, list[int | str]] = {}
    for name, field in FILTERS.items():
        values = None if given is None else given.get(field)
        if not values:  # null or empty: not a condition
            continue
        if name == "status":
            filters[name] = [STATUS_TO_REGISTRY.get(php_string(v), "") for v in values]
        else:
            filters[name] = [php_string(v) for v in values]
    return filters


def _searches(given: Validated | None) -> dict[SearchField, list[str]]:
    searches: dict[SearchField, list[str]] = {}
    for name, field in SEARCHES.items():
        if values := None if given is None else given.get(field):
            searches[name] = [php_string(v) for v in values]
    return searches


def _sort(
    fields: list[str], orders: list[str] | None, given_as_string: bool
) -> list[tuple[SortField, Direction]]:
    result: list[tuple[SortField, Direction]] = []
    for index, name in enumerate(fields):
        if orders and given_as_string:
            order = orders[0]
        elif orders and index < len(orders):
            order = orders[index]
        else:
            order = "ASC"
        result.append((SORT_FIELDS[name], DIRECTIONS[order]))
    return result


async def get(ctx: Context, params: JsonValue) -> JsonValue:
    options = validate(GET, params)
    count = bool(options.get(COUNT_OUTPUT))
    ids, owner_ids, secret = options.get(TOKENIDS), options.get(USERIDS), options.get(TOKEN)
    valid_at, expired_at, limit = options.get(VALID_AT), options.get(EXPIRED_AT), options.get(LIMIT)
    query = QueryRequest(
        actor_id=ctx.user.id,
        ids=ids,
        owner_ids=owner_ids,
        secret=secret,
        valid_at=valid_at,
        expired_at=expired_at,
        filter=_filters(options.get(FILTER)),
        search=_searches(options.get(SEARCH)),
        search_any=bool(options.get(SEARCH_BY_ANY)),
        search_prefix=bool(options.get(START_SEARCH)),
        search_exclude=bool(options.get(EXCLUDE_SEARCH)),
        search_wildcards=bool(options.get(WILDCARDS)),
        sort=_sort(
            options.get(SORTFIELD) or [],
            options.get(SORTORDER),
            isinstance(params, dict) and isinstance(params.get("sortorder"), str),
        ),
        limit=limit,
        count=count,
    )
    with saying(GET_ERRORS):
        page = await ctx.backends.registry.query_zabbix_tokens(query)
    if count:
        return str(page.count)
    output = options[OUTPUT]
    rows: list[JsonValue] = []
    for token in page.tokens:
        full = to_zabbix(token)
        # PHP renders an object with no fields as an empty array.
        row: JsonObject = {name: full[name] for name in output}
        rows.append(row if output else [])
    if options.get(PRESERVEKEYS):
        return {str(token.id): row for token, row in zip(page.tokens, rows, strict=True)}
    return rows
