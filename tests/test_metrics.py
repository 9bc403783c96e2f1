"""Prometheus metrics of the API and the worker, read back through /metrics as a scraper would."""

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.metrics import start_worker_metrics_server
from tests.source_server import Route, fail_then_serve
from tests.test_downloads import BASE, PAYLOAD, PAYLOAD_MD5, create_image, download, trigger


def parse_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Map (sample name, labels) to value for every sample of a text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sample's value, 0 when the series does not exist yet (counters start there)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> dict:
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_samples(response.text)


async def test_metrics_after_download(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    before = await scrape(acme)

    _, job, _ = await download(acme, source, run_worker, Route(body=PAYLOAD), md5_hash=PAYLOAD_MD5)
    assert job["state"] == "succeeded"
    after = await scrape(acme)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("os_image_downloads_total", outcome="succeeded", error_code="") == 1
    assert delta("os_image_download_bytes_total") >= len(PAYLOAD)
    assert delta("os_image_job_duration_seconds_count", outcome="succeeded") == 1
    assert delta("os_image_job_duration_seconds_sum", outcome="succeeded") > 0
    trigger_route = f"{BASE}/trigger-osdownload/"
    assert delta("os_image_http_requests_total", method="POST", route=trigger_route, status="202") == 1
    assert delta("os_image_http_request_duration_seconds_count", method="POST", route=trigger_route) == 1
    assert value(after, "os_image_worker_jobs_running") == 0
    assert value(after, "os_image_queue_depth") == 0
    assert value(after, "os_image_jobs_running") == 0
    # The burst worker has stopped and deleted its heartbeat.
    assert value(after, "os_image_workers_alive") == 0


async def test_metrics_count_failure_codes(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    before = await scrape(acme)

    _, job, _ = await download(acme, source, run_worker, Route(body=PAYLOAD), md5_hash="0" * 32)
    assert job["error_code"] == "md5_mismatch"
    after = await scrape(acme)

    failed = {"outcome": "failed", "error_code": "md5_mismatch"}
    assert value(after, "os_image_downloads_total", **failed) - value(before, "os_image_downloads_total", **failed) == 1
    # The job's state after its run was "failed".
    duration = ("os_image_job_duration_seconds_count",)
    assert value(after, *duration, outcome="failed") - value(before, *duration, outcome="failed") == 1


async def test_metrics_count_retries(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    before = await scrape(acme)

    _, job, _ = await download(acme, source, run_worker, fail_then_serve(PAYLOAD, failures=1))
    assert job["state"] == "succeeded", job
    after = await scrape(acme)

    assert value(after, "os_image_download_retries_total", error_code="http_status") - value(
        before, "os_image_download_retries_total", error_code="http_status"
    ) == 1
    assert value(after, "os_image_job_duration_seconds_count", outcome="retry") - value(
        before, "os_image_job_duration_seconds_count", outcome="retry"
    ) == 1


async def test_queue_depth_counts_waiting_jobs(acme, source) -> None:  # type: ignore[no-untyped-def]
    for img_id in ("first", "second"):
        image_id = await create_image(acme, source.url("/image.bin"), img_id=img_id)
        await trigger(acme, id=image_id)

    samples = await scrape(acme)

    assert value(samples, "os_image_queue_depth") == 2
    assert value(samples, "os_image_jobs_running") == 0


async def test_unmatched_route_label(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await client.get("/no/such/path")).status_code == 404
    after = await scrape(client)
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "os_image_http_requests_total", **labels) - value(
        before, "os_image_http_requests_total", **labels
    ) == 1


async def test_route_label_is_template(acme: httpx.AsyncClient) -> None:
    image_id = "0123456789abcdef01234567"
    before = await scrape(acme)
    assert (await acme.get(f"{BASE}/{image_id}/")).status_code == 404
    after = await scrape(acme)
    labels = {"method": "GET", "route": f"{BASE}/{{id}}/", "status": "404"}
    assert value(after, "os_image_http_requests_total", **labels) - value(
        before, "os_image_http_requests_total", **labels
    ) == 1
    assert not any(image_id in dict(labels_).get("route", "") for _, labels_ in after)


async def test_metrics_served_while_redis_down(redis_down_client: httpx.AsyncClient) -> None:
    samples = await scrape(redis_down_client)
    names = {name for name, _ in samples}
    assert "os_image_queue_depth" not in names
    assert "os_image_workers_alive" not in names
    assert "os_image_jobs_running" in names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_worker_metrics_server(settings: Settings) -> None:
    port = free_port()
    server = start_worker_metrics_server(
        settings.model_copy(update={"host": "127.0.0.1", "worker_metrics_port": port})
    )
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    names = {name for name, _ in parse_samples(response.text)}
    assert "os_image_worker_jobs_running" in names


def test_worker_metrics_port_zero_disables(settings: Settings) -> None:
    assert start_worker_metrics_server(settings.model_copy(update={"worker_metrics_port": 0})) is None
