"""Runs the arq worker inside the API process, for the local run."""

import asyncio
import logging
from typing import Any

from app.config import Settings
from app.workers.settings import create_worker

logger = logging.getLogger(__name__)


class EmbeddedWorker:
    """The production arq worker, on the API's queue pool, as a task of the API's event loop."""

    def __init__(self, settings: Settings, pool: Any) -> None:
        self._worker = create_worker(settings, redis_pool=pool, ctx={"database_ready": True})
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._worker.async_run(), name="embedded-arq-worker")
        logger.info("embedded worker started in this process")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._worker.close()
        logger.info("embedded worker stopped")


async def announce_memory_run(settings: Settings) -> str:
    """Register the local run's API key (API_KEY, or a new one) and print it with a warning."""
    from app.auth import create_api_key

    _, key = await create_api_key(settings.default_organization, "local-run", settings.api_key)
    banner = "=" * 72
    print(
        f"{banner}\n"
        "IN-MEMORY RUN: MONGODB_URL and REDIS_URL are not set, so the catalog, the audit trail\n"
        "and the job queue live in this process and are LOST when it stops. Downloaded files\n"
        f"are written to {settings.storage_dir.resolve()}.\n"
        f"API key for organization {settings.default_organization!r}:\n"
        f"    {key}\n"
        f"Try: curl -H 'Authorization: {key}' http://{settings.host}:{settings.port}/ux/nccm/os-image/\n"
        f"{banner}",
        flush=True,
    )
    return key
