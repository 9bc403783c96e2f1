"""Work the worker does every minute beside its jobs: schedule dispatch and the requeue pass.

These run in a task of their own rather than as arq cron jobs, so that they never wait for one
of the WORKER_MAX_JOBS slots that long downloads may fill for hours. Every worker runs them; a
schedule slot still runs once because each is claimed with a compare-and-set, and requeueing a
job twice is harmless.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.services.jobs import requeue_jobs
from app.timeutil import utc_now
from app.workers.schedules import dispatch_schedules

logger = logging.getLogger(__name__)


def seconds_until_next_minute(now: datetime) -> float:
    """Seconds from `now` to second 0 of the next UTC minute (a full minute when `now` is on it)."""
    return 60.0 - (now.second + now.microsecond / 1_000_000)


async def run_minute_tasks(
    ctx: dict[str, Any], sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Dispatch due schedules, then requeue lost jobs, at the start of every minute, until cancelled."""
    while True:
        await sleep(seconds_until_next_minute(utc_now()))
        try:
            await dispatch_schedules(ctx)
        except (PyMongoError, RedisError, OSError) as exc:
            logger.warning("schedule dispatch failed, the next minute catches up: %s", exc)
        try:
            requeued = await requeue_jobs(ctx["redis"], ctx["settings"])
            if requeued:
                logger.info("requeued %d download jobs", requeued)
        except (PyMongoError, RedisError, OSError) as exc:
            logger.warning("requeue pass failed, trying again next minute: %s", exc)
