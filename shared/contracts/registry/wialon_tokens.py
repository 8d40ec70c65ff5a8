"""The registry's Wialon tokens (kind 'wialon', issue 4), in TokenHub's vocabulary: secrets, unix
seconds, plain numbers and lists. Wialon's own names (`h`, `at`, `dur`, `fl`, `p`, `ll`, `callMode`)
are the gateway dialect's business.

A token's times are unix seconds (`expires_at` and `last_used_at` None for "never"), `flags` -1 for
every right. `activates_at` absent means now, `lifetime_s` 0 no end. Every acting request may carry
`client_addr` for the audit log.

Errors: forbidden (refused, with its reason: the actor may not act for that owner, the flags are
wider than `actor_flags`, a token that cannot log in now), not_found (no such token of that owner),
conflict (the owner holds the most tokens allowed), bad_credentials (no such secret), expired (the
token has ended), invalid_input.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from shared.contracts.client import ServiceClient
from shared.contracts.endpoint import Endpoint, Message, Reply
from shared.contracts.registry.accounts import ClientAddr, User
from shared.limits import too_deep

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
# Unix seconds: Wialon's times are unsigned 32-bit.
UnixTime = Annotated[int, Field(ge=0, le=2**32 - 1)]
# lifetime_s is an integer column.
Lifetime = Annotated[int, Field(ge=0, le=2**31 - 1)]
# -1: every right there is; otherwise a bit mask that fits Wialon's unsigned 32 bits.
Flags = Annotated[int, Field(ge=-1, le=2**32 - 1)]
ItemId = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Longer than any secret TokenHub issues, short enough that nobody posts megabytes to be hashed.
Secret = Annotated[str, Field(min_length=1, max_length=256)]
# The application's own parameters (Wialon's `p`): an object or a list of objects.
Params = dict[str, JsonValue] | list[dict[str, JsonValue]]
# Deeper than any JSON encoder on the way out writes (orjson: 255); the dialect allows 64.
MAX_PARAMS_DEPTH = 128
MAX_ITEMS = 10_000


# --- requests -------------------------------------------------------------------------------------


class _Strict(Message):
    # The gateway sends real JSON types; a string where a number belongs is a bug there.
    model_config = ConfigDict(strict=True)


class Acting(_Strict):
    actor_id: Id
    # Whose tokens: the actor's own when absent, else a user below the actor.
    owner_id: Id | None = None
    client_addr: ClientAddr | None = None

    @property
    def owner(self) -> int:
        return self.owner_id if self.owner_id is not None else self.actor_id


class TokenSpec(Acting):
    """What create and update set."""

    # The flags of the session the actor acts in: the new flags may not exceed them.
    actor_flags: Flags
    app: Annotated[str, Field(min_length=1, max_length=255)]
    activates_at: UnixTime | None = None  # None: now
    lifetime_s: Lifetime = 0  # 0: no end
    flags: Flags
    items: Annotated[list[ItemId], Field(max_length=MAX_ITEMS)] = Field(default_factory=list)
    params: Params = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _not_too_deep(cls, value: Params) -> Params:
        if too_deep(value, MAX_PARAMS_DEPTH):
            raise ValueError(f"params nest deeper than {MAX_PARAMS_DEPTH} levels")
        return value


class CreateToken(TokenSpec):
    pass


class UpdateToken(TokenSpec):
    """Replaces everything but the secret, the owner and the creation time."""

    secret: Secret


class DeleteTokens(Acting):
    secret: Secret | None = None
    all: bool = False  # every token of the owner

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.secret is None) == (not self.all):
            raise ValueError("give either secret or all=true")
        return self


class ListTokens(Acting):
    pass


class TokenLogin(_Strict):
    secret: Secret
    # The name of a user below the token's owner to act as (Wialon's operateAs).
    operate_as: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    client_addr: ClientAddr | None = None


# --- replies --------------------------------------------------------------------------------------


class WialonToken(Reply):
    """A token as the registry shows it, its secret included (Wialon shows it again)."""

    id: int
    owner_id: int
    creator_id: int | None  # None once the creator is deleted
    secret: str
    app: str
    created_at: int
    activates_at: int
    lifetime_s: int
    expires_at: int | None
    flags: int
    items: list[int]
    params: Params
    last_used_at: int | None


class TokenReply(Reply):
    token: WialonToken


class TokenList(Reply):
    tokens: list[WialonToken]


class TokensDeleted(Reply):
    """The tokens deleted: none when `all` finds nothing."""

    tokens: list[WialonToken]


class TokenLoggedIn(Reply):
    """Who logs in (the owner, or the user it operates as), and with which token."""

    user: User
    token: WialonToken


# Errors: forbidden (refused), conflict (too many tokens), invalid_input.
CREATE = Endpoint("/v1/wialon-tokens", CreateToken, TokenReply, status=201)
# Errors: forbidden (refused), not_found, invalid_input.
UPDATE = Endpoint("/v1/wialon-tokens/update", UpdateToken, TokenReply)
# Errors: forbidden (refused), not_found (an unknown secret), invalid_input.
DELETE = Endpoint("/v1/wialon-tokens/delete", DeleteTokens, TokensDeleted)
# Errors: forbidden (refused).
LIST = Endpoint("/v1/wialon-tokens/list", ListTokens, TokenList, idempotent=True)
# Records the login (the token's last use, login_succeeded or login_failed). Errors: bad_credentials
# (no such token), forbidden (refused: disabled, not_active, operate_as), expired.
AUTHENTICATE = Endpoint("/v1/wialon-tokens/authenticate", TokenLogin, TokenLoggedIn, idempotent=True)

ENDPOINTS = (CREATE, UPDATE, DELETE, LIST, AUTHENTICATE)


class WialonTokensClient(ServiceClient):
    async def create_wialon_token(self, req: CreateToken) -> WialonToken:
        return (await self.transport.send(CREATE, req)).token

    async def update_wialon_token(self, req: UpdateToken) -> WialonToken:
        return (await self.transport.send(UPDATE, req)).token

    async def delete_wialon_tokens(self, req: DeleteTokens) -> list[WialonToken]:
        return (await self.transport.send(DELETE, req)).tokens

    async def list_wialon_tokens(self, req: ListTokens) -> list[WialonToken]:
        return (await self.transport.send(LIST, req)).tokens

    async def authenticate_wialon_token(self, req: TokenLogin) -> TokenLoggedIn:
        return await self.transport.send(AUTHENTICATE, req)
