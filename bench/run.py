"""`make bench` (and `make bench-quick`): TokenHub's speed on this machine, in one run.

    .venv/bin/python -m bench.run [--quick] [--concurrency 8] [--duration 10]

Makes its own database (dropped afterwards) with 1,000,000 tokens of mixed kinds (600,000 Zabbix
API tokens and 400,000 hotspot vouchers, all idle for 101 days, plus 10,000 live tokens), starts
the registry, issuer and gateway and a bare aiohttp hello-world on free loopback ports, and
measures with one load generator, wrk on one thread (bench/loadgen.py):

    hello                 the hello-world: the ceiling for this stack on this machine
    hello_hop             a hello-world that answers by one aiohttp client call to the first: the
                          ceiling of any request that crosses one internal hop (as token.get does)
    tokens_check          GET /v1/tokens/check with a valid access token
    zabbix_get_by_id      token.get by tokenids, authenticated with an API token
    zabbix_search_name    token.get with a search on name (limit 100)
    hotspot_gettokens     gettokens with two filters and limit 100
    hotspot_createtokens_10000  createtokens of 10,000 vouchers, one call at a time
    tokens_refresh        tokens.refresh, rotating a pool of refresh tokens
    tokens_check_workers1, zabbix_get_by_id_workers1, tokens_check_workers2,
    zabbix_get_by_id_workers2
                          the two again, back to back: one process per service, then with
                          GATEWAY_WORKERS=2 and REGISTRY_WORKERS=2 (those two restarted; a
                          service's CPU is its supervisor's and its workers' summed)
    tokens_check_cluster, tokens_refresh_cluster
                          the same two with the issuer and the gateway on a private Redis Cluster
                          (six redis-server processes, TOKENHUB_REDIS_CLUSTER=true), same run
    sweeper_delete        `python -m sweeper --once` deleting every idle token (rows/s), while the
                          gateway serves token.get by id (p99 beside the same load without a sweep)
    admin_summary, admin_summary_scoped, admin_tokens_first, admin_tokens_deep, admin_tokens_scoped
                          the admin API (issue 17): the overview's summary as the super admin and as
                          an admin owning 400,000 vouchers, and the token listing's first page, a
                          page half a million rows deep (keyset cursor), and the admin's first page
    console_overview      the console's overview page (/console/) for Admin, a super_admin: counts over
                          every token and the last 24 hours, the chart drawn on the server
    console_tokens        the console's token listing (/console/tokens): the newest 50 of every kind

`--only admin` seeds the same database and runs just the admin and console rows (about two minutes).

CPU per request is counted per process group: each service (with its workers), Postgres (the
server's processes and this run's database's backends), Redis, wrk. Prints a table, the machine's
load average, an ON-PAPER projection of the scaled rows to 8, 32 and 128 cores (arithmetic from
their CPU per request), and writes bench/results.json; `--quick` is the everyday variant (100,000
tokens, short runs, about a minute). Load is loopback only and bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import http.cookiejar
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis

from bench import seed
from bench.loadgen import (
    CLOCK_TICKS,
    WARMUP_SECONDS,
    CpuProbe,
    Result,
    Scenario,
    lua_string,
    measure,
    run_wrk,
    script,
)
from gateway.admin.service import encode_cursor
from shared.secrets import Sealer
from shared.settings import DEV_PEPPER, DEV_SEAL_KEY, Service
from tests.conftest import (
    ADMIN_PASSWORD,
    LOCAL_POSTGRES,
    LOCAL_REDIS,
    FreshDatabases,
    base_environment,
    run_cli,
)
from tests.e2e.harness import Cluster, children, http_status, running_cluster
from tests.ports import free_port
from tests.redis_cluster import missing_binaries, running_redis_cluster

RESULTS = Path(__file__).with_name("results.json")
PASSWORD = secrets.token_urlsafe(12)  # the benchmark user's; the database is dropped afterwards
LIVE = 10_000


@dataclass(frozen=True)
class Size:
    zabbix: int
    vouchers: int
    duration: float
    max_requests: int


# The request bound is a safety valve, far above what this machine serves in the duration (the
# bare hello-world does about 25,000 requests/s here): a bound that binds would cap the ceiling.
FULL = Size(zabbix=600_000, vouchers=400_000, duration=10.0, max_requests=1_000_000)
QUICK = Size(zabbix=60_000, vouchers=40_000, duration=3.0, max_requests=300_000)


@dataclass(frozen=True)
class World:
    """What the scenarios need to know about the seeded database."""

    zabbix_ids: tuple[int, int]
    live_ids: tuple[int, int]
    api_secret: str
    operator_key: str
    email: str
    app_id: str
    deep_cursor: str  # the token listing's cursor half-way down every token


# --- set-up ----------------------------------------------------------------------------------------


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = run_cli(list(args), env, stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def seed_database(dsn: str, env: dict[str, str], size: Size) -> World:
    email = f"bench-{secrets.token_hex(3)}@example.com"
    cli(
        env,
        "users",
        "add",
        "bench-chat",
        "--role",
        "user",
        "--email",
        email,
        "--password-stdin",
        stdin=PASSWORD,
    )
    cli(env, "apps", "add", "bench-app", "--daily-quota", "1000000")
    operator_id = int(
        cli(env, "users", "add", "bench-operator", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    )
    operator_key = cli(env, "users", "api-key", "bench-operator")
    conn = await asyncpg.connect(dsn, command_timeout=1800)
    try:
        started = time.perf_counter()
        zabbix_ids = await seed.zabbix_tokens(conn, size.zabbix, age_days=101, label="idle")
        seed.timed(f"{size.zabbix:,} Zabbix tokens", started)
        started = time.perf_counter()
        await seed.vouchers(
            conn, operator_id, size.vouchers, DEV_PEPPER, Sealer.from_b64(DEV_SEAL_KEY), age_days=101
        )
        seed.timed(f"{size.vouchers:,} vouchers (hashed and sealed)", started)
        live_ids = await seed.zabbix_tokens(conn, LIVE, age_days=0, label="live")
        if not size.zabbix:  # a vouchers-only run still measures token.get, over the live tokens
            zabbix_ids = live_ids
        api_secret = await seed.api_token(conn, DEV_PEPPER)
        half = await conn.fetchrow(
            "SELECT created_at, id FROM tokens ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
            (size.zabbix + size.vouchers + LIVE) // 2,
        )
        assert half is not None
        deep_cursor = encode_cursor(half["created_at"], half["id"])
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE tokens")
        # Flushed now, so the checkpoint's writes do not land inside a measurement.
        await conn.execute("CHECKPOINT")
        seed.timed("VACUUM ANALYZE and CHECKPOINT", started)
    finally:
        await conn.close()
    return World(zabbix_ids, live_ids, api_secret, operator_key, email, "bench-app", deep_cursor)


def start_hello(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.hello", str(port), *extra], stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while http_status(url + "/") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the hello-world server did not start")
        time.sleep(0.1)
    return proc, url


# --- scenarios -------------------------------------------------------------------------------------

HELLO = Scenario("/", expect="Hello")
LISTING = {"used_at": 0, "multiple": 1, "limit": 100}  # gettokens: two filters, a page of 100
BATCH = {"count": 10000, "multiple": 0, "lifetime": 3600}  # createtokens
JSON_RPC = {"Content-Type": "application/json-rpc"}


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (the gateway's own http URL)
        url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 (loopback only)
        reply: dict[str, Any] = orjson.loads(r.read())
        return reply


def make_pair(gateway: str, world: World) -> dict[str, str]:
    reply = post_json(
        gateway + "/v1/tokens", {"email": world.email, "password": PASSWORD, "appId": world.app_id}
    )
    assert reply.get("success"), reply
    data: dict[str, str] = reply["data"]
    return data


def tokens_check(gateway: str, world: World) -> Scenario:
    token = make_pair(gateway, world)["accessToken"]
    return Scenario("/v1/tokens/check", headers={"Authorization": token}, expect='"success":true')


def tokens_refresh(gateway: str, world: World, pairs: int) -> Scenario:
    """Each request takes a refresh token from a pool and puts back the one its answer carries, so
    every token is used once (a second use would revoke its family). With more tokens than
    connections the pool never runs dry."""
    pool = ", ".join(lua_string(make_pair(gateway, world)["refreshToken"]) for _ in range(pairs))
    lua = f"""
wrk.method = "POST"
wrk.path = "/v1/tokens/refresh"
local pool = {{{pool}}}
function request()
  return wrk.format(nil, nil, {{ ["Refresh"] = table.remove(pool) or "none" }}, "")
end
function check(body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if token == nil then return false end
  table.insert(pool, token)
  return true
end
"""
    return Scenario("/v1/tokens/refresh", custom_lua=lua)


def zabbix(secret: str, params: dict[str, Any], draw: tuple[int, int], pad: int, expect: str) -> Scenario:
    """token.get with `params`, where the string "{n}" in them becomes a number drawn per request."""
    body = orjson.dumps(
        {"jsonrpc": "2.0", "method": "token.get", "params": params, "auth": secret, "id": 1}
    ).decode()
    return Scenario("/api_jsonrpc.php", "POST", JSON_RPC, body, draw, pad, expect)


def by_id(secret: str, ids: tuple[int, int]) -> Scenario:
    s = zabbix(secret, {"output": "extend", "tokenids": ["{n}"]}, ids, 0, '"result":[{"tokenid"')
    # The id goes in as a bare number, as zabbix_utils sends it.
    return dataclasses.replace(s, body=s.body.replace('["{n}"]', "[{n}]"))


def search_name(secret: str) -> Scenario:
    params = {"output": ["tokenid", "name"], "search": {"name": "{n}"}, "limit": 100}
    return zabbix(secret, params, (0, 99999), 5, '"result":[')


def hotspot(key: str, method: str, parameters: dict[str, Any], rows: int) -> Scenario:
    """One hotspot call, the same each time, expecting `rows` vouchers (keys "0" to rows - 1)."""
    body = orjson.dumps({"api_token": key, "method": method, "parameters": parameters}).decode()
    headers = {"Content-Type": "application/json"}
    return Scenario("/hotspot/api", "POST", headers, body, expect=f'"{rows - 1}":{{')


def console_session(gateway: str) -> str:
    """Admin's console session, signed in through the sign-in form as a browser does."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(gateway + "/console/signin", timeout=30) as page:
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.read().decode())
    assert found is not None, "the sign-in page has no CSRF token"
    form = urllib.parse.urlencode({"username": "Admin", "password": ADMIN_PASSWORD, "csrf": found[1]})
    with opener.open(gateway + "/console/signin", data=form.encode(), timeout=30) as signed_in:
        assert signed_in.status == 200
    return next(cookie.value for cookie in jar if cookie.name == "th_console" and cookie.value)


def console(run: Callable[..., Result], gateway: str) -> list[Result]:
    cookie = {"Cookie": f"th_console={console_session(gateway)}"}
    return [
        run(
            name="console_overview", scenario=Scenario("/console/", headers=cookie, expect='class="th-chart"')
        ),
        run(
            name="console_tokens",
            scenario=Scenario("/console/tokens", headers=cookie, expect='<table class="tokens">'),
        ),
    ]


def admin_session(gateway: str, username: str, password: str) -> dict[str, str]:
    reply = post_json(gateway + "/admin/v1/sessions", {"username": username, "password": password})
    return {"Authorization": "Bearer " + reply["session"]}


def admin_scenarios(gateway: str, world: World, run: Callable[..., Result]) -> list[Result]:
    """The admin API's overview and token listing (issue 17: < 100 ms p50 at 1,000,000 tokens)."""
    root = admin_session(gateway, "Admin", ADMIN_PASSWORD)
    operator = admin_session(gateway, "bench-operator", PASSWORD)
    page = "/admin/v1/tokens?limit=50"
    listed = '"items":[{'
    return [
        run(name="admin_summary", scenario=Scenario("/admin/v1/summary", headers=root, expect='"tokens":[{')),
        run(
            name="admin_summary_scoped",
            scenario=Scenario("/admin/v1/summary", headers=operator, expect='"tokens":[{'),
        ),
        run(name="admin_tokens_first", scenario=Scenario(page, headers=root, expect=listed)),
        run(
            name="admin_tokens_deep",
            scenario=Scenario(f"{page}&cursor={world.deep_cursor}", headers=root, expect=listed),
        ),
        run(name="admin_tokens_scoped", scenario=Scenario(page, headers=operator, expect=listed)),
    ]


# --- the run ---------------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class Process:
    parent: int
    command: str
    cpu: float  # user + system seconds so far


def processes() -> dict[int, Process]:
    """Every process on the machine, from /proc (those that end meanwhile are left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command may hold spaces and parentheses: the fields after its closing one.
            head, _, tail = stat.rpartition(")")
            fields = tail.split()
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            found[int(entry.name)] = Process(int(fields[1]), head.partition("(")[2], cpu)
    return found


def family(pid: int, table: dict[int, Process]) -> list[int]:
    """`pid` and every process descended from it: a service with workers is a supervisor and its
    children, and its CPU is theirs summed."""
    children: dict[int, list[int]] = {}
    for child, process in table.items():
        children.setdefault(process.parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in table:
            found.append(current)
        todo.extend(children.get(current, []))
    return found


# A Postgres backend's title: "postgres: [cluster: ]user database host(port) state".
_BACKEND = re.compile(r"postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\]) ")


def other_database(pid: int, database: str) -> bool:
    """Whether `pid` is a Postgres backend serving a database other than `database` (another test
    run's, on a shared machine); the server's own processes (checkpointer, WAL writer, ...) are not."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    backend = _BACKEND.match(title)
    return backend is not None and backend.group(1) != database


def cpu_by_group(pids: dict[str, int], database: str) -> dict[str, float]:
    """CPU seconds so far of each named process with its descendants (a service's workers also as
    "<name>.<n>", in pid order), of Postgres (the server's processes and the backends of `database`;
    those of other databases belong to other runs) and of Redis (the machine's one server, shared
    with any other run that uses it)."""
    table = processes()
    used = {}
    for name, pid in pids.items():
        members = family(pid, table)
        used[name] = sum(table[p].cpu for p in members)
        workers = sorted(p for p in members if table[p].parent == pid)
        if len(workers) > 1:
            used |= {
                f"{name}.{n}": sum(table[p].cpu for p in family(w, table)) for n, w in enumerate(workers)
            }
    used["postgres"] = sum(
        p.cpu for pid, p in table.items() if p.command == "postgres" and not other_database(pid, database)
    )
    used["redis"] = sum(p.cpu for p in table.values() if p.command == "redis-server")
    return used


def runner(size: Size, concurrency: int, base_url: str, probe: CpuProbe) -> Callable[..., Result]:
    """`measure` against `base_url` with this run's bounds."""
    return functools.partial(
        measure,
        base_url=base_url,
        connections=concurrency,
        duration=size.duration,
        max_requests=size.max_requests,
        probe=probe,
    )


def scenarios(
    gateway: str, hello_url: str, hop_url: str, world: World, size: Size, concurrency: int, probe: CpuProbe
) -> list[Result]:
    run = runner(size, concurrency, gateway, probe)
    hello = runner(size, concurrency, hello_url, probe)
    results = [
        hello(name="hello", scenario=HELLO),
        runner(size, concurrency, hop_url, probe)(name="hello_hop", scenario=HELLO),
        run(name="tokens_check", scenario=tokens_check(gateway, world)),
        run(name="zabbix_get_by_id", scenario=by_id(world.api_secret, world.zabbix_ids)),
        run(name="zabbix_search_name", scenario=search_name(world.api_secret)),
        run(name="hotspot_gettokens", scenario=hotspot(world.operator_key, "gettokens", LISTING, 100)),
    ]
    # Its own pool for the warm-up: a refresh token rotated there cannot be used again here.
    warm = tokens_refresh(gateway, world, 2 * concurrency)
    run_wrk(gateway, script(warm, size.max_requests), connections=concurrency, seconds=WARMUP_SECONDS)
    refresh = tokens_refresh(gateway, world, 2 * concurrency)
    results.append(run(name="tokens_refresh", scenario=refresh, warmup=False))
    results += admin_scenarios(gateway, world, run)
    results += console(run, gateway)
    # The ceiling once more: the higher of the two hello-world runs is the machine's.
    results.append(hello(name="hello_again", scenario=HELLO))
    # One call at a time, a few times: each makes 10,000 vouchers in one transaction.
    create = hotspot(world.operator_key, "createtokens", BATCH, 10000)
    results.append(
        measure(
            "hotspot_createtokens_10000",
            gateway,
            create,
            connections=1,
            duration=6,
            max_requests=5,
            warmup=False,
            probe=probe,
        )
    )
    return results


# The services the scaled rows run with several workers each, and how many.
SCALED: tuple[Service, ...] = ("registry", "gateway")
WORKERS = 2


def listeners(port: int) -> int:
    """How many sockets listen on `port` on loopback: one per worker once all of them serve."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def restart(cluster: Cluster, workers: int, rss: dict[str, float]) -> None:
    """Restart SCALED with `workers` processes each (the gateway first down, last up, so it never
    calls a registry that is going), keeping the peak RSS of single processes in `rss`. Ready means
    every worker listens: a connection made while only one did would stay with that one."""
    for name in reversed(SCALED):
        service = cluster[name]
        assert service.proc is not None
        if not children(service.proc.pid):
            rss[name] = max(rss.get(name, 0.0), peak_rss_mb(service.proc.pid))
        service.stop()
    for name in SCALED:
        service = cluster[name]
        variable = f"{name.upper()}_WORKERS"
        service.env = {**service.env, variable: str(workers)}
        service.start()
        service.wait_ready()
        deadline = time.monotonic() + 30
        while listeners(service.port) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {workers} workers not listening after 30 s")
            time.sleep(0.1)


def scale_phase(
    cluster: Cluster, world: World, size: Size, concurrency: int, probe: CpuProbe, rss: dict[str, float]
) -> list[Result]:
    """tokens/check and token.get by id with one process per service, then at once with WORKERS
    processes of each SCALED service (the issuer stays one), back to back; then one each again."""
    gateway = cluster.gateway_url
    run = runner(size, concurrency, gateway, probe)
    check = tokens_check(gateway, world)
    lookup = by_id(world.api_secret, world.zabbix_ids)
    results = [
        run(name="tokens_check_workers1", scenario=check),
        run(name="zabbix_get_by_id_workers1", scenario=lookup),
    ]
    restart(cluster, WORKERS, rss)
    try:
        results += [
            run(name=f"tokens_check_workers{WORKERS}", scenario=check),
            run(name=f"zabbix_get_by_id_workers{WORKERS}", scenario=lookup),
        ]
    finally:
        restart(cluster, 1, rss)
    return results


def redis_cluster_phase(
    env: dict[str, str], world: World, size: Size, concurrency: int, database: str
) -> list[Result]:
    """tokens/check and tokens.refresh again, with the issuer and the gateway on a private Redis
    Cluster (three masters, one replica each; every refresh waits for a replica: shared/redis.py)."""
    missing = missing_binaries()
    if missing is not None:
        print(f"note: no Redis Cluster scenarios: {missing}", file=sys.stderr)
        return []
    with (
        tempfile.TemporaryDirectory() as directory,
        running_redis_cluster(Path(directory)) as redis_cluster,
        running_cluster(
            dict(env, REDIS_URL=redis_cluster.url, TOKENHUB_REDIS_CLUSTER="true"),
            Path(directory),
            ("registry", "issuer", "gateway"),
        ) as cluster,
    ):
        gateway = cluster.gateway_url
        pids = {str(name): s.proc.pid for name, s in cluster.services.items() if s.proc}
        run = runner(size, concurrency, gateway, functools.partial(cpu_by_group, pids, database))
        results = [run(name="tokens_check_cluster", scenario=tokens_check(gateway, world))]
        warm = tokens_refresh(gateway, world, 2 * concurrency)
        run_wrk(gateway, script(warm, size.max_requests), connections=concurrency, seconds=WARMUP_SECONDS)
        refresh = tokens_refresh(gateway, world, 2 * concurrency)
        results.append(run(name="tokens_refresh_cluster", scenario=refresh, warmup=False))
    return results


def sweep_phase(
    gateway: str, env: dict[str, str], world: World, size: Size, concurrency: int, probe: CpuProbe
) -> dict[str, Any]:
    """token.get on live tokens without, then with, the sweeper deleting every idle token."""
    lookup = by_id(world.api_secret, world.live_ids)
    run = runner(size, concurrency, gateway, probe)
    quiet = run(name="zabbix_get_by_id_no_sweep", scenario=lookup)
    started = time.perf_counter()
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "sweeper", "--once"], env=env, stdout=subprocess.PIPE, text=True
    )
    peak = 0.0

    def watch_rss() -> None:
        nonlocal peak
        while sweeper.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(sweeper.pid))
            except OSError:
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_rss)
    watcher.start()
    during = run(name="zabbix_get_by_id_during_sweep", scenario=lookup, warmup=False)
    out, _ = sweeper.communicate()
    elapsed = time.perf_counter() - started
    watcher.join()
    deleted = orjson.loads(out.strip().splitlines()[-1])["delete_idle"]
    return {"quiet": quiet, "during": during, "deleted": deleted, "seconds": elapsed, "rss": peak}


def report(
    results: list[Result],
    sweep: dict[str, Any],
    rss: dict[str, float],
    load: list[tuple[float, float, float]],
) -> dict[str, Any]:
    ceiling = max(r.rps for r in results if r.name.startswith("hello"))
    out: dict[str, Any] = {
        r.name: {
            "rps": round(r.rps, 1),
            "p50_ms": round(r.p50_ms, 2),
            "p99_ms": round(r.p99_ms, 2),
            "ratio": round(r.rps / ceiling, 3),
            "errors": r.errors,
            "cpu_us_per_request": r.cpu_us,
        }
        for r in [*results, sweep["quiet"], sweep["during"]]
    }
    out["sweeper_delete"] = {
        "rows_per_s": round(sweep["deleted"] / sweep["seconds"]),
        "rows": sweep["deleted"],
        "seconds": round(sweep["seconds"], 1),
    }
    out["peak_rss_mb"] = {name: round(mb, 1) for name, mb in {**rss, "sweeper": sweep["rss"]}.items()}
    out["machine"] = {
        "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load[0]],
        "load_average_end": [round(x, 2) for x in load[-1]],
    }
    return out


ADMIN_ROWS = (
    "admin_summary",
    "admin_summary_scoped",
    "admin_tokens_first",
    "admin_tokens_deep",
    "admin_tokens_scoped",
    "console_overview",
    "console_tokens",
)

# Issue 8's goals on a 2-core machine: (figure, test, the goal as written).
GOALS: list[tuple[str, Callable[[dict[str, Any]], bool], str]] = [
    ("tokens_check", lambda o: o["tokens_check"]["ratio"] >= 0.7, "ratio to hello >= 0.7"),
    ("zabbix_get_by_id", lambda o: o["zabbix_get_by_id"]["ratio"] >= 0.25, "ratio to hello >= 0.25"),
    ("zabbix_search_name", lambda o: o["zabbix_search_name"]["p50_ms"] <= 25, "p50 <= 25 ms"),
    ("hotspot_gettokens", lambda o: o["hotspot_gettokens"]["p50_ms"] <= 20, "p50 <= 20 ms"),
    ("sweeper_delete", lambda o: o["sweeper_delete"]["rows_per_s"] >= 10_000, ">= 10,000 rows/s"),
    # Issue 17's goal: the overview and the token listing at 1,000,000 tokens.
    *((name, lambda o, name=name: o[name]["p50_ms"] < 100, "p50 < 100 ms") for name in ADMIN_ROWS),
    ("peak_rss_mb", lambda o: max(o["peak_rss_mb"].values()) <= 150, "every service <= 150 MB"),
]


def goals(out: dict[str, Any]) -> str:
    return "\n".join(f"{'met' if test(out) else 'NOT met'}: {name} {goal}" for name, test, goal in GOALS)


def table(out: dict[str, Any]) -> str:
    lines = [
        "| scenario | requests/s | p50 ms | p99 ms | ratio to hello | errors | CPU µs per request |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in out.items():
        if "rps" in r:
            cells = [
                f"{r['rps']:,.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['ratio']:.2f}",
                str(r["errors"]),
                # A service's total; its workers' shares ("gateway.0", ...) are in the JSON.
                ", ".join(
                    f"{k} {v:,.0f}" for k, v in r["cpu_us_per_request"].items() if v >= 1 and "." not in k
                ),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sweep = out["sweeper_delete"]
    lines.append(f"\nsweeper_delete: {sweep['rows']:,} idle tokens in {sweep['seconds']} s")
    lines.append(f"  = {sweep['rows_per_s']:,} rows/s")
    lines.append("peak RSS (MB): " + ", ".join(f"{k} {v}" for k, v in out["peak_rss_mb"].items()))
    machine = out["machine"]
    lines.append(
        f"load average (1, 5, 15 min) on {machine['cores']} cores: {machine['load_average_start']} at "
        f"the start, {machine['load_average_end']} at the end of the measurements"
    )
    return "\n".join(lines)


# ON PAPER: the scaled rows' CPU per request, turned into what a deployment of so many cores would
# serve. Arithmetic, not a measurement; BENCHMARKS.md states its assumptions and where it breaks.
PROJECTED = (f"tokens_check_workers{WORKERS}", f"zabbix_get_by_id_workers{WORKERS}")
SERVERS = ("gateway", "issuer", "registry", "postgres", "redis")
DEPLOYMENTS = (8, 32, 128)


def projection(out: dict[str, Any]) -> dict[str, Any]:
    """Per scenario: CPU µs per request of each server process group, the cores each needs per
    1,000 requests/s, the requests/s N cores serve when split among them in proportion, and apart
    the most Redis's one thread could serve at its CPU per request (it cannot use a second core);
    plus how close this run came to the same arithmetic for its own cores (wrk's CPU counted, as it
    shares them here): well below 1, other work had part of the cores."""
    cores = out["machine"]["cores"]
    projected: dict[str, Any] = {}
    for row in PROJECTED:
        cpu = {g: out[row]["cpu_us_per_request"].get(g, 0.0) for g in SERVERS}
        total = sum(cpu.values())
        here = cores * 1e6 / (total + out[row]["cpu_us_per_request"].get("wrk", 0.0))
        projected[row] = {
            "cpu_us_per_request": cpu,
            "cores_per_1000_rps": {g: round(us / 1000, 3) for g, us in cpu.items()},
            "rps_ceiling_by_cores": {str(n): round(n * 1e6 / total) for n in DEPLOYMENTS},
            "redis_one_thread_rps": round(1e6 / cpu["redis"]) if cpu["redis"] else None,
            "measured_share_of_own_ceiling": round(out[row]["rps"] / here, 2),
        }
    return projected


def projection_table(projected: dict[str, Any]) -> str:
    lines = [
        "\nON PAPER (arithmetic from the CPU per request above, not a measurement):",
        "| scenario | cores per 1,000 req/s | "
        + " | ".join(f"{n} cores: req/s" for n in DEPLOYMENTS)
        + " | Redis's one thread: req/s | this run / its own ceiling |",
        "|---|---|" + "---:|" * len(DEPLOYMENTS) + "---:|---:|",
    ]
    for row, p in projected.items():
        need = ", ".join(f"{g} {c:.3f}" for g, c in p["cores_per_1000_rps"].items() if c >= 0.0005)
        rates = " | ".join(f"{r:,}" for r in p["rps_ceiling_by_cores"].values())
        redis_cap = f"{p['redis_one_thread_rps']:,}" if p["redis_one_thread_rps"] else "—"
        lines.append(f"| {row} | {need} | {rates} | {redis_cap} | {p['measured_share_of_own_ceiling']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100,000 tokens and short runs")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--duration", type=float, help="seconds per scenario")
    parser.add_argument("--zabbix", type=int, help="Zabbix tokens to seed (default 600,000)")
    parser.add_argument("--vouchers", type=int, help="vouchers to seed (default 400,000)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})"
    )
    parser.add_argument(
        "--only", choices=["admin"], help="run only these rows (printed, not written to the JSON)"
    )
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    size = Size(
        args.zabbix if args.zabbix is not None else size.zabbix,
        args.vouchers if args.vouchers is not None else size.vouchers,
        args.duration or size.duration,
        size.max_requests,
    )
    databases = FreshDatabases(os.environ.get("TEST_DATABASE_URL", LOCAL_POSTGRES))
    database = databases.name()
    dsn = databases.dsn(database)
    # The machine's load when the run starts and when its measurements end: other work on the
    # cores shows in every figure.
    load = [os.getloadavg()]
    env = base_environment(
        dsn, os.environ.get("TEST_REDIS_URL", LOCAL_REDIS), f"bench-{secrets.token_hex(3)}:"
    )
    env["TOKENHUB_BACKEND_TIMEOUT"] = "30"
    env["TOKENHUB_LOG_LEVEL"] = "INFO"  # as deployed: failures logged, successes counted
    try:
        cli(env, "migrate")
        print(f"seeding {size.zabbix + size.vouchers + LIVE:,} tokens", flush=True)
        world = asyncio.run(seed_database(dsn, env, size))
        hello_proc, hello_url = start_hello()
        hop_proc, hop_url = start_hello("--hop", hello_url + "/")
        try:
            with (
                tempfile.TemporaryDirectory() as logs,
                running_cluster(env, Path(logs), ("registry", "issuer", "gateway")) as cluster,
            ):
                gateway = cluster.gateway_url

                def probe() -> dict[str, float]:
                    pids = {"hello": hello_proc.pid, "hello_hop": hop_proc.pid}
                    pids |= {str(name): s.proc.pid for name, s in cluster.services.items() if s.proc}
                    return cpu_by_group(pids, database)

                if args.only == "admin":
                    run = runner(size, args.concurrency, gateway, probe)
                    only = admin_scenarios(gateway, world, run) + console(run, gateway)
                    for r in only:
                        figures = f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, {r.rps:,.0f}/s"
                        print(f"{r.name}: {figures}, errors {r.errors}")
                    return
                results = scenarios(gateway, hello_url, hop_url, world, size, args.concurrency, probe)
                rss: dict[str, float] = {}
                results += scale_phase(cluster, world, size, args.concurrency, probe, rss)
                sweep = sweep_phase(gateway, env, world, size, args.concurrency, probe)
                for name, s in cluster.services.items():
                    if s.proc:
                        rss[name] = max(rss.get(name, 0.0), peak_rss_mb(s.proc.pid))
                load.append(os.getloadavg())
            results += redis_cluster_phase(env, world, size, args.concurrency, database)
        finally:
            for proc in (hop_proc, hello_proc):
                proc.terminate()
                proc.wait()
        out = report(results, sweep, rss, load)
        out["projection_on_paper"] = projection(out)
        args.output.write_text(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        print(table(out))
        print(projection_table(out["projection_on_paper"]))
        print("\n" + goals(out))
        print(f"\nwritten to {args.output}")
    finally:
        databases.drop_all()
        forget_redis_keys(env["REDIS_URL"], env["TOKENHUB_REDIS_PREFIX"])


def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete what this run left in Redis (pairs, sessions, revocations) under its own prefix."""
    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


if __name__ == "__main__":
    main()
