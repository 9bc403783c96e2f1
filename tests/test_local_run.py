"""The one-command local run, as a real process: in-memory catalog and queue, embedded worker."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.source_server import Route, SourceServer

BASE = "/ux/nccm/os-image"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"server did not answer at {url}")


def test_run_downloads_in_one_process(tmp_path: Path, source: SourceServer) -> None:
    payload = os.urandom(200_000)
    source.routes["/eos.swi"] = Route(body=payload)
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")
    }
    env.update(PORT=str(port), API_KEY="local-test-key", STORAGE_DIR=str(tmp_path / "store"))
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}{BASE}"
        wait_until_up(base + "/", process)
        headers = {"Authorization": "local-test-key"}
        created = httpx.post(base + "/", headers=headers, json={
            "img_id": "eos", "organization": "default", "file_name": "EOS.swi",
            "file_path": source.url("/eos.swi"),
        })
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        assert httpx.post(base + "/trigger-osdownload/", headers=headers, json={"id": image_id}).status_code == 202

        state = None
        for _ in range(100):
            jobs = httpx.get(base + "/os-images-status/", headers=headers).json()
            state = jobs[0]["state"]
            if state not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert state == "succeeded"
        record = httpx.get(f"{base}/{image_id}/", headers=headers).json()
        assert record["image_size"] == str(len(payload))
        assert (tmp_path / "store" / "objects" / record["image_id"]).read_bytes() == payload
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert "LOST when it stops" in output
    assert "local-test-key" in output


def test_api_role_needs_both_urls() -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "app", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "MONGODB_URL and REDIS_URL is not set" in result.stderr


def test_unreachable_mongodb_stops_start() -> None:
    env = dict(os.environ, MONGODB_URL="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
               REDIS_URL="redis://127.0.0.1:6379/0")
    result = subprocess.run(
        [sys.executable, "-m", "app", "apikey", "list"], env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MongoDB at MONGODB_URL did not respond" in result.stderr


def test_apikey_create_needs_mongodb() -> None:
    env = {key: value for key, value in os.environ.items() if key != "MONGODB_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "apikey", "create", "--organization", "acme", "--name", "ui"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "MONGODB_URL is not set" in result.stderr


def test_unreachable_services_stop_worker() -> None:
    env = dict(os.environ, MONGODB_URL="mongodb://127.0.0.1:1/", REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run(
        [sys.executable, "-m", "app", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "did not respond" in result.stderr


def test_run_serves_health_metrics_and_json_logs(tmp_path: Path, source: SourceServer) -> None:
    payload = os.urandom(150_000)
    source.routes["/ios.bin"] = Route(body=payload)
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")
    }
    env.update(
        PORT=str(port), API_KEY="local-json-key", STORAGE_DIR=str(tmp_path / "store"),
        LOG_FORMAT="json", WORKER_HEARTBEAT_INTERVAL_S="0.2",
    )
    stdout, stderr = (tmp_path / "stdout.log").open("w"), (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "app", "run"], env=env, stdout=stdout, stderr=stderr)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root + "/healthz", process)
        healthcheck = subprocess.run(
            [sys.executable, "-m", "app", "healthcheck", "api"], env=env, capture_output=True,
            text=True, timeout=30,
        )
        assert healthcheck.returncode == 0, healthcheck.stderr

        # The embedded worker writes its first heartbeat once its startup has run.
        workers = None
        for _ in range(100):
            ready = httpx.get(root + "/readyz")
            assert ready.status_code == 200, ready.text
            workers = ready.json()["workers"]
            if workers["alive"]:
                break
            time.sleep(0.1)
        assert workers is not None
        assert workers["alive"] == 1

        headers = {"Authorization": "local-json-key", "X-Request-ID": "create-ios"}
        created = httpx.post(root + BASE + "/", headers=headers, json={
            "img_id": "ios", "organization": "default", "file_name": "ios.bin",
            "file_path": source.url("/ios.bin"),
        })
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        httpx.post(root + BASE + "/trigger-osdownload/", headers=headers, json={"id": image_id})
        state = None
        for _ in range(100):
            state = httpx.get(root + BASE + "/os-images-status/", headers=headers).json()[0]["state"]
            if state not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert state == "succeeded"

        metrics = httpx.get(root + "/metrics").text
    finally:
        process.terminate()
        process.wait(timeout=10)
        stdout.close()
        stderr.close()

    assert 'os_image_downloads_total{error_code="",outcome="succeeded"} 1.0' in metrics
    assert "os_image_workers_alive 1.0" in metrics
    assert "os_image_queue_depth 0.0" in metrics
    assert 'os_image_job_duration_seconds_count{outcome="succeeded"} 1.0' in metrics

    lines = (tmp_path / "stderr.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    in_request = [record for record in records if record.get("request_id") == "create-ios"]
    create_line = next(record for record in in_request if record["logger"] == "app.access")
    assert create_line["method"] == "POST"
    assert create_line["route"] == BASE + "/"
    assert create_line["status"] == 201
    done = next(record for record in records if record["message"].startswith("download done"))
    assert done["size_bytes"] == len(payload)
    assert done["image_record_id"] == image_id
    assert "local-json-key" not in "\n".join(lines)
