"""The FastAPI application: routes, error handlers and the objects opened at start."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app import health, metrics
from app.access_log import AccessLogMiddleware
from app.config import Settings, get_settings
from app.docs import install_offline_docs
from app.errors import ERROR_RESPONSES, install_error_handlers
from app.routers import API_PREFIX, catalog, files, images, jobs, schedules
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


def _install_method_not_allowed_handler(app: FastAPI) -> None:
    """Send 405 responses with an Allow header that lists every method of the path.

    Starlette lists only the methods of the first route whose path matches, but GET, HEAD and PUT
    of one path are separate routes here.
    """
    patterns: list[tuple[re.Pattern[str], str]] = []

    def allowed_methods(path: str) -> str | None:
        if not patterns:
            for template, operations in app.openapi()["paths"].items():
                regex = re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template))
                patterns.append((re.compile(f"^{regex}$"), ", ".join(sorted(m.upper() for m in operations))))
        for pattern, methods in patterns:
            if pattern.match(path):
                return methods
        return None

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            methods = allowed_methods(request.url.path)
            if methods is not None:
                exc.headers = {**(exc.headers or {}), "Allow": methods}
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handler)


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

        from app.services.jobs import run_requeue_loop

        requeue_task = asyncio.create_task(run_requeue_loop(pool, settings), name="requeue-jobs")
        worker_runner = None
        if run_worker:
            from app.local import EmbeddedWorker

            worker_runner = EmbeddedWorker(settings, pool)
            await worker_runner.start()
        try:
            yield
        finally:
            requeue_task.cancel()
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
    _install_method_not_allowed_handler(app)
    # images.router goes last: its `/{id}/` routes would match every other one-segment path.
    for router in (catalog.router, jobs.router, schedules.router, files.router, images.router):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_offline_docs(app)
    # Added first so that it runs inside TrailingSlashMiddleware, which passes on a copy of the
    # scope (see AccessLogMiddleware).
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(TrailingSlashMiddleware)
    return app
