"""A worker process killed with SIGKILL in the middle of a download, and a new one that resumes."""

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bson import json_util

from tests.source_server import Route, SourceHandler
from tests.worker_process import dump

BASE = "/ux/nccm/os-image"
PAYLOAD = os.urandom(3_000_000)
HELD_AT = 1_000_000


def held_then_ranged(body: bytes, release: threading.Event) -> Route:
    """First request: send HELD_AT bytes and hold the connection. Later ones: honour Range."""

    def handler(request: SourceHandler, count: int) -> None:
        range_header = request.headers.get("Range")
        if count == 1:
            request.send_response(200)
            request.send_header("Content-Length", str(len(body)))
            request.send_header("ETag", '"kill-test"')
            request.end_headers()
            request.wfile.write(body[:HELD_AT])
            request.wfile.flush()
            release.wait(60)
            request.close_connection = True
            return
        start = int(range_header.removeprefix("bytes=").split("-")[0]) if range_header else 0
        request.send_response(206 if range_header else 200)
        if range_header:
            request.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        request.send_header("Content-Length", str(len(body) - start))
        request.send_header("ETag", '"kill-test"')
        request.end_headers()
        request.wfile.write(body[start:])

    return Route(handler=handler)


def start_worker(snapshot: Path, settings_json: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker_process", str(snapshot), settings_json, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def read_snapshot(snapshot: Path) -> dict:
    return json_util.loads(snapshot.read_text())


async def test_killed_worker_is_resumed(acme, source, settings, database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    source.routes["/image.bin"] = held_then_ranged(PAYLOAD, release)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    response = await acme.post(f"{BASE}/", json={
        "img_id": "kill", "organization": "acme", "file_name": "image.bin",
        "file_path": source.url("/image.bin"), "md5_hash": md5,
    })
    image_id = response.json()["id"]
    job_id = (await acme.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})).json()["jobs"][0]["job_id"]

    snapshot = tmp_path / "catalog.json"
    await dump(database, snapshot)
    settings_json = json.dumps({
        "redis_url": settings.redis_url, "queue_name": settings.queue_name,
        "storage_dir": str(settings.storage_dir), "job_lease_s": 5, "progress_interval_s": 0.01,
        "download_chunk_bytes": 64 * 1024, "download_read_timeout_s": 30,
    })
    partial = settings.storage_dir / "partial" / f"{job_id}.part"

    first = start_worker(snapshot, settings_json)
    try:
        for _ in range(1000):
            jobs = read_snapshot(snapshot)["download_jobs"]
            if partial.exists() and partial.stat().st_size >= HELD_AT // 2 and jobs[0].get("source_etag"):
                break
            await asyncio.sleep(0.02)
        assert jobs[0]["state"] == "running"
        await asyncio.sleep(0.2)  # let one more snapshot land, as a database write would
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        release.set()
    kept = partial.stat().st_size
    assert 0 < kept <= HELD_AT

    second = start_worker(snapshot, settings_json, "--burst")
    try:
        _, errors = second.communicate(timeout=90)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, errors.decode()[-2000:]

    state = read_snapshot(snapshot)
    (job,) = state["download_jobs"]
    (image,) = state["os_images"]
    assert job["state"] == "succeeded", job
    assert job["attempt"] == 2
    assert image["file_status"] == "available"
    assert (settings.storage_dir / "objects" / image["image_id"]).read_bytes() == PAYLOAD
    assert not partial.exists()
    ranges = [headers.get("Range") for _, headers in source.request_headers]
    assert ranges == [None, f"bytes={kept}-"]
    actions = [event["action"] for event in state["audit_events"] if event.get("job_id") == job_id]
    assert actions == ["download_queued", "download_started", "download_started", "download_resumed", "download_succeeded"]
