"""Liveness, readiness and worker heartbeats, against real Redis and unreachable services."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from arq.connections import ArqRedis
from pymongo import AsyncMongoClient

from app.config import Settings
from app.probes import probe_worker
from app.workers.heartbeat import WorkerHeartbeat, heartbeat_pattern, read_heartbeats
from app.workers.settings import shutdown, startup
from tests.conftest import REDIS_URL

# Nothing listens on port 1, so connections to it are refused at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"
UNREACHABLE_MONGODB_URL = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"


async def test_healthz_needs_no_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_all_services_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["down"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "mongodb": "ok", "redis": "ok", "storage": "ok",
    }
    assert body["workers"] == {"alive": 0, "workers": []}


async def test_readyz_redis_unreachable(redis_down_client: httpx.AsyncClient) -> None:
    response = await redis_down_client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["redis"]
    assert body["detail"] == "not ready: redis is down"
    assert "127.0.0.1:1" in body["checks"]["redis"]["error"]
    assert body["checks"]["mongodb"]["status"] == "ok"
    assert body["checks"]["storage"]["status"] == "ok"
    assert body["workers"]["alive"] is None


async def test_healthz_ok_while_redis_unreachable(redis_down_client: httpx.AsyncClient) -> None:
    response = await redis_down_client.get("/healthz")
    assert response.status_code == 200


async def test_readyz_mongodb_unreachable(app: Any, client: httpx.AsyncClient) -> None:
    mongo_client: AsyncMongoClient[Any] = AsyncMongoClient(UNREACHABLE_MONGODB_URL)
    app.state.database = mongo_client["os_image"]
    try:
        response = await client.get("/readyz")
    finally:
        await mongo_client.close()
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["mongodb"]
    assert "mongodb is down" in body["detail"]
    assert body["checks"]["mongodb"]["error"]


async def test_readyz_storage_not_writable(settings: Settings, client: httpx.AsyncClient) -> None:
    # A plain file where the partial directory should be: creating a file inside it fails even
    # for root, which file permissions would not stop.
    partial_dir = settings.storage_dir / "partial"
    partial_dir.rmdir()
    partial_dir.write_bytes(b"")

    response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["storage"]
    assert "NotADirectoryError" in body["checks"]["storage"]["error"]


async def test_readyz_names_every_service_down(
    redis_down_client: httpx.AsyncClient, settings: Settings
) -> None:
    (settings.storage_dir / "objects").rmdir()
    (settings.storage_dir / "objects").write_bytes(b"")
    response = await redis_down_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis", "storage"]
    assert response.json()["detail"] == "not ready: redis and storage are down"


async def test_readyz_lists_running_worker(
    settings: Settings, queue: ArqRedis, client: httpx.AsyncClient, app: Any
) -> None:
    ctx: dict[str, Any] = {"settings": settings, "redis": queue, "database_ready": True}
    await startup(ctx)
    try:
        workers = (await client.get("/readyz")).json()["workers"]
    finally:
        await shutdown(ctx)

    assert workers["alive"] == 1
    (worker,) = workers["workers"]
    assert worker["worker_id"] == ctx["heartbeat"].worker_id
    assert worker["host"] == socket.gethostname()
    assert worker["pid"] == os.getpid()
    assert worker["queue"] == settings.queue_name
    assert worker["jobs_running"] == 0
    assert (await client.get("/readyz")).json()["workers"]["alive"] == 0


async def test_heartbeat_key_expires(settings: Settings, queue: ArqRedis) -> None:
    heartbeat = WorkerHeartbeat(queue, settings.queue_name, 0.5, lambda: 2)
    await heartbeat.beat()
    try:
        ttl_ms = await queue.pttl(heartbeat.key)
        (payload,) = await read_heartbeats(queue, settings.queue_name)
    finally:
        await queue.delete(heartbeat.key)
    assert 0 < ttl_ms <= 1500
    assert payload["jobs_running"] == 2


async def test_heartbeats_of_other_queues_ignored(settings: Settings, queue: ArqRedis) -> None:
    other = WorkerHeartbeat(queue, settings.queue_name + "-other", 10, lambda: 0)
    await other.beat()
    try:
        assert await read_heartbeats(queue, settings.queue_name) == []
    finally:
        await queue.delete(other.key)


def test_heartbeat_pattern_escapes_glob() -> None:
    assert heartbeat_pattern("jobs[1]*?") == "jobs\\[1\\]\\*\\?:worker:*"


async def test_worker_probe_needs_heartbeat(settings: Settings, queue: ArqRedis) -> None:
    assert "no live heartbeat" in (await probe_worker(settings))
    heartbeat = WorkerHeartbeat(queue, settings.queue_name, 10, lambda: 0)
    await heartbeat.start()
    try:
        assert await probe_worker(settings) is None
    finally:
        await heartbeat.stop()
    assert "no live heartbeat" in (await probe_worker(settings))


async def test_worker_probe_redis_unreachable(settings: Settings) -> None:
    problem = await probe_worker(settings.model_copy(update={"redis_url": UNREACHABLE_REDIS_URL}))
    assert problem is not None
    assert problem.startswith("cannot read worker heartbeats from REDIS_URL")


def _healthcheck(role: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "healthcheck", role], env=dict(os.environ, **env),
        capture_output=True, text=True, timeout=60,
    )


async def test_healthcheck_worker_command(settings: Settings, queue: ArqRedis) -> None:
    env = {"REDIS_URL": REDIS_URL, "QUEUE_NAME": settings.queue_name}
    heartbeat = WorkerHeartbeat(queue, settings.queue_name, 10, lambda: 0)
    await heartbeat.start()
    try:
        alive = _healthcheck("worker", **env)
    finally:
        await heartbeat.stop()
    stopped = _healthcheck("worker", **env)

    assert alive.returncode == 0, alive.stderr
    assert alive.stdout.strip() == "healthy: worker"
    assert stopped.returncode == 1
    assert "no live heartbeat from a worker on host" in stopped.stderr


def test_healthcheck_api_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port was bound but never listened on, and is closed again: connections are refused.
    result = _healthcheck("api", HOST="127.0.0.1", PORT=str(port))
    assert result.returncode == 1
    assert f"GET http://127.0.0.1:{port}/healthz failed" in result.stderr
