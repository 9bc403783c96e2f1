"""Health probes run inside a container (`python -m app healthcheck api|worker`).

Each returns None when healthy, or a message naming the problem. The slim image has no curl,
and the worker serves no health endpoint, so the probes are part of the package.
"""

import socket

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import Settings
from app.workers.heartbeat import read_heartbeats

PROBE_TIMEOUT_S = 5.0
# Loopback address that reaches, from the same host, a server listening on every address.
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def api_health_url(settings: Settings) -> str:
    host = _LOOPBACK_FOR.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/healthz"


def probe_api(settings: Settings) -> str | None:
    """Check that the API on HOST:PORT returns 200 for GET /healthz."""
    url = api_health_url(settings)
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"GET {url} failed: {exc!r}"
    if response.status_code != 200:
        return f"GET {url} answered {response.status_code}"
    return None


async def probe_worker(settings: Settings) -> str | None:
    """Check that a worker on this host has a live heartbeat in Redis for QUEUE_NAME."""
    if settings.redis_url is None:
        return (
            "REDIS_URL is not set: the worker role runs against Redis. For the local run "
            "('python -m app run') probe the api role instead."
        )
    host = socket.gethostname()
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )
    try:
        heartbeats = await read_heartbeats(redis, settings.queue_name)
    except (RedisError, OSError) as exc:
        return f"cannot read worker heartbeats from REDIS_URL: {exc}"
    finally:
        await redis.aclose()
    if not any(heartbeat.get("host") == host for heartbeat in heartbeats):
        return f"no live heartbeat from a worker on host {host!r} for queue {settings.queue_name!r}"
    return None
