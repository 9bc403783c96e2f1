"""Prometheus metrics, in prometheus_client's default registry of each process.

The API and the worker are separate processes in production, and each exports its own metrics:
the API at `GET /metrics`, a `worker` process on its own port (WORKER_METRICS_PORT). Counters
that the worker updates (downloads, bytes, job durations) therefore come from the worker's
endpoint, and Prometheus sums them over all workers. The API adds gauges that it reads from the
shared services at scrape time: queue depth, jobs running, workers alive. In the local run the
worker lives in the API process, so `GET /metrics` shows everything.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.config import Settings
from app.models.documents import DownloadJob, JobState
from app.workers.heartbeat import read_heartbeats

logger = logging.getLogger(__name__)

# Route label of requests that matched no route, so scans of random paths add no new series.
UNMATCHED_ROUTE = "unmatched"
# A job attempt may take seconds or, for a large image on a slow link, hours.
JOB_DURATION_BUCKETS_S = (1, 5, 15, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 24 * 3600)

HTTP_REQUESTS = Counter(
    "os_image_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "os_image_http_request_duration_seconds",
    "Time from receiving an HTTP request to sending the last byte of its response.",
    ["method", "route"],
)
DOWNLOADS = Counter(
    "os_image_downloads",
    "Finished download jobs by outcome (succeeded, failed, cancelled) and failure code.",
    ["outcome", "error_code"],
)
DOWNLOAD_RETRIES = Counter(
    "os_image_download_retries",
    "Download attempts that failed and were scheduled again, by failure code.",
    ["error_code"],
)
DOWNLOAD_BYTES = Counter(
    "os_image_download_bytes",
    "Bytes received from download sources, including attempts that failed.",
)
JOB_DURATION = Histogram(
    "os_image_job_duration_seconds",
    "Duration of one run of a download job by outcome: the job's state after the run, "
    "'retry' when the run scheduled another attempt, 'error' when it raised.",
    ["outcome"],
    buckets=JOB_DURATION_BUCKETS_S,
)
WORKER_JOBS_RUNNING = Gauge(
    "os_image_worker_jobs_running", "Download jobs this process is running now."
)


def observe_http_request(method: str, route: str, status: int, duration_s: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(method, route).observe(duration_s)


def record_download_finished(outcome: JobState, error_code: str | None = None) -> None:
    DOWNLOADS.labels(outcome.value, error_code or "").inc()


def record_download_retry(error_code: str) -> None:
    DOWNLOAD_RETRIES.labels(error_code).inc()


def count_download_bytes(size_bytes: int) -> None:
    DOWNLOAD_BYTES.inc(size_bytes)


_running_job_count = 0


def running_jobs() -> int:
    """Return the number of download jobs this process is running (WORKER_JOBS_RUNNING's value)."""
    return _running_job_count


def instrument_job(
    function: Callable[..., Awaitable[str]],
) -> Callable[..., Awaitable[str]]:
    """Wrap an arq job so each run counts in WORKER_JOBS_RUNNING and JOB_DURATION."""

    @functools.wraps(function)
    async def run(*args: Any, **kwargs: Any) -> str:
        global _running_job_count
        outcome = "error"
        started = time.monotonic()
        _running_job_count += 1
        WORKER_JOBS_RUNNING.inc()
        try:
            outcome = await function(*args, **kwargs)
            return outcome
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:
            outcome = JobState.CANCELLED.value
            raise
        finally:
            _running_job_count -= 1
            WORKER_JOBS_RUNNING.dec()
            JOB_DURATION.labels(outcome).observe(time.monotonic() - started)

    return run


def start_worker_metrics_server(settings: Settings) -> Any:
    """Serve this process's metrics on HOST:WORKER_METRICS_PORT in a thread; None when the port is 0.

    Returns the server, whose `shutdown()` stops it. Raises OSError when the port is taken.
    """
    if settings.worker_metrics_port == 0:
        return None
    server, _ = start_http_server(settings.worker_metrics_port, addr=settings.host)
    logger.info(
        "worker metrics at http://%s:%d/metrics", settings.host, settings.worker_metrics_port
    )
    return server


class _ScrapeErrors:
    """Log a failing scrape-time source once per outage rather than on every scrape."""

    def __init__(self) -> None:
        self._failing: set[str] = set()

    def failed(self, source: str, exc: BaseException) -> None:
        if source not in self._failing:
            logger.warning("metrics: %s left out of /metrics, it failed: %r", source, exc)
        self._failing.add(source)

    def succeeded(self, source: str) -> None:
        if source in self._failing:
            logger.info("metrics: %s is back in /metrics", source)
        self._failing.discard(source)


_scrape_errors = _ScrapeErrors()


async def _read_service_gauges(state: Any) -> CollectorRegistry:
    """Read queue depth, running jobs and live workers into a registry made for this scrape.

    A source that fails or takes longer than READINESS_TIMEOUT_S is left out of this scrape.
    """
    settings: Settings = state.settings
    registry = CollectorRegistry(auto_describe=True)
    sources: dict[str, tuple[Gauge, Callable[[], Awaitable[int]]]] = {
        "queue depth": (
            Gauge("os_image_queue_depth", "Jobs waiting in the arq queue (ZCARD of QUEUE_NAME).", registry=registry),
            lambda: state.queue.zcard(settings.queue_name),
        ),
        "running jobs": (
            Gauge("os_image_jobs_running", "Download jobs in state running, over all workers.", registry=registry),
            lambda: DownloadJob.find({"state": JobState.RUNNING.value}).count(),
        ),
        "live workers": (
            Gauge("os_image_workers_alive", "Workers whose heartbeat in Redis has not expired.", registry=registry),
            _count_workers(state.queue, settings.queue_name),
        ),
    }
    for source, (gauge, read) in sources.items():
        try:
            value = await asyncio.wait_for(read(), timeout=settings.readiness_timeout_s)
        except (RedisError, OSError, PyMongoError, TimeoutError) as exc:
            registry.unregister(gauge)
            _scrape_errors.failed(source, exc)
            continue
        gauge.set(value)
        _scrape_errors.succeeded(source)
    return registry


def _count_workers(queue: Any, queue_name: str) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(await read_heartbeats(queue, queue_name))

    return count


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format; no API key needed.",
            "content": {
                CONTENT_TYPE_LATEST: {
                    "example": (
                        "# HELP os_image_queue_depth Jobs waiting in the arq queue (ZCARD of QUEUE_NAME).\n"
                        "# TYPE os_image_queue_depth gauge\n"
                        "os_image_queue_depth 3.0\n"
                    )
                }
            },
        }
    },
)
async def read_metrics(request: Request) -> Response:
    """Return this process's metrics, plus queue depth, running jobs and live workers read from the services."""
    service_gauges = await _read_service_gauges(request.app.state)
    body = generate_latest(REGISTRY) + generate_latest(service_gauges)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
