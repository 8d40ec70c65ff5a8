"""`python -m sweeper` sweeps forever; `--once` runs one pass and exits; `--dry-run` only counts."""

from __future__ import annotations

import argparse
import sys

import orjson
import uvloop

from shared.logging import setup_logging
from shared.postgres import create_pool
from shared.settings import Settings, SettingsError, load_settings
from shared.web import serve
from sweeper.app import connect_redis, create_app
from sweeper.jobs import Sweeper


async def one_pass(settings: Settings, dry_run: bool) -> dict[str, int]:
    pool = await create_pool(settings.database_url, 2, settings.store_timeout)
    redis = connect_redis(settings)
    try:
        return await Sweeper(pool, redis, settings).run_pass(dry_run=dry_run)
    finally:
        await redis.aclose()
        await pool.close()


class Arguments(argparse.Namespace):
    """The parsed command line, typed (a bare Namespace hands out every attribute as Any)."""

    once: bool
    dry_run: bool


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sweeper", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run one full pass and exit")
    parser.add_argument("--dry-run", action="store_true", help="report what a pass would do; change nothing")
    args = parser.parse_args(namespace=Arguments())
    if not (args.once or args.dry_run):
        serve("sweeper", create_app)
        return
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"sweeper: bad settings: {exc}\n")
        raise SystemExit(2) from None
    setup_logging("sweeper", settings.log_level)
    result = uvloop.run(one_pass(settings, args.dry_run))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


main()
