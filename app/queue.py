"""The arq job queue on Redis, or on an in-process Redis stand-in for the local run."""

import logging
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms
from redis.asyncio import ConnectionPool
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from app.config import Settings

logger = logging.getLogger(__name__)

DOWNLOAD_FUNCTION = "download_image"


class QueueUnreachable(RuntimeError):
    pass


async def create_queue_pool(settings: Settings) -> ArqRedis:
    """Connect to REDIS_URL (failing with a clear message), or make an in-memory queue."""
    if settings.redis_url is None:
        return create_memory_queue_pool()
    try:
        return await create_pool(
            RedisSettings.from_dsn(settings.redis_url),
            default_queue_name=settings.queue_name,
            retry=2,
        )
    except (RedisError, OSError) as exc:
        raise QueueUnreachable(
            f"Redis at REDIS_URL did not respond: {exc}. Start Redis, or unset MONGODB_URL "
            "and REDIS_URL for the in-memory run."
        ) from exc


class _MemoryPipeline(Pipeline):  # type: ignore[type-arg]
    """A pipeline that replies to INFO itself: fakeredis lacks it, and arq's worker calls it at start.

    INFO is sent as PING, to keep the positions of the replies, and its reply is swapped for a
    small dict afterwards.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._info_positions: list[int] = []

    def info(self, section: str | None = None, *args: Any, **kwargs: Any) -> Any:
        self._info_positions.append(len(self.command_stack))
        return self.execute_command("PING")

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        positions, self._info_positions = self._info_positions, []
        replies = await super().execute(raise_on_error)
        for position in positions:
            replies[position] = {"redis_version": "in-memory (fakeredis)"}
        return replies


class _MemoryArqRedis(ArqRedis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> _MemoryPipeline:
        return _MemoryPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def create_memory_queue_pool() -> ArqRedis:
    """Return an arq pool on fakeredis: the same queue commands, kept in this process only."""
    from fakeredis import FakeServer
    from fakeredis.aioredis import FakeConnection

    pool = ConnectionPool(connection_class=FakeConnection, server=FakeServer())
    return _MemoryArqRedis(connection_pool=pool)


async def enqueue_download(pool: ArqRedis, settings: Settings, job_id: str) -> None:
    # The arq job id is the DownloadJob id, so arq itself refuses a second copy of one job.
    await pool.enqueue_job(
        DOWNLOAD_FUNCTION, job_id, _job_id=job_id, _queue_name=settings.queue_name
    )


async def request_abort(pool: ArqRedis, job_id: str) -> None:
    """Ask the worker running `job_id` to cancel it; a queued job is dropped before it starts."""
    await pool.zadd(abort_jobs_ss, {job_id: timestamp_ms()})
