"""Worker liveness: each worker rewrites a Redis key with a TTL, and readers count the live keys.

Key: `<QUEUE_NAME>:worker:<worker id>`, value: JSON with host, pid, queue, start time, time of the
write and the number of jobs running. The TTL is three write intervals, so a worker that stops or
hangs disappears after at most that long, and one late write does not make it look dead.
"""

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.timeutil import format_rfc3339, utc_now

logger = logging.getLogger(__name__)

TTL_INTERVALS = 3
# Characters that SCAN's MATCH reads as glob syntax and that a queue name may contain.
_GLOB_CHARACTERS = "\\*?[]"


def heartbeat_key(queue_name: str, worker_id: str) -> str:
    return f"{queue_name}:worker:{worker_id}"


def heartbeat_pattern(queue_name: str) -> str:
    escaped = "".join("\\" + char if char in _GLOB_CHARACTERS else char for char in queue_name)
    return f"{escaped}:worker:*"


def new_worker_id() -> str:
    """Return `<host>:<pid>:<random>`, where the random part distinguishes workers of one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkerHeartbeat:
    """Write this worker's heartbeat every `interval_s` until stopped; delete it on stop."""

    def __init__(
        self, redis: Redis, queue_name: str, interval_s: float, running_jobs: Callable[[], int]
    ) -> None:
        self.worker_id = new_worker_id()
        self.key = heartbeat_key(queue_name, self.worker_id)
        self._redis = redis
        self._queue_name = queue_name
        self._interval_s = interval_s
        self._running_jobs = running_jobs
        self._started_time = utc_now()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def payload(self) -> dict[str, Any]:
        host, pid, _ = self.worker_id.split(":", 2)
        return {
            "worker_id": self.worker_id,
            "host": host,
            "pid": int(pid),
            "queue": self._queue_name,
            "started_time": format_rfc3339(self._started_time),
            "time": format_rfc3339(utc_now()),
            "jobs_running": self._running_jobs(),
        }

    async def beat(self) -> None:
        ttl_ms = int(self._interval_s * TTL_INTERVALS * 1000)
        await self._redis.set(self.key, json.dumps(self.payload()), px=ttl_ms)

    async def start(self) -> None:
        """Write the first heartbeat now (raising if Redis fails), then keep writing in a task."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self.worker_id}")
        logger.info(
            "worker heartbeat started: key=%s interval=%.1fs", self.key, self._interval_s,
            extra={"worker_id": self.worker_id},
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                # Logged once per outage: the loop retries every interval until Redis responds.
                if not self._failing:
                    logger.warning(
                        "worker heartbeat write failed, retrying every %.1fs: %s",
                        self._interval_s, exc, extra={"worker_id": self.worker_id},
                    )
                self._failing = True
                continue
            if self._failing:
                logger.info("worker heartbeat written again", extra={"worker_id": self.worker_id})
            self._failing = False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self._redis.delete(self.key)
        except (RedisError, OSError) as exc:
            logger.warning("worker heartbeat key %s not deleted, it expires by TTL: %s", self.key, exc)


async def read_heartbeats(redis: Redis, queue_name: str) -> list[dict[str, Any]]:
    """Return the heartbeats of the workers on `queue_name` that are alive, ordered by worker id."""
    keys = [key async for key in redis.scan_iter(match=heartbeat_pattern(queue_name), count=100)]
    if not keys:
        return []
    values = await redis.mget(keys)
    heartbeats = []
    for value in values:
        if value is None:  # expired between SCAN and MGET
            continue
        try:
            heartbeats.append(json.loads(value))
        except ValueError:
            logger.warning("ignoring a heartbeat that is not JSON in queue %s", queue_name)
    return sorted(heartbeats, key=lambda heartbeat: str(heartbeat.get("worker_id")))
