"""Benchmark the API's file upload and file download against baselines measured in the same run.

One run of this script:
- writes files of random bytes under the work directory: one of --upload-size for the timings,
  and one of each of --rss-sizes for the memory check;
- starts the API in a subprocess the way `python -m app run` does (uvicorn with its default
  event loop and HTTP parser, in-memory catalog and queue, embedded worker), with one extra
  route, `PUT /bench/drain`, that reads the request body and throws it away;
- upload: for --runs rounds, times `curl -T FILE` to the drain route and then to
  `PUT /ux/nccm/os-image/{id}/file` of a new image record, and checks that every upload ended
  stored, with the file's MD5 and size in the record;
- memory: for each of --rss-sizes and --rss-runs rounds, starts a fresh API process, uploads
  the file once and reads the process's peak RSS (VmHWM in /proc/PID/status);
- download: for --runs rounds, times `curl -o /dev/null` of the stored file from nginx
  (`sendfile on`, one worker process) and then from `GET /ux/nccm/os-image/{id}/file/`. Both read
  the same file, which is in the page cache because the upload has just written it.
With --profile-dir, it then measures the CPU time of each thread of the API process during one
more upload, and records one more upload and one more download with py-spy.

The helpers for processes, random files, idle CPUs and machine facts come from
bench/download.py. Before each timed run the script waits up to --idle-wait seconds for the CPUs
to be idle, and it flags runs during which other processes used more than 10% of the machine.

The upload route sends its response only after the file is fsynced, hashed with MD5 and
SHA-256, checked and renamed into place, so its time includes all of that. The drain route writes
nothing.

Run from the repository root with the project's virtualenv: `python bench/files.py`.
`python bench/files.py --help` lists the options. MB is 10**6 bytes, and RSS is in MiB.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request  # at module level, so FastAPI can resolve the drain route's annotation

# bench/ is on sys.path when this file runs as a script, so its sibling imports by name.
from download import (
    CLOCK_TICKS_PER_S,
    GIB,
    MAX_OTHER_LOAD_SHARE,
    MIB,
    ProcessGroups,
    cpu_of_others,
    describe_app,
    describe_machine,
    format_size,
    mb_per_s,
    parse_size,
    parse_sizes,
    read_process_cpu_s,
    settle_disk,
    snapshot_process_cpu,
    timeout_for,
    wait_for_idle_machine,
    write_random_file,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = REPO_ROOT / "bench" / "work"
API_PREFIX = "/ux/nccm/os-image"
DRAIN_PATH = "/bench/drain"
ORGANIZATION = "default"  # the organization that API_KEY is registered for in the local run
UPLOAD_FILE_NAME = "bench-upload.bin"

# Targets: upload throughput at least 85% of the drain route's, peak RSS growing by at most
# 32 MB between the smallest and the largest upload, download throughput at least 80% of nginx's.
TARGET_UPLOAD_RATIO = 0.85
TARGET_RSS_GROWTH_MB = 32.0
TARGET_DOWNLOAD_RATIO = 0.80

# Free space kept on top of what the run writes, so the benchmark never fills the disk.
DISK_MARGIN_BYTES = 2 * GIB
STARTUP_TIMEOUT_S = 60.0
PY_SPY_RATE_HZ = 250


# --- API server (subprocess) ------------------------------------------------------------------


def serve_api() -> None:
    """Run the app as `python -m app run` does, with PUT /bench/drain added, and print the port first.

    Settings come from the environment, as for the local run, but a `.env` file is ignored.
    Threads get their Python names as OS names, for the CPU time per thread.
    """
    import uvicorn

    from app.config import Settings
    from app.logging_setup import configure_logging
    from app.main import create_app

    name_native_threads()
    settings = Settings(_env_file=None)
    if not settings.is_embedded:
        sys.exit("error: unset MONGODB_URL and REDIS_URL: the benchmark runs the in-memory local run")
    configure_logging(settings)
    app = create_app(settings)

    @app.put(DRAIN_PATH, include_in_schema=False)
    async def drain(request: Request) -> dict[str, int]:
        received_bytes = 0
        async for chunk in request.stream():
            received_bytes += len(chunk)
        return {"received_bytes": received_bytes}

    # Binding here, before uvicorn starts, gives a free port without a race with other programs.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    config = uvicorn.Config(
        app, log_level=settings.log_level.lower(), log_config=None, access_log=False
    )
    uvicorn.Server(config).run(sockets=[listener])


def name_native_threads() -> None:
    """Give every Python thread started from now on its Python name as its OS thread name.

    Python 3.11 leaves the OS name of every thread at the program's name, so /proc/PID/task/*/comm
    cannot tell the hashing and writing threads apart without this.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_name = 15  # PR_SET_NAME of prctl(2). Linux keeps at most 15 bytes of a thread name.
    run = threading.Thread.run

    def run_with_native_name(self: threading.Thread) -> None:
        libc.prctl(pr_set_name, self.name.encode()[:15], 0, 0, 0)
        run(self)

    threading.Thread.run = run_with_native_name  # type: ignore[method-assign]


@dataclass
class ApiServer:
    process: subprocess.Popen[Any]
    base_url: str
    api_key: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": self.api_key}, timeout=60.0
        )


def start_api(
    processes: ProcessGroups, app_dir: Path, storage_dir: Path, log_path: Path
) -> ApiServer:
    """Start the API on 127.0.0.1 in a new process and wait until /healthz returns 200."""
    api_key = "bench-" + secrets.token_urlsafe(24)
    env = {name: value for name, value in os.environ.items() if name not in ("MONGODB_URL", "REDIS_URL")}
    env.update(
        API_KEY=api_key,
        DEFAULT_ORGANIZATION=ORGANIZATION,
        STORAGE_DIR=str(storage_dir),
        # Imports the `app` package under `app_dir`, whatever `app` the environment has installed.
        PYTHONPATH=os.pathsep.join(filter(None, [str(app_dir), os.environ.get("PYTHONPATH")])),
    )
    with open(log_path, "ab") as log:
        process = processes.start(
            [sys.executable, str(Path(__file__).resolve()), "serve-api"],
            stdout=subprocess.PIPE, stderr=log, cwd=app_dir, env=env, text=True,
        )
    assert process.stdout is not None
    port_line = process.stdout.readline().strip()
    if not port_line.isdigit():
        processes.stop(process)
        raise RuntimeError(f"API server did not start (printed {port_line!r}): see {log_path}")
    server = ApiServer(process, f"http://127.0.0.1:{port_line}", api_key)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(server.base_url + "/healthz", timeout=5.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            processes.stop(process)
            raise RuntimeError(f"API server did not become healthy: see {log_path}")
        time.sleep(0.1)


def create_image(server: ApiServer, img_id: str, md5: str) -> str:
    """Create an image record with a declared MD5 and return its id."""
    with server.client() as client:
        response = client.post(f"{API_PREFIX}/", json={
            "img_id": img_id, "organization": ORGANIZATION, "file_name": UPLOAD_FILE_NAME,
            "md5_hash": md5,
        })
    if response.status_code != 201:
        raise RuntimeError(f"creating image {img_id} failed: HTTP {response.status_code} {response.text}")
    return response.json()["id"]


def read_image(server: ApiServer, image_id: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"{API_PREFIX}/{image_id}/")
    if response.status_code != 200:
        raise RuntimeError(f"reading image {image_id} failed: HTTP {response.status_code} {response.text}")
    return response.json()


def delete_image(server: ApiServer, image_id: str) -> None:
    """Delete the record, which also removes its stored file."""
    with server.client() as client:
        response = client.delete(f"{API_PREFIX}/{image_id}/")
    if response.status_code not in (200, 204):
        raise RuntimeError(f"deleting image {image_id} failed: HTTP {response.status_code} {response.text}")


def check_stored(server: ApiServer, image_id: str, size_bytes: int, md5: str) -> dict[str, Any]:
    """Raise unless the record marks its file available and MD5-verified, with this size and MD5."""
    record = read_image(server, image_id)
    problems = []
    if record["file_status"] != "available":
        problems.append(f"file_status is {record['file_status']!r}")
    if record["md5_hash"] != md5 or not record["md5_verified"]:
        problems.append(f"md5_hash is {record['md5_hash']!r} (verified: {record['md5_verified']})")
    if record["image_size"] != str(size_bytes):
        problems.append(f"image_size is {record['image_size']!r}")
    if problems:
        raise RuntimeError(
            f"upload to image {image_id} was not stored as expected ({', '.join(problems)}; "
            f"expected {size_bytes} bytes with MD5 {md5})"
        )
    return record


def read_vmhwm_kib(pid: int) -> int:
    """Return the peak resident set size of process `pid`, from /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"VmHWM is missing from /proc/{pid}/status")


# --- nginx ------------------------------------------------------------------------------------


NGINX_CONFIG = """\
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port() -> int:
    """Return a port on 127.0.0.1 that is free now (another program could take it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_version(nginx: str) -> str:
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


def start_nginx(
    processes: ProcessGroups, nginx: str, directory: Path, root: Path
) -> tuple[subprocess.Popen[Any], int]:
    """Start nginx in the foreground with a config written to `directory`, and return it and its port."""
    port = free_port()
    config_path = directory / "nginx.conf"
    config_path.write_text(NGINX_CONFIG.format(directory=directory, port=port, root=root))
    command = [nginx, "-p", str(directory), "-c", str(config_path), "-e", str(directory / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected {config_path}: {check.stderr.strip()}")
    process = processes.start(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            httpx.head(f"http://127.0.0.1:{port}/", timeout=5.0)
            return process, port
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            processes.stop(process)
            error_log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
            raise RuntimeError(f"nginx did not start on port {port}: {error_log.strip()}")
        time.sleep(0.1)


def child_pids(parent_pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == parent_pid:
            children.add(int(entry.name))
    return children


# --- Timed curl runs --------------------------------------------------------------------------


def run_curl(
    processes: ProcessGroups, arguments: list[str], size_bytes: int, measured_pids: set[int]
) -> dict[str, Any]:
    """Run curl with `arguments`, time it, and account the CPU of curl, the server and others.

    curl prints the response body (if any), then a last line with the HTTP status, the bytes
    uploaded and the bytes downloaded.
    """
    command = ["curl", "-s", "-S", *arguments, "-w", r"\n%{http_code} %{size_upload} %{size_download}"]
    server_cpu_before = sum(read_process_cpu_s(pid) for pid in measured_pids)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot_before = snapshot_process_cpu()
    code, stdout, stderr, wall_s = processes.run(command, timeout_for(size_bytes))
    snapshot_after = snapshot_process_cpu()
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu_after = sum(read_process_cpu_s(pid) for pid in measured_pids)
    if code != 0:
        raise RuntimeError(f"curl failed with exit code {code}: {stderr.strip()}")
    body, _, last_line = stdout.rpartition("\n")
    status, uploaded, downloaded = last_line.split()
    others_s, kernel_threads_s = cpu_of_others(
        snapshot_before, snapshot_after, {os.getpid(), *measured_pids}
    )
    return {
        "wall_s": wall_s,
        "status": int(status),
        "uploaded_bytes": int(uploaded),
        "downloaded_bytes": int(downloaded),
        "body": body,
        "server_cpu_s": server_cpu_after - server_cpu_before,
        "curl_cpu_s": (usage_after.ru_utime + usage_after.ru_stime)
        - (usage_before.ru_utime + usage_before.ru_stime),
        "other_cpu_s": others_s,
        "kernel_threads_cpu_s": kernel_threads_s,
    }


def upload_with_curl(
    processes: ProcessGroups, server: ApiServer, path: str, source: Path, size_bytes: int
) -> dict[str, Any]:
    # No trailing slash: with one, `curl -T` appends the local file name to the URL.
    arguments = ["-T", str(source), "-H", f"Authorization: {server.api_key}", server.base_url + path]
    run = run_curl(processes, arguments, size_bytes, {server.pid})
    if run["uploaded_bytes"] != size_bytes:
        raise RuntimeError(f"curl uploaded {run['uploaded_bytes']} bytes to {path}, expected {size_bytes}")
    return run


def download_with_curl(
    processes: ProcessGroups, url: str, size_bytes: int, measured_pids: set[int], api_key: str | None = None
) -> dict[str, Any]:
    arguments = ["-o", "/dev/null", url]
    if api_key is not None:
        arguments = ["-H", f"Authorization: {api_key}", *arguments]
    run = run_curl(processes, arguments, size_bytes, measured_pids)
    if run["status"] != 200 or run["downloaded_bytes"] != size_bytes:
        raise RuntimeError(
            f"GET {url} returned HTTP {run['status']} with {run['downloaded_bytes']} bytes, "
            f"expected 200 with {size_bytes}"
        )
    return run


def other_load_share(run: dict[str, Any]) -> float:
    """Share of all CPUs that other user-space processes used during a run."""
    return run["other_cpu_s"] / (run["wall_s"] * (os.cpu_count() or 1))


def describe_run(run: dict[str, Any], size_bytes: int) -> str:
    text = (
        f"{run['wall_s']:.2f} s, {mb_per_s(size_bytes, run['wall_s']):.0f} MB/s, server CPU "
        f"{run['server_cpu_s']:.2f} s, curl CPU {run['curl_cpu_s']:.2f} s, kernel threads "
        f"{run['kernel_threads_cpu_s']:.2f} s, other processes {run['other_cpu_s']:.2f} s"
    )
    if other_load_share(run) > MAX_OTHER_LOAD_SHARE:
        text += " [disturbed by other load]"
    return text


def prepare_run(idle_wait_s: float) -> None:
    settle_disk()
    wait_for_idle_machine(idle_wait_s)


# --- The three measurements -------------------------------------------------------------------


def measure_uploads(
    args: argparse.Namespace, processes: ProcessGroups, server: ApiServer, source: Path,
    size_bytes: int, md5: str,
) -> tuple[dict[str, Any], str]:
    """Alternate drain and upload rounds on one API process, and return the figures and the last image id."""
    print(f"\nupload of {format_size(size_bytes)}: drain route, then PUT .../{{id}}/file", flush=True)
    drain_runs: list[dict[str, Any]] = []
    upload_runs: list[dict[str, Any]] = []
    image_id = ""
    for run in range(1, args.runs + 1):
        prepare_run(args.idle_wait)
        drain = upload_with_curl(processes, server, DRAIN_PATH, source, size_bytes)
        received = json.loads(drain["body"]).get("received_bytes") if drain["status"] == 200 else None
        if received != size_bytes:
            raise RuntimeError(f"drain route returned HTTP {drain['status']} {drain['body']!r}")
        drain_runs.append(drain)
        print(f"  run {run}/{args.runs} drain:  {describe_run(drain, size_bytes)}", flush=True)

        if image_id:
            delete_image(server, image_id)
        image_id = create_image(server, f"bench-upload-{run}", md5)
        prepare_run(args.idle_wait)
        upload = upload_with_curl(processes, server, f"{API_PREFIX}/{image_id}/file", source, size_bytes)
        if upload["status"] != 201:
            raise RuntimeError(f"upload returned HTTP {upload['status']}: {upload['body']}")
        check_stored(server, image_id, size_bytes, md5)
        upload_runs.append(upload)
        print(f"  run {run}/{args.runs} upload: {describe_run(upload, size_bytes)}; stored, MD5 matches", flush=True)

    drain_s = statistics.median(run["wall_s"] for run in drain_runs)
    upload_s = statistics.median(run["wall_s"] for run in upload_runs)
    summary = {
        "size_bytes": size_bytes,
        "drain_mb_s": mb_per_s(size_bytes, drain_s),
        "upload_mb_s": mb_per_s(size_bytes, upload_s),
        "ratio": drain_s / upload_s,
        "drain_server_cpu_s": statistics.median(run["server_cpu_s"] for run in drain_runs),
        "upload_server_cpu_s": statistics.median(run["server_cpu_s"] for run in upload_runs),
        "disturbed_runs": sum(other_load_share(run) > MAX_OTHER_LOAD_SHARE for run in [*drain_runs, *upload_runs]),
        "drain_runs": drain_runs,
        "upload_runs": upload_runs,
    }
    return summary, image_id


def measure_peak_rss(
    args: argparse.Namespace, processes: ProcessGroups, run_dir: Path, sources: dict[int, tuple[Path, str]]
) -> dict[str, Any]:
    """Upload each file once per round into a fresh API process, and return its peak RSS before and after."""
    print("\npeak RSS of the API process, one upload per fresh process", flush=True)
    by_size: list[dict[str, Any]] = []
    for size_bytes, (source, md5) in sorted(sources.items()):
        rounds = []
        for run in range(1, args.rss_runs + 1):
            storage_dir = run_dir / f"rss-storage-{size_bytes}-{run}"
            server = start_api(processes, args.app_dir, storage_dir, run_dir / "api-rss.log")
            try:
                image_id = create_image(server, "bench-rss", md5)
                before_kib = read_vmhwm_kib(server.pid)
                prepare_run(args.idle_wait)
                upload = upload_with_curl(processes, server, f"{API_PREFIX}/{image_id}/file", source, size_bytes)
                peak_kib = read_vmhwm_kib(server.pid)
                if upload["status"] != 201:
                    raise RuntimeError(f"upload returned HTTP {upload['status']}: {upload['body']}")
                check_stored(server, image_id, size_bytes, md5)
            finally:
                processes.stop(server.process)
            shutil.rmtree(storage_dir)
            rounds.append({"before_kib": before_kib, "peak_kib": peak_kib, **upload})
            print(
                f"  {format_size(size_bytes)} run {run}/{args.rss_runs}: peak RSS {peak_kib / 1024:.1f} MiB, "
                f"{before_kib / 1024:.1f} MiB before the upload; {describe_run(upload, size_bytes)}",
                flush=True,
            )
        by_size.append({
            "size_bytes": size_bytes,
            "before_mib": statistics.median(item["before_kib"] for item in rounds) / 1024,
            "peak_mib": statistics.median(item["peak_kib"] for item in rounds) / 1024,
            "rounds": rounds,
        })
    growth_mib = by_size[-1]["peak_mib"] - by_size[0]["peak_mib"]
    return {"sizes": by_size, "growth_mib": growth_mib, "growth_mb": growth_mib * MIB / 10**6}


def measure_downloads(
    args: argparse.Namespace, processes: ProcessGroups, server: ApiServer, run_dir: Path,
    image_id: str, size_bytes: int, md5: str,
) -> dict[str, Any]:
    """Alternate nginx and API downloads of the same stored file."""
    record = read_image(server, image_id)
    storage_objects = run_dir / "storage" / "objects"
    stored = storage_objects / record["image_id"]
    nginx_dir = run_dir / "nginx"
    nginx_dir.mkdir()
    nginx, port = start_nginx(processes, args.nginx, nginx_dir, storage_objects)
    nginx_pids = {nginx.pid, *child_pids(nginx.pid)}
    nginx_url = f"http://127.0.0.1:{port}/{stored.name}"
    api_url = f"{server.base_url}{API_PREFIX}/{image_id}/file/"
    print(
        f"\ndownload of {format_size(size_bytes)}: nginx {nginx_version(args.nginx)} "
        f"(pid {nginx.pid}, {nginx_url}), then the API", flush=True,
    )
    try:
        # One untimed check that the API serves the stored bytes unchanged.
        script = 'set -o pipefail; curl -s -S -H "Authorization: $0" "$1" | md5sum'
        code, stdout, stderr, _ = processes.run(
            ["bash", "-c", script, server.api_key, api_url], timeout_for(size_bytes)
        )
        if code != 0 or stdout.split()[:1] != [md5]:
            raise RuntimeError(f"GET {api_url} served MD5 {stdout.strip()!r}, expected {md5}: {stderr.strip()}")

        nginx_runs: list[dict[str, Any]] = []
        api_runs: list[dict[str, Any]] = []
        for run in range(1, args.runs + 1):
            prepare_run(args.idle_wait)
            nginx_run = download_with_curl(processes, nginx_url, size_bytes, nginx_pids)
            nginx_runs.append(nginx_run)
            print(f"  run {run}/{args.runs} nginx: {describe_run(nginx_run, size_bytes)}", flush=True)
            prepare_run(args.idle_wait)
            api_run = download_with_curl(processes, api_url, size_bytes, {server.pid}, server.api_key)
            api_runs.append(api_run)
            print(f"  run {run}/{args.runs} API:   {describe_run(api_run, size_bytes)}", flush=True)
    finally:
        processes.stop(nginx)

    nginx_s = statistics.median(run["wall_s"] for run in nginx_runs)
    api_s = statistics.median(run["wall_s"] for run in api_runs)
    return {
        "size_bytes": size_bytes,
        "nginx_version": nginx_version(args.nginx),
        "nginx_mb_s": mb_per_s(size_bytes, nginx_s),
        "api_mb_s": mb_per_s(size_bytes, api_s),
        "ratio": nginx_s / api_s,
        "nginx_cpu_s": statistics.median(run["server_cpu_s"] for run in nginx_runs),
        "api_server_cpu_s": statistics.median(run["server_cpu_s"] for run in api_runs),
        "disturbed_runs": sum(other_load_share(run) > MAX_OTHER_LOAD_SHARE for run in [*nginx_runs, *api_runs]),
        "nginx_runs": nginx_runs,
        "api_runs": api_runs,
    }


# --- Profiles ---------------------------------------------------------------------------------


def find_py_spy() -> str | None:
    beside_python = Path(sys.executable).parent / "py-spy"
    return str(beside_python) if beside_python.is_file() else shutil.which("py-spy")


def profile_during(
    processes: ProcessGroups, py_spy: str, pid: int, output: Path, action: Any
) -> None:
    """Sample process `pid` with py-spy (all threads, raw collapsed stacks) while `action()` runs."""
    command = [
        py_spy, "record", "--pid", str(pid), "--rate", str(PY_SPY_RATE_HZ), "--threads",
        "--format", "raw", "--output", str(output),
    ]
    sampler = processes.start(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # py-spy needs a moment to attach
    if sampler.poll() is not None:
        raise RuntimeError(f"py-spy record failed: {sampler.stderr.read().strip() if sampler.stderr else ''}")
    try:
        action()
    finally:
        # py-spy writes its output when interrupted, as after Ctrl-C.
        os.kill(sampler.pid, signal.SIGINT)
        try:
            sampler.wait(timeout=30)
        finally:
            processes.stop(sampler)


def summarise_profile(path: Path, top: int = 15) -> list[str]:
    """Return the running time per thread and the heaviest frames of the event loop's thread.

    In py-spy's raw format each line is `frame;frame;...;frame COUNT`, outermost first, and with
    --threads the first frame names the thread. py-spy leaves out samples in which the OS reports
    the thread idle. Time spent waiting for a CPU, and some waits on locks, still count, so the
    totals can exceed the threads' CPU time: `measure_thread_cpu` gives that.
    """
    per_thread: Counter[str] = Counter()
    self_frames: dict[str, Counter[str]] = {}
    inclusive_frames: dict[str, Counter[str]] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        per_thread[thread] += count
        if frames:
            self_frames.setdefault(thread, Counter())[frames[-1]] += count
            for frame in set(frames):
                inclusive_frames.setdefault(thread, Counter())[frame] += count
    total = sum(per_thread.values())
    if not total:
        return [f"{path}: no samples"]
    lines = [
        f"{path.name}: {total} samples at {PY_SPY_RATE_HZ} Hz "
        f"(about {total / PY_SPY_RATE_HZ:.1f} s of running threads)"
    ]
    for thread, count in per_thread.most_common():
        lines.append(f"  {thread}: {count / PY_SPY_RATE_HZ:.2f} s")
    # The event loop runs in the main thread, which is the serial part of the request path.
    busiest = next(
        (thread for thread in per_thread if "MainThread" in thread), per_thread.most_common(1)[0][0]
    )
    lines.append(f"  heaviest frames of {busiest}, self time:")
    for frame, count in self_frames.get(busiest, Counter()).most_common(top):
        lines.append(f"    {count / PY_SPY_RATE_HZ:6.2f} s  {frame}")
    # Frames on nearly every stack (the event loop, the middleware chain) carry no information,
    # so the list starts below them.
    busiest_total = per_thread[busiest]
    lines.append(f"  heaviest frames of {busiest} on less than 90% of its samples, including callees:")
    inclusive = [
        (frame, count) for frame, count in inclusive_frames.get(busiest, Counter()).most_common()
        if count < 0.9 * busiest_total
    ]
    for frame, count in inclusive[:top]:
        lines.append(f"    {count / PY_SPY_RATE_HZ:6.2f} s  {frame}")
    return lines


def read_thread_cpu_s(pid: int) -> dict[tuple[int, str], float]:
    """Return the user plus system CPU seconds of each thread of `pid`, keyed by thread id and name."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = text[text.rindex(")") + 2:].split()
        if int(task.name) == pid:
            name = "MainThread"
        threads[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
    return threads


def measure_thread_cpu(pid: int, action: Any, interval_s: float = 0.05) -> dict[str, float]:
    """Run `action()` and return the CPU seconds each thread of `pid` used meanwhile, by thread name.

    The upload's hashing and writing threads exist only during the request, so their CPU time is
    polled every `interval_s` and the last value read counts. Up to one interval of their time
    before they end is missed.
    """
    before = read_thread_cpu_s(pid)
    latest = dict(before)
    done = threading.Event()

    def poll() -> None:
        while not done.wait(interval_s):
            latest.update(read_thread_cpu_s(pid))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        action()
    finally:
        done.set()
        poller.join()
    latest.update(read_thread_cpu_s(pid))

    by_name: Counter[str] = Counter()
    for (tid, name), cpu_s in latest.items():
        by_name[name] += cpu_s - before.get((tid, name), 0.0)
    return {name: cpu_s for name, cpu_s in by_name.most_common() if cpu_s > 0}


def record_profiles(
    processes: ProcessGroups, server: ApiServer, profile_dir: Path, source: Path, size_bytes: int,
    md5: str, image_id: str,
) -> dict[str, float]:
    """Measure the CPU time per thread of one more upload, then profile one upload and one download.

    Returns the CPU seconds per thread name of that upload.
    """
    py_spy = find_py_spy()
    if py_spy is None:
        raise RuntimeError("py-spy not found beside the Python interpreter or in PATH: pip install py-spy")
    profile_dir.mkdir(parents=True, exist_ok=True)

    cpu_image_id = create_image(server, "bench-thread-cpu", md5)
    thread_cpu = measure_thread_cpu(
        server.pid,
        lambda: upload_with_curl(processes, server, f"{API_PREFIX}/{cpu_image_id}/file", source, size_bytes),
    )
    check_stored(server, cpu_image_id, size_bytes, md5)
    delete_image(server, cpu_image_id)
    print(f"\nCPU time per thread of the API process during one more {format_size(size_bytes)} upload:")
    for name, cpu_s in thread_cpu.items():
        print(f"  {name}: {cpu_s:.2f} s")

    print(f"\nprofiles with py-spy into {profile_dir}", flush=True)
    upload_image_id = create_image(server, "bench-profile", md5)
    upload_profile = profile_dir / "upload.txt"
    profile_during(
        processes, py_spy, server.pid, upload_profile,
        lambda: upload_with_curl(processes, server, f"{API_PREFIX}/{upload_image_id}/file", source, size_bytes),
    )
    check_stored(server, upload_image_id, size_bytes, md5)
    delete_image(server, upload_image_id)

    download_profile = profile_dir / "download.txt"
    api_url = f"{server.base_url}{API_PREFIX}/{image_id}/file/"
    profile_during(
        processes, py_spy, server.pid, download_profile,
        lambda: download_with_curl(processes, api_url, size_bytes, {server.pid}, server.api_key),
    )
    for profile in (upload_profile, download_profile):
        print("\n".join(summarise_profile(profile)), flush=True)
    return thread_cpu


# --- Report -----------------------------------------------------------------------------------


def verdict_text(met: bool) -> str:
    return "met" if met else "MISSED"


def print_summary(results: dict[str, Any], runs: int) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    print(f"\nMedians over {runs} round{'' if runs == 1 else 's'} (MB = 10^6 bytes):")
    upload = results["upload"]
    verdict["upload_ratio"] = upload["ratio"]
    verdict["upload_target_met"] = upload["ratio"] >= TARGET_UPLOAD_RATIO
    print(
        f"upload {format_size(upload['size_bytes'])}: drain {upload['drain_mb_s']:.0f} MB/s "
        f"(server CPU {upload['drain_server_cpu_s']:.2f} s), upload {upload['upload_mb_s']:.0f} MB/s "
        f"(server CPU {upload['upload_server_cpu_s']:.2f} s); upload / drain {upload['ratio']:.2f}, "
        f"target >= {TARGET_UPLOAD_RATIO:.2f}: {verdict_text(verdict['upload_target_met'])}"
    )

    rss = results["rss"]
    for size in rss["sizes"]:
        print(
            f"peak RSS with a {format_size(size['size_bytes'])} upload: {size['peak_mib']:.1f} MiB "
            f"({size['before_mib']:.1f} MiB before the upload)"
        )
    verdict["rss_growth_mb"] = rss["growth_mb"]
    verdict["rss_target_met"] = rss["growth_mb"] <= TARGET_RSS_GROWTH_MB
    print(
        f"peak RSS growth {format_size(rss['sizes'][0]['size_bytes'])} -> "
        f"{format_size(rss['sizes'][-1]['size_bytes'])}: {rss['growth_mib']:+.1f} MiB "
        f"({rss['growth_mb']:+.1f} MB), target <= {TARGET_RSS_GROWTH_MB:.0f} MB: "
        f"{verdict_text(verdict['rss_target_met'])}"
    )

    download = results["download"]
    verdict["download_ratio"] = download["ratio"]
    verdict["download_target_met"] = download["ratio"] >= TARGET_DOWNLOAD_RATIO
    print(
        f"download {format_size(download['size_bytes'])}: nginx {download['nginx_mb_s']:.0f} MB/s "
        f"(nginx CPU {download['nginx_cpu_s']:.2f} s), API {download['api_mb_s']:.0f} MB/s "
        f"(server CPU {download['api_server_cpu_s']:.2f} s); API / nginx {download['ratio']:.2f}, "
        f"target >= {TARGET_DOWNLOAD_RATIO:.2f}: {verdict_text(verdict['download_target_met'])}"
    )

    disturbed = upload["disturbed_runs"] + download["disturbed_runs"]
    verdict["disturbed_runs"] = disturbed
    if disturbed:
        print(
            f"WARNING: during {disturbed} of {4 * runs} timed runs other processes used more than "
            f"{MAX_OTHER_LOAD_SHARE:.0%} of the CPUs, so these figures are not reliable: rerun on an idle machine"
        )
    return verdict


# --- Main -------------------------------------------------------------------------------------


def check_requirements(args: argparse.Namespace) -> None:
    missing = [tool for tool in ("bash", "curl", "md5sum", "findmnt") if shutil.which(tool) is None]
    if shutil.which(args.nginx) is None:
        missing.append(args.nginx)
    if missing:
        sys.exit(
            f"error: {', '.join(missing)} not found in PATH; install them (nginx: apt-get install "
            "nginx) or pass --nginx PATH"
        )
    # Source files of every size, plus one stored upload of the largest size at a time.
    needed = args.upload_size + sum(args.rss_sizes) + max(args.upload_size, *args.rss_sizes) + DISK_MARGIN_BYTES
    free = shutil.disk_usage(args.work_dir).free
    if free < needed:
        sys.exit(
            f"error: {free / GIB:.1f} GiB free under {args.work_dir}, the benchmark needs "
            f"{needed / GIB:.1f} GiB: free space or pass smaller sizes"
        )


def write_sources(run_dir: Path, sizes: set[int]) -> dict[int, tuple[Path, str]]:
    sources = {}
    for size_bytes in sorted(sizes):
        path = run_dir / "source" / f"random-{size_bytes}.bin"
        print(f"writing a random source file of {format_size(size_bytes)} ...", flush=True)
        sources[size_bytes] = (path, write_random_file(path, size_bytes))
    return sources


def run_benchmark(args: argparse.Namespace) -> int:
    args.work_dir.mkdir(parents=True, exist_ok=True)
    check_requirements(args)
    machine = describe_machine(args.work_dir)
    print("machine: " + ", ".join(f"{key}={value}" for key, value in machine.items()))
    app = describe_app(args.app_dir)
    print(f"code measured: {app}")

    # SIGTERM would end the process without running `finally`, which stops the servers, so turn
    # it into SystemExit.
    signal.signal(signal.SIGTERM, lambda signal_number, frame: sys.exit(128 + signal_number))
    run_dir = Path(tempfile.mkdtemp(prefix="files-", dir=args.work_dir))
    # mkdtemp creates the directory with mode 0700. nginx's worker runs as an unprivileged user
    # when started by root, and it has to reach the stored file below this directory.
    run_dir.chmod(0o755)
    (run_dir / "source").mkdir()
    processes = ProcessGroups()
    results: dict[str, Any] = {"machine": machine, "app": app, "runs": args.runs}
    try:
        sources = write_sources(run_dir, {args.upload_size, *args.rss_sizes})
        source, md5 = sources[args.upload_size]
        server = start_api(processes, args.app_dir, run_dir / "storage", run_dir / "api.log")
        print(f"API: uvicorn, pid {server.pid}, {server.base_url}", flush=True)
        results["upload"], image_id = measure_uploads(args, processes, server, source, args.upload_size, md5)
        results["download"] = measure_downloads(args, processes, server, run_dir, image_id, args.upload_size, md5)
        if args.profile_dir is not None:
            results["upload_thread_cpu_s"] = record_profiles(
                processes, server, args.profile_dir, source, args.upload_size, md5, image_id
            )
        processes.stop(server.process)

        results["rss"] = measure_peak_rss(
            args, processes, run_dir, {size: sources[size] for size in args.rss_sizes}
        )
        results["verdict"] = print_summary(results, args.runs)
        if args.json is not None:
            for part in ("upload", "download"):
                for key in ("drain_runs", "upload_runs", "nginx_runs", "api_runs"):
                    for run in results[part].get(key, []):
                        run.pop("body", None)
            for size in results["rss"]["sizes"]:
                for run in size["rounds"]:
                    run.pop("body", None)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
            print(f"results written to {args.json}")
    finally:
        processes.stop_all()
        if args.keep:
            print(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Compare the API's upload throughput with a route that only drains the body, "
        "its peak RSS across upload sizes, and its download throughput with nginx.",
    )
    parser.add_argument(
        "--upload-size", type=parse_size, default=parse_size("1"),
        help="GiB of the file that the throughput rounds upload and download (default: 1)",
    )
    parser.add_argument(
        "--rss-sizes", type=parse_sizes, default=parse_sizes("1,4"),
        help="GiB uploaded into fresh API processes for the peak RSS, comma-separated "
        "(default: 1,4); the growth is taken between the smallest and the largest",
    )
    parser.add_argument(
        "--runs", type=int, default=5,
        help="rounds of drain then upload, and of nginx then API download (default: 5)",
    )
    parser.add_argument(
        "--rss-runs", type=int, default=3, help="fresh API processes per RSS size (default: 3)"
    )
    parser.add_argument(
        "--nginx", default="nginx", help="nginx executable (default: nginx from PATH)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR,
        help=f"directory for the source files, storage and nginx files (default: {DEFAULT_WORK_DIR})",
    )
    parser.add_argument(
        "--app-dir", type=Path, default=REPO_ROOT,
        help="directory containing the `app` package that the API imports (default: this "
        "checkout); e.g. a `git archive` copy of one commit, which later edits do not change",
    )
    parser.add_argument(
        "--idle-wait", type=float, default=60.0,
        help="seconds to wait before each timed run for other processes to leave the CPUs idle "
        "(default: 60); the run starts anyway after that and is flagged if it was disturbed",
    )
    parser.add_argument(
        "--profile-dir", type=Path,
        help="after the timed rounds, record one upload and one download of the API process "
        "with py-spy into this directory (upload.txt, download.txt) and print a summary",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory under --work-dir at the end"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")

    commands = parser.add_subparsers(dest="command", help="internal: the subprocess the benchmark starts")
    commands.add_parser("serve-api", help="run the API with PUT /bench/drain on 127.0.0.1 and print the port")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.command == "serve-api":
        serve_api()
        return 0
    if args.runs < 1 or args.rss_runs < 1:
        sys.exit("error: --runs and --rss-runs must be at least 1")
    args.app_dir = args.app_dir.resolve()
    args.work_dir = args.work_dir.resolve()
    if not (args.app_dir / "app" / "main.py").is_file():
        sys.exit(f"error: {args.app_dir} has no app/main.py: pass the directory above app/")
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
