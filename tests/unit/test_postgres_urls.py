"""DATABASE_URL with several hosts (libpq's multi-host form), and what a lost primary means to a
caller: the parsing, the settings' check, redaction, and the translation to domain errors."""

from __future__ import annotations

import asyncpg
import pytest

from registry.store import translate
from shared.errors import Unavailable
from shared.postgres import (
    CONNECTION_ERRORS,
    Host,
    Hosts,
    NoHostAnswers,
    NoPrimary,
    check_dsn,
    database_name,
    database_problem,
    hosts_of,
    primary_lost,
    redact,
)
from shared.settings import Settings, SettingsError, env_name, load_settings

MULTI = "postgresql://tokenhub:s3cret@db-a:5432,db-b:5433/tokenhub?target_session_attrs=read-write"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)


@pytest.mark.parametrize(
    ("dsn", "hosts"),
    [
        (MULTI, [Host("db-a", 5432), Host("db-b", 5433)]),
        ("postgresql://db-a,db-b:6543,db-c/x", [Host("db-a", None), Host("db-b", 6543), Host("db-c", None)]),
        ("postgresql://u@[::1]:5432,[fd00::2]/x", [Host("::1", 5432), Host("fd00::2", None)]),
        ("postgresql://u:p@127.0.0.1:5432/tokenhub", [Host("127.0.0.1", 5432)]),
        ("postgresql:///tokenhub?host=/run/postgresql", []),
        ("postgresql://u@/tokenhub", []),
        ("postgresql://%2Frun%2Fpostgresql/tokenhub", [Host("/run/postgresql", None)]),
    ],
)
def test_hosts_are_read_in_order(dsn: str, hosts: list[Host]) -> None:
    assert hosts_of(dsn) == hosts
    check_dsn(dsn)


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        ("postgresql://h1:5432,,h2/x", "empty host"),
        ("postgresql://h1:5432,/x", "empty host"),
        ("postgresql://h1:99999,h2/x", "not a number from 1 to 65535"),
        ("postgresql://h1:db,h2/x", "not a number from 1 to 65535"),
        ("postgresql://[::1]x,h2/x", "IPv6"),
        ("postgresql://h1,h2/x?target_session_attrs=read-only", "use read-write"),
        ("postgresql://h1,h2/x?target_session_attrs=standby", "use read-write"),
        ("postgresql://h1,h2/x?target_session_attrs=prefer-standby", "use read-write"),
        (
            "postgresql://h1,h2/x?target_session_attrs=primary-please",
            "must be one of any, primary, read-write",
        ),
    ],
)
def test_a_url_tokenhub_cannot_write_through_is_refused(dsn: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_dsn(dsn)


def test_settings_take_a_multi_host_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", MULTI)
    assert load_settings().database_url == MULTI


def test_a_bad_host_list_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://tokenhub:s3cret@db-a:5432,,db-b/tokenhub")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: 'db-a:5432,,db-b' has an empty host"), message
    assert "\n" not in message
    assert "s3cret" not in message


def test_redaction_keeps_every_host_and_hides_every_password() -> None:
    assert redact(MULTI) == (
        "postgresql://tokenhub:***@db-a:5432,db-b:5433/tokenhub?target_session_attrs=read-write"
    )
    assert redact("postgresql://h1,h2/x?user=u&password=s3cret&sslmode=require") == (
        "postgresql://h1,h2/x?user=u&password=***&sslmode=require"
    )
    assert database_name(MULTI) == "tokenhub"


def test_several_hosts_ask_for_the_one_that_takes_writes_unless_the_url_says_otherwise() -> None:
    assert Hosts("postgresql://h1,h2/x").attrs == "read-write"
    assert Hosts("postgresql://h1,h2/x?target_session_attrs=primary").attrs == "primary"
    assert Hosts("postgresql://h1/x").attrs is None  # one host: libpq's default, any


def test_the_host_that_last_took_writes_is_tried_first() -> None:
    hosts = Hosts("postgresql://h1,h2,h3/x")
    assert hosts.order() == [Host("h1", None), Host("h2", None), Host("h3", None)]
    hosts.last = Host("h2", None)
    assert hosts.order() == [Host("h2", None), Host("h1", None), Host("h3", None)]


@pytest.mark.parametrize(
    "exc",
    [
        NoPrimary("no host accepts writes (h1: ConnectionRefusedError; h2 is a standby)"),
        NoHostAnswers("no host answers (h1: ConnectionRefusedError; h2: TimeoutError)"),
        asyncpg.TargetServerAttributeNotMatched("None of the hosts match"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to unexpected postmaster exit"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.CannotConnectNowError("the database system is in recovery mode"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_a_lost_primary_is_try_again_and_drops_the_pool(exc: Exception) -> None:
    assert isinstance(translate(exc), Unavailable)
    assert primary_lost(exc)


def test_a_timeout_is_try_again_but_keeps_the_pool() -> None:
    exc = TimeoutError()
    assert isinstance(translate(exc), Unavailable)
    assert isinstance(exc, CONNECTION_ERRORS)
    assert not primary_lost(exc)


def test_the_cli_line_for_no_primary_names_the_setting_and_what_to_do() -> None:
    line = database_problem(NoPrimary("no host accepts writes (db-a:5432: ConnectionRefusedError)"), MULTI)
    assert line is not None
    assert line.startswith(
        "no PostgreSQL primary at DATABASE_URL (postgresql://tokenhub:***@db-a:5432,db-b:5433/"
    )
    assert "promote" in line
    assert "s3cret" not in line
    unreachable = database_problem(NoHostAnswers("no host answers (db-a:5432: TimeoutError)"), MULTI)
    assert unreachable is not None
    assert unreachable.startswith("PostgreSQL does not answer at DATABASE_URL (")
    assert "db-a:5432: TimeoutError" in unreachable
