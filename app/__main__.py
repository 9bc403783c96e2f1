"""Command line: `python -m app run|api|worker|apikey|settings|healthcheck ...`.

`--help` on each command lists its options.
"""

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from app.config import Settings, get_settings
from app.logging_setup import configure_logging

logger = logging.getLogger("app")


def _require_services(settings: Settings, role: str) -> None:
    if settings.mongodb_url is None or settings.redis_url is None:
        missing = [name for name, value in (("MONGODB_URL", settings.mongodb_url), ("REDIS_URL", settings.redis_url)) if value is None]
        sys.exit(
            f"error: '{role}' runs against MongoDB and Redis, but {' and '.join(missing)} "
            "is not set. Set both, or use 'python -m app run' for the in-memory local run."
        )


def _check_services(settings: Settings) -> None:
    """Exit with a clear message when MONGODB_URL or REDIS_URL is set but does not respond."""
    from app.database import DatabaseUnreachable, check_database
    from app.queue import QueueUnreachable, create_queue_pool

    async def check() -> None:
        if settings.mongodb_url is not None:
            await check_database(settings.mongodb_url)
        if settings.redis_url is not None:
            pool = await create_queue_pool(settings)
            await pool.aclose()

    try:
        asyncio.run(check())
    except (DatabaseUnreachable, QueueUnreachable) as exc:
        sys.exit(f"error: {exc}")


def _serve(settings: Settings, embedded_worker: bool) -> None:
    import uvicorn

    from app.main import create_app

    app = create_app(settings, embedded_worker=embedded_worker)
    # log_config=None keeps the logging that configure_logging set up. The access log comes from
    # AccessLogMiddleware, which adds route, size, duration and request id.
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
        log_config=None, access_log=False,
    )


def command_run(settings: Settings) -> None:
    """API and worker in one process; in memory unless MONGODB_URL and REDIS_URL are set."""
    if (settings.mongodb_url is None) != (settings.redis_url is None):
        sys.exit(
            "error: set both MONGODB_URL and REDIS_URL (production) or neither (in-memory run)"
        )
    _check_services(settings)
    _serve(settings, embedded_worker=True)


def command_api(settings: Settings) -> None:
    _require_services(settings, "api")
    _check_services(settings)
    _serve(settings, embedded_worker=False)


def command_worker(settings: Settings) -> None:
    _require_services(settings, "worker")
    from redis.exceptions import RedisError

    from app.metrics import start_worker_metrics_server
    from app.workers.settings import create_worker

    _check_services(settings)
    try:
        metrics_server = start_worker_metrics_server(settings)
    except OSError as exc:
        sys.exit(
            f"error: cannot serve worker metrics on {settings.host}:{settings.worker_metrics_port}: "
            f"{exc}. Give each worker on a host its own WORKER_METRICS_PORT, or 0 to turn it off."
        )
    try:
        create_worker(settings).run()
    except RedisError as exc:
        sys.exit(f"error: Redis failed: {exc}")
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()


async def _with_database(settings: Settings, action):  # type: ignore[no-untyped-def]
    from app.database import DatabaseUnreachable, connect_database

    if settings.mongodb_url is None:
        sys.exit(
            "error: API keys are stored in MongoDB, but MONGODB_URL is not set. For the in-memory "
            "local run, 'python -m app run' prints a key at start (or set API_KEY)."
        )
    try:
        await connect_database(settings)
    except DatabaseUnreachable as exc:
        sys.exit(f"error: {exc}")
    return await action()


async def apikey_create(args: argparse.Namespace) -> None:
    from app.auth import create_api_key

    record, key = await create_api_key(args.organization, args.name)
    print(f"API key for organization {record.organization!r} (id {record.id}, name {record.name!r}):")
    print(key)
    print("It is shown only this once; the service keeps only its SHA-256 digest.")


async def apikey_list(args: argparse.Namespace) -> None:
    from app.models.documents import ApiKey

    for record in await ApiKey.find_all().sort("organization", "created_time").to_list():
        revoked = f"revoked {record.revoked_time:%Y-%m-%d}" if record.revoked_time else "active"
        print(f"{record.id}  {record.organization:<25}  {record.name:<20}  {record.key_prefix}…  {revoked}")


async def apikey_revoke(args: argparse.Namespace) -> None:
    from app.auth import revoke_api_key

    record = await revoke_api_key(args.key_id)
    if record is None:
        sys.exit(f"error: no API key with id {args.key_id!r}; 'apikey list' shows the ids")
    print(f"revoked API key {record.id} ({record.organization}/{record.name})")


# The `apikey` subcommands, each run on a database that Beanie was initialised on.
APIKEY_ACTIONS = {"create": apikey_create, "list": apikey_list, "revoke": apikey_revoke}


def command_apikey(settings: Settings, args: argparse.Namespace) -> None:
    action = APIKEY_ACTIONS[args.apikey_command]
    asyncio.run(_with_database(settings, lambda: action(args)))


def _format_setting(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def command_settings(settings: Settings, args: argparse.Namespace) -> None:
    from app.redaction import masked_settings

    rows = masked_settings(settings)
    if args.json:
        print(json.dumps({name: value for name, value, _ in rows}, indent=2))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, is_set in rows:
        source = "" if is_set else "  (default)"
        print(f"{name:<{width}}  {_format_setting(value)}{source}")


def command_healthcheck(settings: Settings, args: argparse.Namespace) -> None:
    from app.probes import probe_api, probe_worker

    if args.role == "api":
        problem = probe_api(settings)
    else:
        problem = asyncio.run(probe_worker(settings))
    if problem is not None:
        sys.exit(f"unhealthy: {problem}")
    print(f"healthy: {args.role}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="OS image service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="API and worker in one process (in memory without MONGODB_URL/REDIS_URL)")
    commands.add_parser("api", help="the API alone, against MONGODB_URL and REDIS_URL")
    commands.add_parser("worker", help="the download worker alone, against MONGODB_URL and REDIS_URL")
    apikey = commands.add_parser("apikey", help="create, list or revoke API keys (needs MONGODB_URL)")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--organization", required=True, help="organization the key acts for (at most 25 characters)")
    create.add_argument("--name", required=True, help="a label for the key, e.g. the client using it")
    apikey_commands.add_parser("list", help="list keys (ids, organizations, names, prefixes)")
    revoke = apikey_commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the key's id, as 'apikey list' prints it")
    settings = commands.add_parser(
        "settings", help="print the effective settings, with API keys and passwords masked"
    )
    settings.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    healthcheck = commands.add_parser(
        "healthcheck",
        help="exit 0 when the api or worker role on this host is healthy (for container health checks)",
    )
    healthcheck.add_argument(
        "role", choices=["api", "worker"],
        help="api: GET /healthz on HOST:PORT; worker: a live heartbeat in REDIS_URL from a worker on this host",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as exc:
        sys.exit(f"error: invalid setting: {exc}")
    configure_logging(settings)
    if args.command == "apikey" and len(args.organization if args.apikey_command == "create" else "") > 25:
        sys.exit("error: --organization is longer than 25 characters")
    with_arguments = {
        "apikey": command_apikey, "settings": command_settings, "healthcheck": command_healthcheck,
    }
    if args.command in with_arguments:
        with_arguments[args.command](settings, args)
        return
    {"run": command_run, "api": command_api, "worker": command_worker}[args.command](settings)


if __name__ == "__main__":
    main()
