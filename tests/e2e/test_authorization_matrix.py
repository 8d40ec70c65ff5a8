"""Who may see and change what: one table per dialect, every method against every role (issue 9).

Each table's rows are callers and its columns the owners of what they act on; a cell says what the
contract promises. Every cell is a test of its own, all of them in one world (matrix_world.py: one
cluster over a database of its own). What is SEEN is compared as sets of ids against Postgres; what
is CHANGED is read back from Postgres: a refused call leaves the row exactly as it was, an allowed
one changes it as asked. Each cell makes the objects it acts on, so cells do not depend on each
other's order.

Sources: DESIGN §2, docs/{zabbix,wialon,hotspot,chatapp}.md; for Zabbix, the real 6.0.14 (the
recorded transcripts, and `../shared/conformance/zabbix-up` for what they do not cover: an admin's
and a user's reach over every other role's tokens, and the guest's API token — "Not authorized."
for every method, user.checkAuthentication included, with its lastaccess left at 0).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import pytest
from _pytest.mark import ParameterSet

from tests.conftest import FreshDatabases
from tests.e2e.harness import Cluster
from tests.e2e.hotspot_client import random_mac
from tests.e2e.matrix_world import People, World, matrix_cluster, open_world, secret_hash, unique
from tests.e2e.wialon_client import TOKEN, error_of

pytestmark = pytest.mark.e2e

ALLOWED: Final = "allowed"
HIDDEN: Final = "hidden"  # the call is answered, without the owner's objects in it
Y, NO, NONE = "Y", "-", "!"  # table marks: reaches, refused, no access to the API at all


@pytest.fixture(scope="module")
def cluster_and_people(
    fresh_databases: FreshDatabases,
    redis_server: str,
    redis_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, str, People]]:
    with matrix_cluster(
        fresh_databases, redis_server, redis_prefix, tmp_path_factory.mktemp("matrix-logs")
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def world(cluster_and_people: tuple[Cluster, str, People]) -> AsyncIterator[World]:
    async with open_world(*cluster_and_people) as opened:
        yield opened


def reach(table: dict[str, str], owners: tuple[str, ...], actor: str) -> dict[str, str]:
    row = table[actor]
    assert len(row) == len(owners), (actor, row)
    return dict(zip(owners, row, strict=True))


def cells(table: dict[str, str], owners: tuple[str, ...], outcome: dict[str, Any]) -> list[ParameterSet]:
    """One test per cell: (actor, owner, expected), expected being `outcome` of the cell's mark."""
    return [
        pytest.param(actor, owner, outcome[mark], id=f"{actor}->{owner}:{label(outcome[mark])}")
        for actor in table
        for owner, mark in reach(table, owners, actor).items()
    ]


def label(expected: Any) -> str:
    """The cell's outcome in its test id: allowed, hidden, or the dialect's error code."""
    if isinstance(expected, ZabbixError):
        return f"error{expected.code}"
    if isinstance(expected, dict):
        return str(expected["code"])
    if isinstance(expected, int):
        return f"error-{expected}"
    return str(expected)


# === Zabbix JSON-RPC ==============================================================================


@dataclass(frozen=True)
class ZabbixError:
    code: int
    message: str
    data: str  # may name {owner_id}

    def body(self, **names: Any) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data.format(**names)}


NOT_AVAILABLE = ZabbixError(-32602, "Invalid params.", 'User with ID "{owner_id}" is not available.')
NO_PERMISSIONS = ZabbixError(
    -32500, "Application error.", "No permissions to referred object or it does not exist!"
)
NOT_AUTHORIZED = ZabbixError(-32602, "Invalid params.", "Not authorized.")
NO_SYSTEM_ACCESS = ZabbixError(-32602, "Invalid params.", "No permissions for system access.")
TERMINATED = ZabbixError(-32602, "Invalid params.", "Session terminated, re-login, please.")
WITH_AUTH = ZabbixError(
    -32602, "Invalid params.", 'The "apiinfo.version" method must be called without the "auth" parameter.'
)
ZabbixOutcome = Literal["allowed", "hidden"] | ZabbixError

Z_OWNERS = ("super_admin", "admin", "user", "guest")
# Whose tokens a caller reaches (DESIGN §2.1 "Roles"). The guest calls with the API token the
# super_admin made for it: it cannot log in.
# fmt: off
Z_REACH = {
    # caller       owners: super_admin admin user guest
    "super_admin": "YYYY",
    "admin":       "-Y--",
    "user":        "--Y-",
    "guest":       "!!!!",
}
# fmt: on
# What "-" is for each method; "!" is the guest's token refused outright (Zabbix 6.0.14).
Z_MARKS: dict[str, dict[str, ZabbixOutcome]] = {
    "token.get": {Y: ALLOWED, NO: HIDDEN, NONE: NOT_AUTHORIZED},
    "token.create": {Y: ALLOWED, NO: NOT_AVAILABLE, NONE: NOT_AUTHORIZED},
    "token.update": {Y: ALLOWED, NO: NO_PERMISSIONS, NONE: NOT_AUTHORIZED},
    "token.delete": {Y: ALLOWED, NO: NO_PERMISSIONS, NONE: NOT_AUTHORIZED},
    "token.generate": {Y: ALLOWED, NO: NO_PERMISSIONS, NONE: NOT_AUTHORIZED},
}
# The methods that act on the caller alone.
Z_SESSION: dict[str, dict[str, ZabbixOutcome]] = {
    "user.login": {"super_admin": ALLOWED, "admin": ALLOWED, "user": ALLOWED, "guest": NO_SYSTEM_ACCESS},
    "user.checkAuthentication": {
        "super_admin": ALLOWED,
        "admin": ALLOWED,
        "user": ALLOWED,
        "guest": NOT_AUTHORIZED,
    },
    "user.logout": {"super_admin": ALLOWED, "admin": ALLOWED, "user": ALLOWED, "guest": NOT_AUTHORIZED},
    # Nobody's credentials belong in it; everyone may call it without.
    "apiinfo.version": {role: WITH_AUTH for role in Z_OWNERS},
}
# Zabbix's user types (user.checkAuthentication's `type`).
USER_TYPE = {"super_admin": 3, "admin": 2, "user": 1}
HEX64 = re.compile(r"[0-9a-f]{64}")


def z_cells(method: str) -> list[ParameterSet]:
    return cells(Z_REACH, Z_OWNERS, Z_MARKS[method])


def z_session_cells(method: str) -> list[ParameterSet]:
    return [
        pytest.param(actor, expected, id=f"{actor}:{label(expected)}")
        for actor, expected in Z_SESSION[method].items()
    ]


def z_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert "error" in reply, reply
    error: dict[str, Any] = reply["error"]
    return error


async def assert_guest_token_unused(world: World) -> None:
    """Zabbix 6.0.14 records no lastaccess for a token it refuses."""
    row = await world.row_of(world.zabbix_auth["guest"])
    assert row is not None
    assert row["last_used_at"] is None


@pytest.mark.parametrize(("actor", "owner", "expected"), z_cells("token.get"))
async def test_zabbix_token_get(world: World, actor: str, owner: str, expected: ZabbixOutcome) -> None:
    owner_id = world.people.zabbix[owner].id
    await world.zabbix_token(owner)  # something of the owner's to show or to hide
    reply = await world.zabbix_as(
        actor, "token.get", {"output": ["tokenid", "userid"], "userids": [owner_id]}
    )
    owned = {
        r["id"]
        for r in await world.db.fetch(
            "SELECT id FROM tokens WHERE kind = 'zabbix' AND owner_id = $1", owner_id
        )
    }
    assert owned
    if isinstance(expected, ZabbixError):
        assert z_error(reply) == expected.body()
        await assert_guest_token_unused(world)
        return
    seen = {int(t["tokenid"]) for t in reply["result"]}
    assert seen == (owned if expected == ALLOWED else set())
    assert {t["userid"] for t in reply["result"]} <= {str(owner_id)}


@pytest.mark.parametrize(
    ("actor", "expected"),
    # A row with no access at all is refused; any other answers with whatever the row reaches.
    [
        pytest.param(actor, NOT_AUTHORIZED if set(row) == {NONE} else ALLOWED, id=actor)
        for actor, row in Z_REACH.items()
    ],
)
async def test_zabbix_token_get_shows_exactly_the_tokens_in_reach(
    world: World, actor: str, expected: ZabbixOutcome
) -> None:
    """Unfiltered token.get (and its count), by session and by the caller's own API token."""
    if isinstance(expected, ZabbixError):
        reply = await world.zabbix_as(actor, "token.get", {"output": ["tokenid"]})
        assert z_error(reply) == expected.body()
        await assert_guest_token_unused(world)
        return
    in_reach = {world.people.zabbix[o].id for o, mark in reach(Z_REACH, Z_OWNERS, actor).items() if mark == Y}
    rows = await world.db.fetch("SELECT id, owner_id FROM tokens WHERE kind = 'zabbix'")
    # Every Zabbix token of this world belongs to one of the table's columns.
    assert {r["owner_id"] for r in rows} == {world.people.zabbix[o].id for o in Z_OWNERS}
    wanted = {r["id"] for r in rows if r["owner_id"] in in_reach}
    assert wanted
    for auth in (world.zabbix_auth[actor], world.zabbix_api_token[actor]):
        listed = await world.zabbix(auth, "token.get", {"output": ["tokenid"]})
        assert {int(t["tokenid"]) for t in listed["result"]} == wanted
        counted = await world.zabbix(auth, "token.get", {"countOutput": True})
        assert counted["result"] == str(len(wanted))


@pytest.mark.parametrize(("actor", "owner", "expected"), z_cells("token.create"))
async def test_zabbix_token_create(world: World, actor: str, owner: str, expected: ZabbixOutcome) -> None:
    owner_id, name = world.people.zabbix[owner].id, unique("made")
    reply = await world.zabbix_as(actor, "token.create", {"name": name, "userid": str(owner_id)})
    rows = await world.db.fetch(
        "SELECT id, owner_id, creator_id FROM tokens WHERE kind = 'zabbix' AND name = $1", name
    )
    if expected == ALLOWED:
        assert reply["result"] == {"tokenids": [str(rows[0]["id"])]}
        assert [(r["owner_id"], r["creator_id"]) for r in rows] == [(owner_id, world.people.zabbix[actor].id)]
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body(owner_id=owner_id)
        assert rows == []


@pytest.mark.parametrize(("actor", "owner", "expected"), z_cells("token.update"))
async def test_zabbix_token_update(world: World, actor: str, owner: str, expected: ZabbixOutcome) -> None:
    token_id = await world.zabbix_token(owner)
    before = await world.row(token_id)
    assert before is not None
    name = unique("renamed")
    change = {"tokenid": str(token_id), "name": name, "description": "changed", "status": "1"}
    reply = await world.zabbix_as(actor, "token.update", change)
    after = await world.row(token_id)
    if expected == ALLOWED:
        assert reply["result"] == {"tokenids": [str(token_id)]}
        assert after == {**before, "name": name, "description": "changed", "status": "disabled"}
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), z_cells("token.delete"))
async def test_zabbix_token_delete(world: World, actor: str, owner: str, expected: ZabbixOutcome) -> None:
    token_id = await world.zabbix_token(owner)
    before = await world.row(token_id)
    reply = await world.zabbix_as(actor, "token.delete", [str(token_id)])
    after = await world.row(token_id)
    if expected == ALLOWED:
        assert reply["result"] == {"tokenids": [str(token_id)]}
        assert after is None
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), z_cells("token.generate"))
async def test_zabbix_token_generate(world: World, actor: str, owner: str, expected: ZabbixOutcome) -> None:
    token_id = await world.zabbix_token(owner)
    old = await world.zabbix_secret(token_id)
    before = await world.row(token_id)
    assert before is not None
    assert before["secret_hash"] == secret_hash(old)
    reply = await world.zabbix_as(actor, "token.generate", [str(token_id)])
    after = await world.row(token_id)
    if expected == ALLOWED:
        [generated] = reply["result"]
        assert generated["tokenid"] == str(token_id)
        assert HEX64.fullmatch(generated["token"])
        assert after == {**before, "secret_hash": secret_hash(generated["token"])}
        assert generated["token"] != old
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()
        assert after == before


@pytest.mark.parametrize(("actor", "expected"), z_session_cells("user.login"))
async def test_zabbix_user_login(world: World, actor: str, expected: ZabbixOutcome) -> None:
    person = world.people.zabbix[actor]
    reply = await world.zabbix(
        None, "user.login", {"username": person.name, "password": person.password, "userData": True}
    )
    if expected == ALLOWED:
        user = reply["result"]
        assert (user["userid"], user["username"], user["type"]) == (
            str(person.id),
            person.name,
            USER_TYPE[actor],
        )
        # The new session is the caller's and nobody else's.
        checked = await world.zabbix(None, "user.checkAuthentication", {"sessionid": user["sessionid"]})
        assert checked["result"]["userid"] == str(person.id)
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()


@pytest.mark.parametrize(("actor", "expected"), z_session_cells("user.checkAuthentication"))
async def test_zabbix_user_check_authentication(world: World, actor: str, expected: ZabbixOutcome) -> None:
    params = (
        {"token": world.zabbix_auth[actor]} if actor == "guest" else {"sessionid": world.zabbix_auth[actor]}
    )
    reply = await world.zabbix(None, "user.checkAuthentication", params)
    if expected == ALLOWED:
        user = reply["result"]
        person = world.people.zabbix[actor]
        assert (user["userid"], user["username"], user["type"]) == (
            str(person.id),
            person.name,
            USER_TYPE[actor],
        )
        # An API token shows its owner the same way.
        by_token = await world.zabbix(
            None, "user.checkAuthentication", {"token": world.zabbix_api_token[actor]}
        )
        assert by_token["result"]["userid"] == str(person.id)
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()
        await assert_guest_token_unused(world)


@pytest.mark.parametrize(("actor", "expected"), z_session_cells("user.logout"))
async def test_zabbix_user_logout(world: World, actor: str, expected: ZabbixOutcome) -> None:
    """A caller ends its own session, and no other."""
    auth = world.zabbix_auth["guest"] if actor == "guest" else await world.zabbix_login(actor)
    reply = await world.zabbix(auth, "user.logout", [])
    if expected == ALLOWED:
        assert reply["result"] is True
        ended = await world.zabbix(auth, "token.get", {"countOutput": True})
        assert z_error(ended) == TERMINATED.body()
    else:
        assert isinstance(expected, ZabbixError)
        assert z_error(reply) == expected.body()
    for role in ("super_admin", "admin", "user"):
        assert "result" in await world.zabbix_as(role, "token.get", {"countOutput": True}), role


@pytest.mark.parametrize(("actor", "expected"), z_session_cells("apiinfo.version"))
async def test_zabbix_apiinfo_version(world: World, actor: str, expected: ZabbixOutcome) -> None:
    assert isinstance(expected, ZabbixError)
    assert z_error(await world.zabbix_as(actor, "apiinfo.version", [])) == expected.body()
    assert (await world.zabbix(None, "apiinfo.version", []))["result"] == "6.0.14"


# === Wialon Remote API ============================================================================

DENIED = 7  # access denied
NO_SESSION = 1  # invalid session
WialonOutcome = Literal["allowed"] | int

W_OWNERS = ("parent", "child", "stranger")
# Whose tokens a session reaches when it names the owner with `userId` (DESIGN §2.2): itself and the
# users below it. "limited" is a session of the parent's token with fl 0x100: a token session
# without fl -1 manages no tokens. Roles give no reach here (docs/wialon.md): the super_admin is a
# stranger to these users, and the guest may log in but manages no tokens.
# fmt: off
W_REACH = {
    # caller       owners: parent child stranger
    "parent":      "YY-",
    "child":       "-Y-",
    "stranger":    "--Y",
    "limited":     "---",
    "super_admin": "---",
    "guest":       "---",
}
# fmt: on
# Without `userId` only the caller's own tokens are reached: a parent changes a child's token only
# by naming the child.
# fmt: off
W_OWN = {
    # caller       owners: parent child stranger
    "parent":      "Y--",
    "child":       "-Y-",
    "stranger":    "--Y",
    "limited":     "---",
    "super_admin": "---",
    "guest":       "---",
}
# fmt: on
# token/login `operateAs`: rows are the token's owners, columns whom the session acts as.
# fmt: off
W_OPERATE_AS = {
    # token of  acting as: parent child stranger
    "parent":   "YY-",
    "child":    "-Y-",
    "stranger": "--Y",
}
# fmt: on
W_MARKS: dict[str, WialonOutcome] = {Y: ALLOWED, NO: DENIED}
W_ACTORS = tuple(W_REACH)
UPDATE: dict[str, Any] = {"callMode": "update", "at": 0, "dur": 3600, "fl": 0x300, "p": '{"changed":1}'}


def w_cells(table: dict[str, str]) -> list[ParameterSet]:
    return cells(table, W_OWNERS, W_MARKS)


async def wialon_rows(world: World, owner_id: int) -> list[dict[str, Any]]:
    rows = await world.db.fetch(
        "SELECT * FROM tokens WHERE kind = 'wialon' AND owner_id = $1 ORDER BY id", owner_id
    )
    return [dict(r) for r in rows]


async def check_listing(world: World, body: Any, owner: str, expected: WialonOutcome) -> None:
    if expected == ALLOWED:
        assert isinstance(body, list), body
        owned = {r["secret_hash"] for r in await wialon_rows(world, world.people.wialon[owner].id)}
        assert owned
        assert {secret_hash(t["h"]) for t in body} == owned
    else:
        assert error_of(body) == expected, body


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_token_list(world: World, actor: str, owner: str, expected: WialonOutcome) -> None:
    await world.wialon_token(owner)
    sid = await world.wialon_session(actor)
    body = await world.wialon.call("token/list", {"userId": world.people.wialon[owner].id}, sid)
    await check_listing(world, body, owner, expected)


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_core_batch(world: World, actor: str, owner: str, expected: WialonOutcome) -> None:
    """A batch decides each call's rights on its own, as the call would be decided alone."""
    await world.wialon_token(owner)
    sid = await world.wialon_session(actor)
    calls = [{"svc": "token/list", "params": {"userId": world.people.wialon[owner].id}}]
    [body] = await world.wialon.call("core/batch", calls, sid)
    await check_listing(world, body, owner, expected)


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_token_update_create(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    sid = await world.wialon_session(actor)
    app, owner_id = unique("made"), world.people.wialon[owner].id
    create = {"callMode": "create", "userId": owner_id, "app": app, "at": 0, "dur": 0, "fl": -1, "p": "{}"}
    body = await world.wialon.call("token/update", create, sid)
    rows = await world.db.fetch("SELECT owner_id, creator_id, secret_hash FROM tokens WHERE name = $1", app)
    if expected == ALLOWED:
        assert TOKEN.fullmatch(body["h"]), body
        assert [(r["owner_id"], r["creator_id"], r["secret_hash"]) for r in rows] == [
            (owner_id, world.wialon_user(actor).id, secret_hash(body["h"]))
        ]
    else:
        assert error_of(body) == expected, body
        assert rows == []


async def w_update(world: World, actor: str, owner: str, expected: WialonOutcome, *, scoped: bool) -> None:
    h = await world.wialon_token(owner)
    sid = await world.wialon_session(actor)
    before = await world.row_of(h)
    assert before is not None
    app = unique("changed")
    named = {"userId": world.people.wialon[owner].id} if scoped else {}
    body = await world.wialon.call("token/update", {**UPDATE, **named, "h": h, "app": app}, sid)
    after = await world.row_of(h)
    if expected == ALLOWED:
        assert (body["h"], body["app"], body["fl"], body["dur"]) == (h, app, 0x300, 3600)
        assert after is not None
        assert (after["name"], after["flags"], after["lifetime_s"], after["params"]) == (
            app,
            0x300,
            3600,
            '{"changed": 1}',
        )
        unchanged = ("id", "owner_id", "creator_id", "secret_hash", "sealed_secret", "created_at")
        assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    else:
        assert error_of(body) == expected, body
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_token_update_update(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    await w_update(world, actor, owner, expected, scoped=True)


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_OWN))
async def test_wialon_token_update_update_without_user_id(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    await w_update(world, actor, owner, expected, scoped=False)


async def w_delete(world: World, actor: str, owner: str, expected: WialonOutcome, *, scoped: bool) -> None:
    h = await world.wialon_token(owner)
    sid = await world.wialon_session(actor)
    before = await world.row_of(h)
    named = {"userId": world.people.wialon[owner].id} if scoped else {}
    body = await world.wialon.call("token/update", {"callMode": "delete", **named, "h": h}, sid)
    after = await world.row_of(h)
    if expected == ALLOWED:
        assert body["h"] == h, body
        assert after is None
    else:
        assert error_of(body) == expected, body
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_token_update_delete(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    await w_delete(world, actor, owner, expected, scoped=True)


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_OWN))
async def test_wialon_token_update_delete_without_user_id(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    await w_delete(world, actor, owner, expected, scoped=False)


@pytest.mark.parametrize(("actor", "owner", "expected"), w_cells(W_REACH))
async def test_wialon_token_update_delete_all(
    world: World, actor: str, owner: str, expected: WialonOutcome
) -> None:
    owner_id = world.people.wialon[owner].id
    await world.wialon_token(owner)
    sid = await world.wialon_session(actor)
    before = await wialon_rows(world, owner_id)
    body = await world.wialon.call(
        "token/update", {"callMode": "delete", "userId": owner_id, "deleteAll": 1}, sid
    )
    after = await wialon_rows(world, owner_id)
    if expected == ALLOWED:
        assert body == {}
        assert after == []
    else:
        assert error_of(body) == expected, body
        assert after == before


@pytest.mark.parametrize(("token_owner", "operate_as", "expected"), cells(W_OPERATE_AS, W_OWNERS, W_MARKS))
async def test_wialon_token_login_operate_as(
    world: World, token_owner: str, operate_as: str, expected: WialonOutcome
) -> None:
    h = await world.wialon_token(token_owner)
    before = await world.row_of(h)
    assert before is not None
    target = world.people.wialon[operate_as]
    body = await world.wialon.call("token/login", {"token": h, "operateAs": target.name})
    after = await world.row_of(h)
    if expected == ALLOWED:
        assert (body["user"]["id"], body["user"]["nm"], body["th"]) == (target.id, target.name, h)
        assert after is not None
        assert after["last_used_at"] is not None  # the login is recorded (`ll`)
        # The session acts as that user: its own listing is the user's tokens.
        listed = await world.wialon.call("token/list", {}, body["eid"])
        owned = {r["secret_hash"] for r in await wialon_rows(world, target.id)}
        assert {secret_hash(t["h"]) for t in listed} == owned
    else:
        assert error_of(body) == expected, body
        assert after == before


@pytest.mark.parametrize("actor", [a for a in W_ACTORS if a != "limited"])
async def test_wialon_core_login(world: World, actor: str) -> None:
    """Everyone logs in as itself; `crt` names a sub-user's parent."""
    person = world.people.wialon[actor]
    body = await world.wialon.call("core/login", {"user": person.name, "password": person.password})
    creator = world.people.wialon["parent"].id if actor == "child" else 0
    assert (body["user"]["id"], body["user"]["nm"], body["user"]["crt"]) == (person.id, person.name, creator)


@pytest.mark.parametrize("actor", W_ACTORS)
async def test_wialon_core_logout(world: World, actor: str) -> None:
    """A caller ends its own session, and no other."""
    if actor == "limited":
        sid = await world.wialon_session(actor)
    else:
        person = world.people.wialon[actor]
        sid = (await world.wialon.call("core/login", {"user": person.name, "password": person.password}))[
            "eid"
        ]
    assert await world.wialon.call("core/logout", {}, sid) == {"error": 0}
    assert error_of(await world.wialon.call("token/list", {}, sid)) == NO_SESSION
    for other, other_sid in world.wialon_sid.items():
        assert error_of(await world.wialon.call("token/list", {}, other_sid)) != NO_SESSION, other


@pytest.mark.parametrize("actor", W_ACTORS)
async def test_wialon_avl_evts(world: World, actor: str) -> None:
    """The event poll shows nobody anything (TokenHub has no items), whoever asks."""
    sid = await world.wialon_session(actor)
    async with world.http.get(world.base + "/avl_evts", params={"sid": sid}) as r:
        body = await r.json(content_type=None)
    assert body["events"] == []
    assert isinstance(body["tm"], int)


# === Hotspot vouchers =============================================================================

H_OWNERS = ("op_a", "op_b", "super_admin")
# An operator sees and changes only its own vouchers, a super_admin everyone's (DESIGN §2.3);
# another operator's voucher is indistinguishable from an unknown one (docs/hotspot.md).
# fmt: off
H_REACH = {
    # caller       owners: op_a op_b super_admin
    "op_a":        "Y--",
    "op_b":        "-Y-",
    "super_admin": "YYY",
}
# fmt: on
H_MARKS: dict[str, str] = {Y: ALLOWED, NO: "not_found"}


def h_cells() -> list[ParameterSet]:
    return cells(H_REACH, H_OWNERS, H_MARKS)


async def h_voucher(world: World, owner: str) -> tuple[str, dict[str, Any]]:
    [code] = await world.hotspot.create(world.people.operators[owner].api_token, 1, lifetime=3600)
    row = await world.row_of(code)
    assert row is not None
    return code, row


@pytest.mark.parametrize(("actor", "owner", "expected"), h_cells())
async def test_hotspot_gettokens(world: World, actor: str, owner: str, expected: str) -> None:
    code, _ = await h_voucher(world, owner)
    listed = await world.hotspot.ok(world.people.operators[actor].api_token, "gettokens", {"token": code})
    assert listed.tokens == ([code] if expected == ALLOWED else [])


@pytest.mark.parametrize("actor", H_OWNERS)
async def test_hotspot_gettokens_shows_exactly_the_vouchers_in_reach(world: World, actor: str) -> None:
    operators = world.people.operators
    await h_voucher(world, actor)
    in_reach = {operators[o].id for o, mark in reach(H_REACH, H_OWNERS, actor).items() if mark == Y}
    rows = await world.db.fetch(
        "SELECT owner_id, secret_hash FROM tokens WHERE kind = 'voucher' AND deleted_at IS NULL"
    )
    assert {r["owner_id"] for r in rows} <= {operators[o].id for o in H_OWNERS}
    wanted = {r["secret_hash"] for r in rows if r["owner_id"] in in_reach}
    assert wanted
    listed = await world.hotspot.ok(operators[actor].api_token, "gettokens")
    assert {secret_hash(code) for code in listed.tokens} == wanted


@pytest.mark.parametrize("actor", H_OWNERS)
async def test_hotspot_createtokens(world: World, actor: str) -> None:
    """New vouchers belong to their creator, and are seen by whoever reaches the creator's."""
    operators = world.people.operators
    codes = await world.hotspot.create(operators[actor].api_token, 2)
    rows = [await world.row_of(code) for code in codes]
    me = operators[actor].id
    assert [(r["owner_id"], r["creator_id"]) if r else None for r in rows] == [(me, me), (me, me)]
    for viewer in H_OWNERS:
        shown = await world.hotspot.ok(operators[viewer].api_token, "gettokens", {"token": codes[0]})
        assert shown.tokens == ([codes[0]] if H_REACH[viewer][H_OWNERS.index(actor)] == Y else []), viewer


@pytest.mark.parametrize(("actor", "owner", "expected"), h_cells())
async def test_hotspot_usetoken(world: World, actor: str, owner: str, expected: str) -> None:
    code, before = await h_voucher(world, owner)
    mac = random_mac()
    reply = await world.hotspot.call(
        world.people.operators[actor].api_token, "usetoken", {"token": code, "mac": mac}
    )
    after = await world.row_of(code)
    assert after is not None
    if expected == ALLOWED:
        assert (reply.item["token"], reply.item["mac"]) == (code, mac)
        assert after["first_used_at"] is not None
        assert str(after["mac"]) == mac
    else:
        assert (reply.status, reply.error_code) == (404, expected)
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), h_cells())
async def test_hotspot_repaytokens(world: World, actor: str, owner: str, expected: str) -> None:
    code, before = await h_voucher(world, owner)
    reply = await world.hotspot.ok(world.people.operators[actor].api_token, "repaytokens", {"tokens": [code]})
    after = await world.row_of(code)
    assert after is not None
    if expected == ALLOWED:
        assert reply.items == [{"token": code, "result": "repaid"}]
        assert after["repaid_at"] is not None
        assert {**after, "repaid_at": None} == before
    else:
        assert reply.items == [{"token": code, "result": expected}]
        assert after == before


@pytest.mark.parametrize(("actor", "owner", "expected"), h_cells())
async def test_hotspot_deletetokens(world: World, actor: str, owner: str, expected: str) -> None:
    code, before = await h_voucher(world, owner)
    reply = await world.hotspot.ok(
        world.people.operators[actor].api_token, "deletetokens", {"tokens": [code]}
    )
    after = await world.row_of(code)
    assert after is not None
    if expected == ALLOWED:
        assert reply.items == [{"token": code, "result": "deleted"}]
        assert after["deleted_at"] is not None
        assert {**after, "deleted_at": None} == before
    else:
        assert reply.items == [{"token": code, "result": expected}]
        assert after == before


# === ChatApp access/refresh pairs =================================================================

INVALID_TOKEN = {"code": "ApiInvalidTokenError", "message": "Invalid Token"}
INVALID_CREDENTIALS = {"code": "ApiInvalidCredentialsError", "message": "Invalid email, password or appId"}
C_USERS = ("alice", "bob")  # each with an app of its own
# tokens.make: rows hold the password, columns are the account (e-mail and app) the request names.
# fmt: off
C_MAKE = {
    # password  accounts: alice bob
    "alice":    "Y-",
    "bob":      "-Y",
}
# fmt: on
C_MARKS: dict[str, Any] = {Y: ALLOWED, NO: INVALID_CREDENTIALS}
# The other methods name no account: the token is the only handle. Each shows the caller only its own
# user and app, and changes nothing but the family the token belongs to.
C_METHODS = ("tokens.check", "forward-auth", "tokens.refresh", "tokens.revoke")


def remaining(headers: dict[str, str]) -> int:
    return int(headers["X-RateLimit-Remaining"])


@pytest.mark.parametrize(("actor", "account", "expected"), cells(C_MAKE, C_USERS, C_MARKS))
async def test_chatapp_tokens_make(world: World, actor: str, account: str, expected: Any) -> None:
    """Only the account's own password makes its pairs, and a refused make spends none of its quota."""
    status, _, headers = await world.chat_make(account)
    assert status == 200
    quota = remaining(headers)
    status, body, headers = await world.chat_make(account, password_of=actor)
    if expected == ALLOWED:
        assert status == 200, body
        assert body["data"]["cabinetUserId"] == world.people.chat[account].id
        assert remaining(headers) == quota - 1
        quota -= 1
    else:
        assert (status, body) == (401, {"success": False, "error": expected})
    _, _, headers = await world.chat_make(account)
    assert remaining(headers) == quota - 1


async def chat_alive(world: World, pair: dict[str, Any], who: str) -> None:
    status, body, _ = await world.chat(
        "GET", "/v1/tokens/check", headers={"Authorization": pair["accessToken"]}
    )
    assert status == 200, body
    assert (body["data"]["cabinetUserId"], body["data"]["appId"]) == (
        world.people.chat[who].id,
        world.people.apps[who],
    )


@pytest.mark.parametrize(
    ("method", "actor"), [pytest.param(m, a, id=f"{m}:{a}") for m in C_METHODS for a in C_USERS]
)
async def test_chatapp_token_methods(world: World, method: str, actor: str) -> None:
    other = next(u for u in C_USERS if u != actor)
    person, app = world.people.chat[actor], world.people.apps[actor]
    mine, my_other, theirs = (
        await world.chat_pair(actor),
        await world.chat_pair(actor),
        await world.chat_pair(other),
    )
    bearer = {"Authorization": mine["accessToken"]}
    if method == "tokens.check":
        status, body, _ = await world.chat("GET", "/v1/tokens/check", headers=bearer)
        assert (status, body) == (
            200,
            {
                "success": True,
                "data": {
                    "cabinetUserId": person.id,
                    "appId": app,
                    "accessTokenEndTime": mine["accessTokenEndTime"],
                },
            },
        )
    elif method == "forward-auth":
        status, body, headers = await world.chat("GET", "/v1/auth", headers=bearer)
        assert status == 204, body
        assert (headers["X-TokenHub-User-Id"], headers["X-TokenHub-App-Id"]) == (str(person.id), app)
    elif method == "tokens.refresh":
        status, body, _ = await world.chat(
            "POST", "/v1/tokens/refresh", headers={"Refresh": mine["refreshToken"]}
        )
        assert status == 200, body
        assert body["data"]["cabinetUserId"] == person.id
        await chat_alive(world, body["data"], actor)
        await chat_alive(world, mine, actor)  # older access tokens live on until their end
    else:
        status, body, _ = await world.chat("DELETE", "/v1/tokens", headers=bearer)
        assert (status, body) == (200, {"success": True, "data": {}})
        status, body, _ = await world.chat("GET", "/v1/tokens/check", headers=bearer)
        assert (status, body) == (401, {"success": False, "error": INVALID_TOKEN})
    # Nobody else's family, and none of the caller's other families, is touched.
    await chat_alive(world, theirs, other)
    await chat_alive(world, my_other, actor)


# === Across dialects ==============================================================================

PROBES = (
    "zabbix auth",
    "wialon sid",
    "wialon token/login",
    "hotspot api_token",
    "chatapp check",
    "chatapp refresh",
)
# One registry, one security model: a secret opens only the door of its own dialect (rows: secrets,
# columns: where they are presented). Each refusal is the dialect's own answer to a secret it does
# not know, and the secret still opens its own door afterwards: presenting it elsewhere changed nothing.
# fmt: off
CROSS = {
    # secret                 presented to: zabbix, wialon sid, token/login, hotspot, check, refresh
    "zabbix session":        "Y-----",
    "zabbix API token":      "Y-----",
    "wialon session":        "-Y----",
    "wialon token":          "--Y---",
    "hotspot API key":       "---Y--",
    "chatapp access token":  "----Y-",
    "chatapp refresh token": "-----Y",
}
# fmt: on
REFUSED_BY: dict[str, Any] = {
    "zabbix auth": TERMINATED.body(),  # none of the others is 64-hex, so each is taken for a session id
    "wialon sid": NO_SESSION,
    "wialon token/login": 4,  # no other secret has a Wialon token's 72 characters
    "hotspot api_token": "unauthorized",
    "chatapp check": INVALID_TOKEN,
    "chatapp refresh": INVALID_TOKEN,
}


async def credential(world: World, kind: str) -> str:
    """A live secret of `kind`, made afresh where using it could end it."""
    if kind == "zabbix session":
        return world.zabbix_auth["admin"]
    if kind == "zabbix API token":
        return world.zabbix_api_token["user"]
    if kind == "wialon session":
        return world.wialon_sid["parent"]
    if kind == "wialon token":
        return await world.wialon_token("parent")
    if kind == "hotspot API key":
        return world.people.operators["op_a"].api_token
    pair = await world.chat_pair("alice")
    key = "accessToken" if kind == "chatapp access token" else "refreshToken"
    secret: str = pair[key]
    return secret


async def present(world: World, probe: str, secret: str) -> Any:
    """ALLOWED if the probe accepts `secret`, else the dialect's error (code or error object)."""
    if probe == "zabbix auth":
        reply = await world.zabbix(secret, "token.get", {"countOutput": True})
        return reply.get("error", ALLOWED)
    if probe in ("wialon sid", "wialon token/login"):
        if probe == "wialon sid":
            body = await world.wialon.call("token/list", {}, secret)
        else:
            body = await world.wialon.call("token/login", {"token": secret})
        code = error_of(body)
        return ALLOWED if code is None else code
    if probe == "hotspot api_token":
        answer = await world.hotspot.call(secret, "gettokens", {"limit": 1})
        return ALLOWED if answer.status == 200 else answer.error_code
    if probe == "chatapp check":
        status, body, _ = await world.chat("GET", "/v1/tokens/check", headers={"Authorization": secret})
    else:
        status, body, _ = await world.chat("POST", "/v1/tokens/refresh", headers={"Refresh": secret})
    return ALLOWED if status == 200 else body["error"]


@pytest.mark.parametrize(("kind", "probe", "expected"), cells(CROSS, PROBES, {Y: ALLOWED, NO: "refused"}))
async def test_a_secret_opens_only_its_own_dialect(
    world: World, kind: str, probe: str, expected: str
) -> None:
    secret = await credential(world, kind)
    if expected == ALLOWED:
        assert await present(world, probe, secret) == ALLOWED
        return
    own = PROBES[CROSS[kind].index(Y)]
    if kind != "chatapp refresh token":  # its own door would use it up
        # Checked by its own dialect first: what the gateway remembers of that check (its
        # verification cache) must not answer for another dialect.
        assert await present(world, own, secret) == ALLOWED
    assert await present(world, probe, secret) == REFUSED_BY[probe]
    assert await present(world, own, secret) == ALLOWED
