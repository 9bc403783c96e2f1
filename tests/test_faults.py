"""Faults on the download path: cut connections and resumes, outages, cancellation, full disks."""

import asyncio
import hashlib
import logging
import os

import httpx
import pytest
from beanie import PydanticObjectId
from pymongo.errors import ServerSelectionTimeoutError

from app.models.documents import DownloadJob
from app.services.jobs import requeue_jobs
from tests.source_server import Route, ranged, stall_after

BASE = "/ux/nccm/os-image"
PAYLOAD = os.urandom(2_000_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
CUT_AT = 1_200_000


async def create_and_trigger(client: httpx.AsyncClient, url: str, **fields: object) -> tuple[str, str]:
    body = {"img_id": "img", "organization": "acme", "file_name": "image.bin", "file_path": url, **fields}
    response = await client.post(f"{BASE}/", json=body)
    assert response.status_code == 201, response.text
    image_id = response.json()["id"]
    response = await client.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})
    assert response.status_code == 202, response.text
    return image_id, response.json()["jobs"][0]["job_id"]


async def final_state(client: httpx.AsyncClient, image_id: str) -> tuple[dict, dict, list[dict]]:
    (job,) = (await client.get(f"{BASE}/os-images-status/", params={"image_ids": image_id})).json()
    record = (await client.get(f"{BASE}/{image_id}/")).json()
    events = (await client.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    return job, record, list(reversed(events))


def range_requests(source) -> list[str | None]:  # type: ignore[no-untyped-def]
    return [headers.get("Range") for _, headers in source.request_headers]


async def test_cut_download_resumes_with_range(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    source.routes["/image.bin"] = ranged(PAYLOAD, cut_first_at=CUT_AT)
    image_id, _ = await create_and_trigger(acme, source.url("/image.bin"), md5_hash=PAYLOAD_MD5)
    await run_worker()

    job, record, events = await final_state(acme, image_id)
    assert job["state"] == "succeeded", job
    assert record["md5_hash"] == PAYLOAD_MD5
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == PAYLOAD
    # Every byte of the cut response was kept, so the resume asked for exactly the rest.
    ranges = range_requests(source)
    assert ranges == [None, f"bytes={CUT_AT}-"]
    assert source.request_headers[1][1]["If-Range"] == '"v1"'
    assert source.bytes_sent == len(PAYLOAD)
    kept = CUT_AT
    resumed = [event for event in events if event["action"] == "download_resumed"]
    assert resumed[0]["details"]["offset"] == kept
    assert list((settings.storage_dir / "partial").iterdir()) == []


async def test_resume_with_last_modified(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    stamp = "Tue, 01 Dec 2026 10:00:00 GMT"
    source.routes["/image.bin"] = ranged(PAYLOAD, etag=None, last_modified=stamp, cut_first_at=CUT_AT)
    image_id, _ = await create_and_trigger(acme, source.url("/image.bin"), md5_hash=PAYLOAD_MD5)
    await run_worker()
    job, _, _ = await final_state(acme, image_id)
    assert job["state"] == "succeeded"
    assert source.request_headers[1][1]["If-Range"] == stamp


@pytest.mark.parametrize("range_status", ["ignore", "shifted", "unsatisfiable"])
async def test_bad_range_answer_starts_over(acme, source, run_worker, settings, range_status: str) -> None:  # type: ignore[no-untyped-def]
    source.routes["/image.bin"] = ranged(PAYLOAD, cut_first_at=CUT_AT, range_status=range_status)
    image_id, _ = await create_and_trigger(acme, source.url("/image.bin"), md5_hash=PAYLOAD_MD5)
    await run_worker()
    job, record, events = await final_state(acme, image_id)
    assert job["state"] == "succeeded", job
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == PAYLOAD
    assert "download_resumed" not in [event["action"] for event in events]
    assert range_requests(source)[-1] is None or range_status == "ignore"


async def test_changed_entity_starts_over(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    newer = os.urandom(len(PAYLOAD))
    source.routes["/image.bin"] = ranged(PAYLOAD, cut_first_at=CUT_AT)
    image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))

    # Between the attempts the vendor publishes a new file under the same URL.
    async def swap_when_cut() -> None:
        while source.request_counts.get("/image.bin", 0) < 1:
            await asyncio.sleep(0.01)
        source.routes["/image.bin"] = ranged(newer, etag='"v2"')

    swapper = asyncio.create_task(swap_when_cut())
    await run_worker()
    await swapper
    job, record, _ = await final_state(acme, image_id)
    assert job["state"] == "succeeded"
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == newer


async def test_cancel_stops_running_download(acme, source, run_worker, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    from app.metrics import DOWNLOADS

    caplog.set_level(logging.INFO, logger="app.workers.download")
    cancelled_before = DOWNLOADS.labels("cancelled", "")._value.get()
    source.routes["/image.bin"] = stall_after(PAYLOAD, 300_000, stall_s=30)
    image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))
    worker = asyncio.create_task(run_worker())
    try:
        for _ in range(500):
            job = await DownloadJob.get(PydanticObjectId(job_id))
            if job is not None and job.bytes_done > 0:
                break
            await asyncio.sleep(0.01)
        assert job is not None and job.state == "running"
        response = await acme.post(f"{BASE}/cancel-osdownload/", json={"id": image_id})
        assert response.status_code == 200
        assert [item["state"] for item in response.json()["jobs"]] == ["cancelled"]
        await asyncio.wait_for(worker, 10)
    finally:
        worker.cancel()
    job_doc, record, events = await final_state(acme, image_id)
    assert job_doc["state"] == "cancelled"
    assert DOWNLOADS.labels("cancelled", "")._value.get() == cancelled_before + 1
    assert f"download cancelled job={job_id}" in caplog.text
    assert record["file_status"] == "none"
    assert list((settings.storage_dir / "partial").iterdir()) == []
    assert "download_cancelled" in [event["action"] for event in events]


async def test_cancel_without_active_job(acme, source) -> None:  # type: ignore[no-untyped-def]
    response = await acme.post(f"{BASE}/", json={"img_id": "idle", "organization": "acme"})
    image_id = response.json()["id"]
    response = await acme.post(f"{BASE}/cancel-osdownload/", json={"id": image_id})
    assert response.status_code == 200
    assert response.json() == {"jobs": []}


async def test_full_disk_fails_cleanly(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    source.routes["/image.bin"] = Route(body=PAYLOAD)
    image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))
    # Writes to /dev/full fail with ENOSPC, as on a full file system.
    partial = settings.storage_dir / "partial" / f"{job_id}.part"
    partial.symlink_to("/dev/full")
    await run_worker()
    job, record, _ = await final_state(acme, image_id)
    assert job["state"] == "failed"
    assert job["error_code"] == "storage_full"
    assert "No space left" in job["error_message"]
    assert record["file_status"] == "failed"
    assert not partial.is_symlink()
    assert not partial.exists()
    assert (await acme.get(f"{BASE}/")).status_code == 200


async def test_trigger_while_redis_down(acme, source, run_worker, settings, app, queue) -> None:  # type: ignore[no-untyped-def]
    from arq.connections import ArqRedis

    source.routes["/image.bin"] = Route(body=PAYLOAD)
    # Nothing listens on port 1, so every command fails to connect.
    unreachable = ArqRedis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    app.state.queue = unreachable
    try:
        image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))
    finally:
        app.state.queue = queue
        await unreachable.aclose()
    job = await DownloadJob.get(PydanticObjectId(job_id))
    assert job is not None
    assert job.state == "queued"
    assert job.enqueued is False
    status = (await acme.get(f"{BASE}/os-images-status/", params={"image_ids": image_id})).json()
    assert status[0]["enqueued"] is False

    assert await requeue_jobs(queue, settings) == 1
    assert await requeue_jobs(queue, settings) == 0
    await run_worker()
    job_doc, _, events = await final_state(acme, image_id)
    assert job_doc["state"] == "succeeded"
    assert job_doc["enqueued"] is True
    assert [event["action"] for event in events][1:4] == ["download_queued", "download_enqueued", "download_started"]


async def test_requeue_finds_lost_job(acme, source, run_worker, settings, queue) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from app.timeutil import utc_now

    source.routes["/image.bin"] = Route(body=PAYLOAD)
    image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))
    # As after a Redis restart without persistence: the queue forgot the job.
    await queue.delete(settings.queue_name, f"arq:job:{job_id}")
    assert await requeue_jobs(queue, settings) == 0  # too recent to be called lost
    long_ago = utc_now() - timedelta(seconds=3 * settings.job_lease_s)
    await DownloadJob.get_pymongo_collection().update_one(
        {"_id": PydanticObjectId(job_id)}, {"$set": {"updated_time": long_ago}}
    )
    assert await requeue_jobs(queue, settings) == 1
    await run_worker()
    job, _, _ = await final_state(acme, image_id)
    assert job["state"] == "succeeded"


async def test_database_down_is_503(acme, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app import memory_db

    def unreachable(self, name):  # type: ignore[no-untyped-def]
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    monkeypatch.setattr(memory_db._Collection, "__getattr__", unreachable)
    response = await acme.get(f"{BASE}/")
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert "MongoDB" in response.json()["detail"]


async def test_slow_source_shows_progress(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    import threading

    # 20 KB every 0.1 s: far below one chunk per second, as on a slow branch link.
    body = os.urandom(400_000)
    done = threading.Event()

    def trickle(request, count):  # type: ignore[no-untyped-def]
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        for offset in range(0, len(body), 20_000):
            request.wfile.write(body[offset:offset + 20_000])
            request.wfile.flush()
            if not done.wait(0.1):
                continue

    source.routes["/image.bin"] = Route(handler=trickle)
    image_id, job_id = await create_and_trigger(acme, source.url("/image.bin"))
    slow_settings = settings.model_copy(update={"download_chunk_bytes": 1024 * 1024, "progress_interval_s": 0.2})
    worker = asyncio.create_task(run_worker(slow_settings))
    partial = settings.storage_dir / "partial" / f"{job_id}.part"
    seen = []
    try:
        while not worker.done():
            job = await DownloadJob.get(PydanticObjectId(job_id))
            if job is not None and job.state == "running" and 0 < job.bytes_done < len(body):
                seen.append((job.bytes_done, job.bytes_total, partial.stat().st_size if partial.exists() else 0))
            await asyncio.sleep(0.05)
        await worker
    finally:
        done.set()
    assert seen, "no progress was reported before the download ended"
    assert all(total == len(body) for _, total, _ in seen)
    assert max(kept for _, _, kept in seen) > 0
    job, _, _ = await final_state(acme, image_id)
    assert job["state"] == "succeeded"
