"""The FastAPI application: routes, error handlers and the objects opened at start."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app import health, metrics
from app.access_log import AccessLogMiddleware
from app.auth import UNAUTHORIZED_RESPONSE
from app.config import Settings, get_settings
from app.docs import install_offline_docs
from app.errors import install_error_handlers
from app.routers import API_PREFIX, catalog, images, jobs
from app.storage import Storage

logger = logging.getLogger(__name__)


class TrailingSlashMiddleware:
    """Serve `/ux/nccm/os-image/x` as `/ux/nccm/os-image/x/`, without a redirect.

    A redirect would make clients that do not follow it (or that drop the body on a POST) fail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(API_PREFIX) and not path.endswith("/"):
                scope = dict(scope, path=path + "/", raw_path=(path + "/").encode())
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    database: Any = None,
    queue: Any = None,
    embedded_worker: bool | None = None,
) -> FastAPI:
    """Build the app. Tests inject `database` and `queue`; by default both come from settings.

    `embedded_worker` runs the arq worker inside this process (the local run); by default it does
    when the settings name no MongoDB and no Redis.
    """
    settings = settings or get_settings()
    run_worker = settings.is_embedded if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from app.database import connect_database, init_database
        from app.queue import create_queue_pool

        if database is None:
            app.state.database = await connect_database(settings)
            if settings.mongodb_url is None:
                from app.local import announce_memory_run

                await announce_memory_run(settings)
        else:
            await init_database(database)
            app.state.database = database
        storage = Storage(settings.storage_dir)
        storage.ensure_directories()
        pool = queue if queue is not None else await create_queue_pool(settings)
        app.state.settings = settings
        app.state.storage = storage
        app.state.queue = pool

        worker_runner = None
        if run_worker:
            from app.local import EmbeddedWorker

            worker_runner = EmbeddedWorker(settings, pool)
            await worker_runner.start()
        try:
            yield
        finally:
            if worker_runner is not None:
                await worker_runner.stop()
            if queue is None:
                await pool.aclose()

    app = FastAPI(
        title="OS image service",
        version="1.0.0",
        description=(
            "Catalog, download, integrity check and distribution of network device OS images. "
            "Authenticate with `Authorization: <api key>` or `Authorization: Bearer <api key>`."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for router in (catalog.router, jobs.router, images.router):
        app.include_router(router, prefix=API_PREFIX, responses=UNAUTHORIZED_RESPONSE)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_offline_docs(app)
    # Added first so that it runs inside TrailingSlashMiddleware, which passes on a copy of the
    # scope (see AccessLogMiddleware).
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(TrailingSlashMiddleware)
    return app
