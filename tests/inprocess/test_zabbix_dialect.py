"""The Zabbix dialect in process: its explicit method table, its envelope, its tables of domain
errors, and what a request the contract's models refuse comes to (the same answer as when the
backend refused it)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.dialects import zabbix
from gateway.dialects.common import translate
from gateway.dialects.zabbix import token
from gateway.dialects.zabbix.envelope import ENVELOPE_ERRORS
from gateway.dialects.zabbix.errors import NoCallPermission
from registry.store import Store
from shared.errors import NameTaken, NoSuchUser, Refused, TokenHubError, TooManyRows, Unavailable
from shared.postgres import create_pool
from tests.conftest import ADMIN_PASSWORD
from tests.inprocess.conftest import Trio
from tests.inprocess.test_zabbix_inprocess import rpc

USER_PASSWORD = "Dialect-pass-1"


@dataclass(frozen=True)
class Login:
    user_id: int
    session: str


async def login(trio: Trio, username: str, password: str) -> str:
    reply = await rpc(trio, "user.login", {"username": username, "password": password})
    session: str = reply["result"]
    return session


@pytest.fixture(scope="module")
async def admin(trio: Trio) -> Login:
    return Login(1, await login(trio, "Admin", ADMIN_PASSWORD))


@pytest.fixture(scope="module")
async def user(trio: Trio, database_url: str) -> Login:
    """A user (role `user`) of its own, made straight in the registry's store."""
    pool = await create_pool(database_url, 1, 5.0)
    try:
        name = f"dialect-{secrets.token_hex(4)}"
        user_id = await Store(pool, trio.settings.pepper).add_user(name, "user", password=USER_PASSWORD)
    finally:
        await pool.close()
    return Login(user_id, await login(trio, name, USER_PASSWORD))


def error(data: str, code: int = -32602) -> dict[str, Any]:
    messages = {-32602: "Invalid params.", -32500: "Application error.", -32601: "Method not found."}
    return {"code": code, "message": messages[code], "data": data}


def unique(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}"


# --- the method table -----------------------------------------------------------------------------


def test_the_methods_are_registered_in_one_table() -> None:
    public = {name for name, spec in zabbix.METHODS.items() if not spec.needs_auth}
    assert public == {"apiinfo.version", "user.login", "user.checkAuthentication"}
    assert set(zabbix.METHODS) - public == {
        "user.logout",
        "token.create",
        "token.update",
        "token.delete",
        "token.generate",
        "token.get",
    }


async def test_method_names_are_matched_case_insensitively_and_unknown_ones_named(trio: Trio) -> None:
    assert (await rpc(trio, "APIInfo.Version", []))["result"] == trio.settings.zabbix_version
    assert (await rpc(trio, "nope.get", []))["error"] == error('Incorrect API "nope".', -32601)
    assert (await rpc(trio, "token.nope", []))["error"] == error('Incorrect method "token.nope".', -32601)


# --- what the contract's models refuse, answered as the backend's refusal was ---------------------


async def test_a_session_id_too_long_to_be_one_is_a_terminated_session(trio: Trio) -> None:
    reply = await rpc(trio, "user.checkAuthentication", {"sessionid": "s" * 300})
    assert reply["error"] == error("Session terminated, re-login, please.")
    reply = await rpc(trio, "token.get", {}, "s" * 300)
    assert reply["error"] == error("Session terminated, re-login, please.")


async def test_an_empty_or_overlong_api_token_is_not_authorized(trio: Trio) -> None:
    for secret in ("", "f" * 300):
        reply = await rpc(trio, "user.checkAuthentication", {"token": secret})
        assert reply["error"] == error("Not authorized.")


async def test_an_api_token_authenticates_and_is_reused_from_the_cache(trio: Trio, admin: Login) -> None:
    created = await rpc(trio, "token.create", {"name": unique("api")}, admin.session)
    token_id = created["result"]["tokenids"][0]
    secret = (await rpc(trio, "token.generate", [token_id], admin.session))["result"][0]["token"]
    for _ in range(2):
        reply = await rpc(trio, "token.get", {"tokenids": token_id, "output": ["tokenid"]}, secret)
        assert reply["result"] == [{"tokenid": token_id}]
    checked = await rpc(trio, "user.checkAuthentication", {"token": secret})
    assert checked["result"]["userid"] == "1"
    assert "sessionid" not in checked["result"]
    await rpc(trio, "token.delete", [token_id], admin.session)
    assert (await rpc(trio, "token.get", {}, secret))["error"] == error("Not authorized.")


# --- the registry's refusals in Zabbix's words ----------------------------------------------------


async def test_an_owner_the_caller_may_not_manage_is_not_available(trio: Trio, user: Login) -> None:
    reply = await rpc(trio, "token.create", {"name": unique("theirs"), "userid": "1"}, user.session)
    assert reply["error"] == error('User with ID "1" is not available.')
    reply = await rpc(trio, "token.create", {"name": unique("nobody"), "userid": 999999}, user.session)
    assert reply["error"] == error('User with ID "999999" is not available.')


async def test_a_token_the_caller_may_not_manage_is_like_a_missing_one(
    trio: Trio, admin: Login, user: Login
) -> None:
    created = await rpc(trio, "token.create", {"name": unique("admins")}, admin.session)
    token_id = created["result"]["tokenids"][0]
    no_permissions = error("No permissions to referred object or it does not exist!", -32500)
    for method, params in (
        ("token.update", {"tokenid": token_id, "name": "mine"}),
        ("token.delete", [token_id]),
        ("token.generate", [token_id]),
    ):
        assert (await rpc(trio, method, params, user.session))["error"] == no_permissions
    assert (await rpc(trio, "token.get", {"tokenids": token_id}, user.session))["result"] == []


async def test_names_taken_are_told_with_the_name_and_user(trio: Trio, user: Login) -> None:
    first, second = unique("first"), unique("second")
    created = await rpc(trio, "token.create", [{"name": first}, {"name": second}], user.session)
    _, second_id = created["result"]["tokenids"]
    reply = await rpc(trio, "token.create", {"name": first}, user.session)
    assert reply["error"] == error(f'API token "{first}" already exists for userid "{user.user_id}".')
    reply = await rpc(trio, "token.update", {"tokenid": second_id, "name": first}, user.session)
    assert reply["error"] == error(f'API token "{first}" already exists for userid "{user.user_id}".')
    reply = await rpc(trio, "token.create", [{"name": "same"}, {"name": "same"}], user.session)
    assert reply["error"] == error(
        f'Invalid parameter "/2": value (userid, name)=({user.user_id}, same) already exists.'
    )


async def test_token_get_answers_in_every_shape(trio: Trio, user: Login) -> None:
    name = unique("shapes")
    created = await rpc(trio, "token.create", {"name": name, "status": "1"}, user.session)
    token_id = created["result"]["tokenids"][0]
    query = {"filter": {"name": name}}
    assert (await rpc(trio, "token.get", {**query, "countOutput": True}, user.session))["result"] == "1"
    assert (await rpc(trio, "token.get", {**query, "output": []}, user.session))["result"] == [[]]
    kept = await rpc(trio, "token.get", {**query, "output": ["status"], "preservekeys": True}, user.session)
    assert kept["result"] == {token_id: {"status": "1"}}
    full = (await rpc(trio, "token.get", query, user.session))["result"][0]
    assert full["userid"] == str(user.user_id)
    assert full["creator_userid"] == str(user.user_id)
    assert (full["lastaccess"], full["expires_at"]) == ("0", "0")


# --- the tables, for errors the trio cannot be made to raise ----------------------------------------


def test_a_refused_call_names_the_method_as_the_client_wrote_it() -> None:
    said = translate(Refused("a guest", reason="role"), token.CHANGE_ERRORS)
    assert isinstance(said, NoCallPermission)
    assert said.reply(7, "Token.Update") == {
        "jsonrpc": "2.0",
        "error": error('No permissions to call "Token.Update".', -32500),
        "id": 7,
    }


def test_the_tables_say_each_domain_error_in_zabbix_words() -> None:
    too_many = translate(TooManyRows("many", limit=10_000), token.GET_ERRORS)
    assert too_many is not None
    assert too_many.data.startswith("More than 10000 API tokens match")
    gone = translate(NoSuchUser("gone", user_id=42), token.CREATE_ERRORS)
    assert gone is not None
    assert gone.data == 'User with ID "42" is not available.'
    taken = translate(NameTaken("taken", owner_id=3, name="a", position=2), token.CHANGE_ERRORS)
    assert taken is not None
    assert taken.data == 'Invalid parameter "/2": value (userid, name)=(3, a) already exists.'
    down = translate(Unavailable("down"), ENVELOPE_ERRORS)
    assert down is not None
    assert (down.code, down.data) == (-32500, "Service temporarily unavailable, try again later.")
    bug = translate(TokenHubError("bug"), ENVELOPE_ERRORS)
    assert bug is not None
    assert (bug.code, bug.data) == (-32603, "Internal JSON-RPC error.")
