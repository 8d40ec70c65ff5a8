"""The `tokenhub` console script, run as a real process against this run's database."""

from __future__ import annotations

import json
import secrets

import asyncpg
import pytest

from shared import revocations
from shared.redis import Subscriber
from shared.secrets import lookup_hash, verify_password
from shared.settings import DEV_PEPPER
from tests.conftest import RedisTarget, next_message, redis_for, run_cli, subscribe


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def table_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
            for table in ("users", "api_keys", "apps", "audit_log")
        }
    finally:
        await conn.close()


async def one(dsn: str, query: str, *args: object) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(query, *args)
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_users_add_prints_the_new_id_and_stores_a_hash(
    database_url: str, environment: dict[str, str]
) -> None:
    name = unique("alice")
    result = run_cli(
        ["users", "add", name, "--role", "admin", "--password-stdin", "--email", f"{name}@example.com"],
        environment,
        stdin="correct horse\n",
    )
    assert result.returncode == 0, result.stderr
    user_id = int(result.stdout.strip())
    row = await one(database_url, "SELECT * FROM users WHERE id = $1", user_id)
    assert (row["username"], row["role"], row["email"]) == (name, "admin", f"{name}@example.com")
    assert verify_password("correct horse", row["password_hash"])
    assert "correct horse" not in row["password_hash"]

    child = run_cli(["users", "add", unique("bob"), "--role", "user", "--parent", name], environment)
    assert child.returncode == 0, child.stderr
    child_row = await one(
        database_url, "SELECT parent_id, password_hash FROM users WHERE id = $1", int(child.stdout)
    )
    assert child_row["parent_id"] == user_id
    assert child_row["password_hash"] is None  # no --password-stdin: no password login


async def test_ids_follow_creation_order(environment: dict[str, str]) -> None:
    ids = [
        int(run_cli(["users", "add", unique("seq"), "--role", "guest"], environment).stdout) for _ in range(3)
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "x", "--role", "emperor"], "invalid choice: 'emperor'"),
        (["users", "add", "x"], "the following arguments are required: --role"),
        (
            ["users", "add", "x", "--role", "user", "--parent", "nobody-at-all"],
            "no user named 'nobody-at-all'",
        ),
        (["users", "add", "Admin", "--role", "user"], "a user with this name already exists"),
        (["users", "add", "x", "--role", "user", "--email", "not-an-address"], "is not an e-mail address"),
        (["users", "add", "", "--role", "user"], "out of range"),
        (["users", "api-key", "nobody-at-all"], "no such user"),
        (["users", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["apps", "add", "app-x", "--daily-quota", "-1"], "must be between 0 and"),
        (["apps", "add", "app-x", "--access-ttl", "0"], "must be between 1 and"),
        (["apps", "add", "app-x", "--refresh-ttl", "soon"], "is not a whole number"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        ([], "the following arguments are required: command"),
    ],
)
async def test_bad_arguments_give_one_line_exit_2_and_write_nothing(
    database_url: str, environment: dict[str, str], args: list[str], message: str
) -> None:
    before = await table_counts(database_url)
    result = run_cli(args, environment)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert await table_counts(database_url) == before


async def test_duplicate_email_is_refused_case_insensitively(
    database_url: str, environment: dict[str, str]
) -> None:
    email = f"{unique('carol')}@example.com"
    assert (
        run_cli(["users", "add", unique("carol"), "--role", "user", "--email", email], environment).returncode
        == 0
    )
    before = await table_counts(database_url)
    again = run_cli(
        ["users", "add", unique("carol"), "--role", "user", "--email", email.upper()], environment
    )
    assert again.returncode == 2
    assert "e-mail already exists" in again.stderr
    assert await table_counts(database_url) == before


async def test_api_key_is_printed_once_and_stored_only_as_a_hash(
    database_url: str, environment: dict[str, str]
) -> None:
    name = unique("operator")
    assert run_cli(["users", "add", name, "--role", "admin"], environment).returncode == 0
    result = run_cli(["users", "api-key", name], environment)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("thk_")
    assert len(key) >= 4 + 64
    row = await one(
        database_url,
        "SELECT k.key_hash FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.username = $1",
        name,
    )
    assert row["key_hash"] == lookup_hash(key, DEV_PEPPER)
    second = run_cli(["users", "api-key", name], environment).stdout.strip()
    assert second != key


async def test_apps_add_with_defaults_and_options(database_url: str, environment: dict[str, str]) -> None:
    plain, tuned = unique("app"), unique("app")
    assert run_cli(["apps", "add", plain], environment).returncode == 0
    result = run_cli(
        [
            "apps",
            "add",
            tuned,
            "--name",
            "Tuned",
            "--daily-quota",
            "5",
            "--access-ttl",
            "60",
            "--refresh-ttl",
            "600",
        ],
        environment,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        r["app_id"]: r
        for r in [
            await one(database_url, "SELECT * FROM apps WHERE app_id = $1", plain),
            await one(database_url, "SELECT * FROM apps WHERE app_id = $1", tuned),
        ]
    }
    assert (
        rows[plain]["name"],
        rows[plain]["daily_quota"],
        rows[plain]["access_ttl"],
        rows[plain]["refresh_ttl"],
    ) == (
        plain,
        100,
        86400,
        1209600,
    )
    assert (
        rows[tuned]["name"],
        rows[tuned]["daily_quota"],
        rows[tuned]["access_ttl"],
        rows[tuned]["refresh_ttl"],
    ) == (
        "Tuned",
        5,
        60,
        600,
    )
    duplicate = run_cli(["apps", "add", plain], environment)
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr


def test_unreachable_database_is_said_plainly(environment: dict[str, str]) -> None:
    env = dict(
        environment, DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere", TOKENHUB_STORE_TIMEOUT="1"
    )
    result = run_cli(["users", "add", "x", "--role", "user"], env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "PostgreSQL does not answer at DATABASE_URL" in result.stderr


def test_audit_shows_who_did_what(environment: dict[str, str]) -> None:
    name = unique("audited")
    user_id = int(run_cli(["users", "add", name, "--role", "user"], environment).stdout)
    assert run_cli(["users", "api-key", name], environment).returncode == 0

    result = run_cli(["audit", "--user", name, "--since", "10m"], environment)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["user_created", "api_key_created"]
    assert all(e["subject_id"] == user_id for e in events)
    assert "thk_" not in result.stdout  # the key itself is never in the log

    by_id = run_cli(["audit", "--user", str(user_id)], environment)
    assert [json.loads(line)["event"] for line in by_id.stdout.splitlines()] == [
        "user_created",
        "api_key_created",
    ]
    future = run_cli(["audit", "--user", name, "--since", "2999-01-01"], environment)
    assert future.returncode == 0
    assert future.stdout == ""
    bad = run_cli(["audit", "--since", "yesterday-ish"], environment)
    assert bad.returncode == 2
    assert "neither an ISO date/time nor an age" in bad.stderr


async def test_revoking_and_disabling_reach_redis_one_or_a_cluster(
    environment: dict[str, str], redis_target: RedisTarget
) -> None:
    """`users revoke` and `disable` end an account's credentials in Redis (its epoch moves on, the
    flag is set, every gateway is told): against one Redis and against a Redis Cluster."""
    env = dict(environment, **redis_target.env)
    name = unique("leaver")
    added = run_cli(["users", "add", name, "--role", "user", "--password-stdin"], env, "Leaver-pass-1")
    assert added.returncode == 0, added.stderr
    user_id = int(added.stdout)
    client = redis_for(env)
    try:
        async with Subscriber(client, env["REDIS_URL"], 3.0).pubsub() as pubsub:
            await subscribe(pubsub, revocations.channel(env["TOKENHUB_REDIS_PREFIX"]))
            for command in ("revoke", "disable"):
                result = run_cli(["users", command, name], env)
                assert result.returncode == 0, result.stderr
                message = await next_message(pubsub, 5)
                assert message is not None
                assert json.loads(message["data"]) == {"users": [user_id]}
        state = await revocations.account_state(client, env["TOKENHUB_REDIS_PREFIX"], user_id)
    finally:
        await client.aclose()
    assert (state.epoch, state.disabled) == (2, True)
