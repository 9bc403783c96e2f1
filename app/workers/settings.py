"""arq worker settings and the shared clients it opens at start and closes at shutdown."""

import asyncio
import logging
from typing import Any

import httpx
from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.config import Settings, get_settings
from app.metrics import instrument_job, running_jobs
from app.storage import Storage
from app.workers.download import download_image
from app.workers.heartbeat import WorkerHeartbeat
from app.workers.periodic import run_minute_tasks
from app.workers.schedules import dispatch_schedules

logger = logging.getLogger(__name__)

# The job runs its own attempt count (DownloadJob.max_attempts); arq's limit only has to stay out
# of the way, including the extra tries arq makes when a worker dies in the middle of a job.
ARQ_MAX_TRIES = 1000
# No limit on the whole transfer: an 8 GB image over a slow link takes hours. Stalls are caught by
# the per-read timeout instead. arq needs a number, so this is a week.
JOB_TIMEOUT_S = 7 * 24 * 3600
# One dispatch queues a few downloads per due schedule, so a run that takes longer than this is
# stuck. The next minute's dispatch picks up whatever it left due.
DISPATCH_TIMEOUT_S = 300


# httpcore reads 64 KiB per socket read (AsyncHTTP11Connection.READ_NUM_BYTES in httpcore 1.0),
# so a GiB costs 16,384 trips through httpx, httpcore and anyio on the event loop. 256 KiB per
# read made the download benchmark's job 25 % faster (bench/RESULTS.md).
# NOTE: READ_NUM_BYTES is not public API; when a release drops it, this does nothing.
HTTPCORE_READ_BYTES = 256 * 1024


def _raise_httpcore_read_size() -> None:
    from httpcore._async.http11 import AsyncHTTP11Connection

    if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", HTTPCORE_READ_BYTES) < HTTPCORE_READ_BYTES:
        AsyncHTTP11Connection.READ_NUM_BYTES = HTTPCORE_READ_BYTES


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    _raise_httpcore_read_size()
    timeout = httpx.Timeout(
        connect=settings.download_connect_timeout_s,
        read=settings.download_read_timeout_s,
        write=settings.download_read_timeout_s,
        pool=settings.download_connect_timeout_s,
    )
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=settings.download_max_redirects,
        headers={"User-Agent": "os-image-service"},
    )


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.setdefault("settings", get_settings())
    storage = Storage(settings.storage_dir)
    storage.ensure_directories()
    ctx["storage"] = storage
    ctx["http_client"] = create_http_client(settings)
    if not ctx.get("database_ready"):
        from app.database import connect_database

        await connect_database(settings)
    heartbeat = WorkerHeartbeat(
        ctx["redis"], settings.queue_name, settings.worker_heartbeat_interval_s, running_jobs
    )
    await heartbeat.start()
    ctx["heartbeat"] = heartbeat
    ctx["minute_tasks"] = asyncio.create_task(run_minute_tasks(ctx), name="minute-tasks")
    logger.info(
        "worker started: queue=%s storage=%s id=%s", settings.queue_name, storage.root,
        heartbeat.worker_id, extra={"worker_id": heartbeat.worker_id},
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    minute_tasks = ctx.get("minute_tasks")
    if minute_tasks is not None:
        minute_tasks.cancel()
    heartbeat = ctx.get("heartbeat")
    if heartbeat is not None:
        await heartbeat.stop()
    client = ctx.get("http_client")
    if client is not None:
        await client.aclose()
    logger.info("worker stopped")


def create_worker(settings: Settings, *, redis_pool: Any = None, ctx: dict[str, Any] | None = None, **overrides: Any) -> Worker:
    """Build a worker for `settings`; the local run and the tests hand in their own pool and ctx."""
    redis_settings = None if redis_pool is not None else RedisSettings.from_dsn(settings.redis_url or "")
    return Worker(
        functions=[
            func(instrument_job(download_image), name="download_image", max_tries=ARQ_MAX_TRIES, timeout=JOB_TIMEOUT_S),
            # Normally run by the minute task; enqueue it by name for an extra dispatch pass.
            func(dispatch_schedules, name="dispatch_schedules", max_tries=1, timeout=DISPATCH_TIMEOUT_S),
        ],
        queue_name=settings.queue_name,
        redis_settings=redis_settings,
        redis_pool=redis_pool,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, **(ctx or {})},
        max_jobs=settings.worker_max_jobs,
        allow_abort_jobs=True,
        keep_result=3600,
        handle_signals=redis_pool is None,
        **overrides,
    )
