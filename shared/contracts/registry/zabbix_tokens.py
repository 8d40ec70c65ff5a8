"""The registry's named API tokens (kind 'zabbix'): create, update, delete, generate a secret, query,
authenticate.

Internal vocabulary: ids are integers, times unix seconds, `null` for "never" in output; in query
filters on a time, 0 stands for "never". Who may do what is the registry's decision, from the actor's
role: a super admin manages every user's tokens, admins and users only their own, guests none.
Tokens or owners the actor may not touch are reported exactly like missing ones.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Endpoint, Message, Reply
from shared.contracts.registry.accounts import User

# Most items in any list of a request; the dialect refuses more before it asks.
MAX_ITEMS = 10_000
# Most patterns per searched field: each is a condition of its own (and a query parameter).
MAX_SEARCH_PATTERNS = 100
# Most tokens one query answers; a query that matches more is refused (too_many_rows), not cut short.
MAX_ROWS = 10_000

Status = Literal["active", "disabled"]
# 0 is a valid id to ask for (nothing has it), as in Zabbix.
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Before 1970 is allowed: a token may be created already expired.
UnixTime = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
# A name's length is the dialect's rule; this only keeps rows sane.
Name = Annotated[str, Field(min_length=1, max_length=255)]
Description = Annotated[str, Field(max_length=65535)]
Items = Annotated[list[Id], Field(max_length=MAX_ITEMS)]


# --- requests -------------------------------------------------------------------------------------


class NewToken(Message):
    owner_id: Id
    name: Name
    description: Description = ""
    status: Status = "active"
    expires_at: UnixTime | None = None


class TokenChange(Message):
    id: Id
    name: Name | None = None
    description: Description | None = None
    status: Status | None = None
    expires_at: UnixTime | None = None
    # expires_at=None is a value ("never"); this says whether to change it at all.
    set_expiry: bool = False


class CreateRequest(Message):
    actor_id: Id
    tokens: Annotated[list[NewToken], Field(min_length=1, max_length=MAX_ITEMS)]
    client_addr: str | None = None  # for the audit log


class UpdateRequest(Message):
    actor_id: Id
    tokens: Annotated[list[TokenChange], Field(min_length=1, max_length=MAX_ITEMS)]
    client_addr: str | None = None


class IdsRequest(Message):
    actor_id: Id
    ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_ITEMS)]
    client_addr: str | None = None


SortField = Literal["id", "name", "last_used_at", "status", "expires_at", "created_at"]
FilterField = Literal[
    "id", "owner_id", "creator_id", "name", "status", "last_used_at", "expires_at", "created_at"
]
SearchField = Literal["name", "description"]
Direction = Literal["asc", "desc"]


class QueryRequest(Message):
    actor_id: Id
    ids: Items | None = None
    owner_ids: Items | None = None
    secret: str | None = None
    valid_at: UnixTime | None = None
    expired_at: UnixTime | None = None
    # Values of a filter that cannot be of the field's type match nothing.
    filter: dict[FilterField, Annotated[list[int | str], Field(max_length=MAX_ITEMS)]] = Field(
        default_factory=dict
    )
    search: dict[SearchField, Annotated[list[str], Field(max_length=MAX_SEARCH_PATTERNS)]] = Field(
        default_factory=dict
    )
    search_any: bool = False  # fields' conditions joined by OR instead of AND
    search_prefix: bool = False  # patterns match at the start only
    search_exclude: bool = False  # NOT LIKE
    search_wildcards: bool = False  # `*` in a pattern matches anything; no implicit wildcards
    sort: list[tuple[SortField, Direction]] = Field(default_factory=list)
    limit: Annotated[int, Field(ge=1)] | None = None
    count: bool = False  # answer how many match, not which


class Secret(Message):
    """An API token's secret, to log in with."""

    secret: Annotated[str, Field(min_length=1, max_length=256)]


# --- replies --------------------------------------------------------------------------------------


class TokenIds(Reply):
    ids: list[int]


class GeneratedToken(Reply):
    id: int
    secret: str  # shown this once: the registry keeps only its hash


class GeneratedTokens(Reply):
    tokens: list[GeneratedToken]


class ZabbixToken(Reply):
    id: int
    owner_id: int
    creator_id: int | None  # None once the creator is deleted
    name: str
    description: str
    status: Status
    created_at: int
    expires_at: int | None
    last_used_at: int | None


class ZabbixTokenPage(Reply):
    """The tokens a query matched, in its order; or, for a query with `count`, only how many."""

    tokens: list[ZabbixToken] = Field(default_factory=list)
    count: int | None = None


class TokenAuthenticated(Reply):
    """The owner of a usable token, the token, and its end (unix seconds; None: never)."""

    user: User
    token_id: int
    expires_at: int | None


# Errors: bad_credentials (unknown or disabled actor), refused (a guest actor), no_such_user (an
# owner that is missing or not the actor's to manage), name_taken (with `position` for two items of
# the request).
CREATE = Endpoint("/v1/zabbix-tokens/create", CreateRequest, TokenIds, status=201)
# Errors: as create, not_found for a token that is missing or not the actor's.
UPDATE = Endpoint("/v1/zabbix-tokens/update", UpdateRequest, TokenIds)
# Errors: bad_credentials, refused, not_found.
DELETE = Endpoint("/v1/zabbix-tokens/delete", IdsRequest, TokenIds)
# A new secret for each token; the old one stops working. Errors: as delete.
GENERATE = Endpoint("/v1/zabbix-tokens/generate", IdsRequest, GeneratedTokens)
# Errors: bad_credentials, refused, too_many_rows.
QUERY = Endpoint("/v1/zabbix-tokens/query", QueryRequest, ZabbixTokenPage, idempotent=True)
# Records the use (lastaccess) at most once a second, which asking twice does not change. Errors:
# bad_credentials (unknown or disabled token or owner), expired.
AUTHENTICATE = Endpoint("/v1/zabbix-tokens/authenticate", Secret, TokenAuthenticated, idempotent=True)

ENDPOINTS = (CREATE, UPDATE, DELETE, GENERATE, QUERY, AUTHENTICATE)


class ZabbixTokensClient(ServiceClient):
    async def create_zabbix_tokens(self, req: CreateRequest) -> list[int]:
        """The new tokens' ids, in the request's order."""
        return (await self.transport.send(CREATE, req)).ids

    async def update_zabbix_tokens(self, req: UpdateRequest) -> list[int]:
        return (await self.transport.send(UPDATE, req)).ids

    async def delete_zabbix_tokens(self, req: IdsRequest) -> list[int]:
        return (await self.transport.send(DELETE, req)).ids

    async def generate_zabbix_tokens(self, req: IdsRequest) -> list[GeneratedToken]:
        return (await self.transport.send(GENERATE, req)).tokens

    async def query_zabbix_tokens(self, req: QueryRequest) -> ZabbixTokenPage:
        return await self.transport.send(QUERY, req)

    async def authenticate_zabbix_token(self, login: Secret) -> TokenAuthenticated:
        return await self.transport.send(AUTHENTICATE, login)
