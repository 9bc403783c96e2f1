"""Fixtures: the app on an injected database, a real Redis queue, and a misbehaving source server.

MongoDB: the in-memory adapter by default; a real server when MONGODB_URL is set (each test
then gets its own database, dropped afterwards). Redis: TEST_REDIS_URL, by default
redis://127.0.0.1:6379/0, with a queue name of its own per test.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from app.auth import create_api_key
from app.config import Settings
from app.main import create_app
from app.workers.settings import create_worker
from tests.source_server import SourceServer

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def database() -> AsyncIterator[Any]:
    mongodb_url = os.environ.get("MONGODB_URL")
    if not mongodb_url:
        from app.memory_db import create_memory_database

        yield create_memory_database("test")
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"os_image_test_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        mongodb_url=None,
        redis_url=REDIS_URL,
        queue_name=f"test:{uuid.uuid4().hex}",
        storage_dir=tmp_path / "storage",
        download_max_attempts=3,
        download_retry_base_delay_s=0.05,
        download_retry_max_delay_s=0.2,
        download_connect_timeout_s=2,
        download_read_timeout_s=2,
        progress_interval_s=0.01,
        download_chunk_bytes=64 * 1024,
    )


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=settings.queue_name)
    yield pool
    await pool.delete(settings.queue_name)
    await pool.aclose()


@pytest.fixture
async def app(settings: Settings, database: Any, queue: ArqRedis) -> AsyncIterator[Any]:
    application = create_app(settings, database=database, queue=queue, embedded_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        yield http_client


@pytest.fixture
async def live_server(app: Any) -> AsyncIterator[str]:
    """Serve the app with uvicorn on a free 127.0.0.1 port in this event loop; yield its base URL."""
    import asyncio
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The app fixture already ran the lifespan, so uvicorn must not run it again.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def redis_down_client(settings: Settings, database: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose Redis is unreachable (nothing listens on port 1)."""
    # redis-py connects on first use, so the pool can be made; every command then fails.
    pool = ArqRedis.from_url("redis://127.0.0.1:1/0")
    application = create_app(settings, database=database, queue=pool, embedded_worker=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
            yield http_client
    await pool.aclose()


@pytest.fixture
async def acme_key(app: Any) -> str:
    _, key = await create_api_key("acme", "tests")
    return key


@pytest.fixture
async def other_key(app: Any) -> str:
    _, key = await create_api_key("other", "tests")
    return key


@pytest.fixture
def acme(client: httpx.AsyncClient, acme_key: str) -> httpx.AsyncClient:
    """The client, sending acme's key on every request."""
    client.headers["Authorization"] = acme_key
    return client


@pytest.fixture
def source() -> Iterator[SourceServer]:
    server = SourceServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def run_worker(settings: Settings, app: Any):  # type: ignore[no-untyped-def]
    """Return a coroutine function that runs the real worker in burst mode until the queue is empty."""

    async def run(worker_settings: Settings | None = None) -> None:
        pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=settings.queue_name)
        worker = create_worker(
            worker_settings or settings, redis_pool=pool, ctx={"database_ready": True},
            burst=True, poll_delay=0.02,
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()

    return run
