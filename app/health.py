"""Health endpoints without API key: `/healthz` (the process serves) and `/readyz` (its services do).

`/readyz` returns 503 when MongoDB or Redis does not respond or the storage directory cannot be
written, and names what is down. It also lists the workers whose heartbeat is alive. Having no
live worker does not make the API unready, because the API still serves the catalog and queues
downloads, which run once a worker starts. Alert on `workers.alive` (or the
`os_image_workers_alive` metric) for that.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.storage import Storage
from app.workers.heartbeat import read_heartbeats

# The services /readyz checks, in the order it reports them.
CHECK_NAMES = ("mongodb", "redis", "storage")


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    """Result of checking one service."""

    status: Literal["ok", "down"]
    duration_ms: float
    error: str | None = Field(default=None, description="Why the service counts as down.")


class HeartbeatInfo(BaseModel):
    """A worker's latest heartbeat."""

    worker_id: str
    host: str
    pid: int
    queue: str
    started_time: str
    time: str = Field(description="When the worker wrote this heartbeat.")
    jobs_running: int


class WorkerReport(BaseModel):
    alive: int | None = Field(description="Workers with a live heartbeat; null when Redis is down.")
    workers: list[HeartbeatInfo]


class Readiness(BaseModel):
    """Whether the API can serve requests, with the result of each check."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "unavailable",
                    "detail": "not ready: redis is down",
                    "down": ["redis"],
                    "checks": {
                        "mongodb": {"status": "ok", "duration_ms": 1.2, "error": None},
                        "redis": {
                            "status": "down", "duration_ms": 0.8,
                            "error": "ConnectionError: Error 111 connecting to redis:6379. Connection refused.",
                        },
                        "storage": {"status": "ok", "duration_ms": 0.4, "error": None},
                    },
                    "workers": {"alive": None, "workers": []},
                }
            ]
        }
    )

    status: Literal["ready", "unavailable"]
    detail: str
    down: list[str] = Field(description="Names of the checks that failed.")
    checks: dict[str, CheckResult]
    workers: WorkerReport


async def _check_mongodb(database: Any) -> None:
    await database.command("ping")


async def _check_redis(queue: Any) -> None:
    await queue.ping()


def _write_probe_file(directory: str) -> None:
    path = os.path.join(directory, f".readyz-{uuid.uuid4().hex}")
    with open(path, "wb") as probe:
        probe.write(b"ok")
    os.unlink(path)


async def _check_storage(storage: Storage) -> None:
    """Create and delete a file in both storage directories, as the worker and the API do."""
    for directory in (storage.partial_dir, storage.objects_dir):
        await asyncio.to_thread(_write_probe_file, str(directory))


async def _run_check(check: Callable[[], Awaitable[None]], timeout_s: float) -> CheckResult:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), timeout=timeout_s)
    except TimeoutError:
        error = f"no response within {timeout_s:g} s (READINESS_TIMEOUT_S)"
    # Any failure means "down" here; the report carries its type and message.
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = None
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    return CheckResult(status="down" if error else "ok", duration_ms=duration_ms, error=error)


def _parse_heartbeats(heartbeats: list[dict[str, Any]]) -> list[HeartbeatInfo]:
    """Keep the heartbeats in the expected shape; one from another version may lack fields."""
    parsed = []
    for heartbeat in heartbeats:
        try:
            parsed.append(HeartbeatInfo.model_validate(heartbeat))
        except ValidationError:
            continue
    return parsed


async def check_readiness(state: Any) -> Readiness:
    """Check MongoDB, Redis and storage concurrently, and read the worker heartbeats."""
    timeout_s = state.settings.readiness_timeout_s
    results = await asyncio.gather(
        _run_check(lambda: _check_mongodb(state.database), timeout_s),
        _run_check(lambda: _check_redis(state.queue), timeout_s),
        _run_check(lambda: _check_storage(state.storage), timeout_s),
    )
    checks = dict(zip(CHECK_NAMES, results, strict=True))
    down = [name for name, result in checks.items() if result.status == "down"]

    workers = WorkerReport(alive=None, workers=[])
    if "redis" not in down:
        try:
            heartbeats = await asyncio.wait_for(
                read_heartbeats(state.queue, state.settings.queue_name), timeout=timeout_s
            )
        except Exception:  # noqa: BLE001 - Redis failed after its check: report workers unknown
            heartbeats = None
        if heartbeats is not None:
            workers = WorkerReport(alive=len(heartbeats), workers=_parse_heartbeats(heartbeats))

    if down:
        detail = f"not ready: {' and '.join(down)} {'is' if len(down) == 1 else 'are'} down"
    else:
        detail = "ready"
    return Readiness(
        status="unavailable" if down else "ready", detail=detail, down=down, checks=checks,
        workers=workers,
    )


router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Liveness)
async def read_liveness() -> Liveness:
    """Return 200 while the process serves requests, checking nothing else. No API key needed."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A service is down; `down` names it."}},
)
async def read_readiness(request: Request, response: Response) -> Readiness:
    """Return 200 when MongoDB and Redis respond and storage is writable, else 503. No API key needed."""
    report = await check_readiness(request.app.state)
    if report.down:
        response.status_code = 503
    return report
