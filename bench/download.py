"""Benchmark the download worker against `curl -s URL | tee FILE | md5sum` on a local source.

One run of this script:
- starts a source HTTP server on 127.0.0.1 in a subprocess (ThreadingHTTPServer that sends each
  file with sendfile(2), so the source copies nothing in user space);
- for each size in --sizes, writes a file of random bytes under the work directory and then, for
  --runs rounds, times the shell pipeline and the worker job one after the other;
- runs the worker job the way the arq worker does, in its own Python process: Beanie on the
  in-memory database, an OsImage queued with `trigger_download` on the in-memory queue, and
  `download_image(ctx, job_id)` with the worker's Settings, Storage and HTTP client;
- reads the peak RSS (VmHWM) of each worker process, checks that the job succeeded and that the
  MD5 of the stored file is the source's, and prints medians and the ratios against the targets.

Before each run the script waits up to --idle-wait seconds for the CPUs to be idle. It reports
the CPU time that other processes used during each run and flags runs where they used more than
10% of the machine, because on a shared 2-CPU machine such load changes the timings a lot.

The worker fsyncs the file before it checks the MD5 and commits it. The pipeline does not, so a
second figure times the pipeline followed by `sync FILE` (an fsync of that file).

Run from the repository root with the project's virtualenv: `python bench/download.py`.
`python bench/download.py --help` lists the options. MB is 10**6 bytes; RSS is in MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.server
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = REPO_ROOT / "bench" / "work"

GIB = 1024**3
MIB = 1024**2
MB = 10**6

# Targets: worker throughput at least the pipeline's, and peak RSS of the worker process not
# growing by more than 32 MiB between the smallest and the largest file.
TARGET_THROUGHPUT_RATIO = 1.0
TARGET_RSS_GROWTH_MIB = 32.0

SOURCE_FILE_NAME = "image.bin"
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
KTHREADD_PID = 2  # parent of every kernel thread on Linux
# A run during which other processes used more than this share of all CPUs is flagged, because
# its timing then depends on that load as much as on the code measured.
MAX_OTHER_LOAD_SHARE = 0.10
RANDOM_BLOCK_BYTES = 16 * MIB
# Free space kept on top of what the run writes, so the benchmark never fills the disk.
DISK_MARGIN_BYTES = 2 * GIB
# Time limits per process. They only stop a hung run, so they are generous.
MIN_TIMEOUT_S = 120.0
SLOWEST_EXPECTED_BYTES_PER_S = 10 * MB


# --- Source server (subprocess) ---------------------------------------------------------------


class SendfileHandler(http.server.BaseHTTPRequestHandler):
    """Request handler for the files of one directory, with Content-Length and a sendfile(2) body."""

    protocol_version = "HTTP/1.1"
    directory: Path = Path(".")

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, *, send_body: bool) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = self.directory / name
        if not name or "/" in name or not path.is_file():
            self.send_error(404, f"no file {name!r} in the source directory")
            return
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            if send_body:
                try:
                    self.connection.sendfile(file)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(directory: Path) -> None:
    """Serve `directory` on 127.0.0.1 at a free port, print the port, and run until killed."""
    SendfileHandler.directory = directory.resolve()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SendfileHandler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- CPU and memory accounting -----------------------------------------------------------------


def read_machine_busy_s() -> float:
    """Return the CPU time of all CPUs since boot, from /proc/stat, in seconds.

    Counts user, nice, system, irq, softirq and steal time, and leaves out idle and iowait. Steal
    is time when this VM's CPUs could run but the hypervisor ran something else, so it counts as
    contention too.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields)
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S


def _read_stat_fields(pid: int | str) -> list[str]:
    """Return the fields of /proc/<pid>/stat from the third (state) on.

    fields[1] is the parent's pid; fields[11] and fields[12] are utime and stime in clock ticks,
    all threads included.
    """
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name in brackets may contain spaces, so split after its closing bracket.
    return text[text.rindex(")") + 2:].split()


def read_process_cpu_s(pid: int) -> float:
    """Return the user plus system CPU time of process `pid`, all threads, in seconds."""
    fields = _read_stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def snapshot_process_cpu() -> dict[int, tuple[float, bool]]:
    """Return the CPU seconds used so far by every process, and whether it is a kernel thread."""
    snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _read_stat_fields(entry.name)
        except (OSError, ValueError):
            continue  # the process exited meanwhile
        pid = int(entry.name)
        is_kernel_thread = pid == KTHREADD_PID or int(fields[1]) == KTHREADD_PID
        snapshot[pid] = ((int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S, is_kernel_thread)
    return snapshot


def cpu_of_others(
    before: dict[int, tuple[float, bool]], after: dict[int, tuple[float, bool]], exclude: set[int]
) -> tuple[float, float]:
    """Return the CPU seconds that processes outside `exclude` used between two snapshots.

    The result is (user-space processes, kernel threads). Kernel threads include the writeback and
    network work that the measured run causes itself, so only the first counts as other load.
    Processes that started and ended between the snapshots are not seen.
    """
    user_space_s = kernel_threads_s = 0.0
    for pid, (cpu_s, is_kernel_thread) in after.items():
        if pid in exclude:
            continue
        delta_s = max(0.0, cpu_s - before.get(pid, (0.0, is_kernel_thread))[0])
        if is_kernel_thread:
            kernel_threads_s += delta_s
        else:
            user_space_s += delta_s
    return user_space_s, kernel_threads_s


def cpu_seconds(usage: Any) -> float:
    """Return the user plus system CPU time of a `resource.getrusage` result, in seconds."""
    return usage.ru_utime + usage.ru_stime


def read_vmhwm_kib() -> int:
    """Return the peak resident set size of this process, from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM is missing from /proc/self/status")


# --- Worker job (subprocess) ------------------------------------------------------------------


@dataclass
class BenchJob:
    """A download job queued on an in-memory catalog and queue, with what the arq job needs."""

    settings: Any
    storage: Any
    pool: Any
    client: Any
    image: Any
    job: Any

    def context(self, job_try: int) -> dict[str, Any]:
        """Return the keys the arq worker's startup sets, plus the ones arq adds for each job."""
        return {
            "settings": self.settings, "storage": self.storage, "http_client": self.client,
            "redis": self.pool, "job_id": str(self.job.id), "job_try": job_try,
        }

    async def outcome(self) -> dict[str, Any]:
        """Return the job's final state, its MD5 and the stored file's path, read back from the catalog."""
        from app.models.documents import DownloadJob, OsImage

        job_after = await DownloadJob.get(self.job.id)
        image_after = await OsImage.get(self.image.id)
        object_path = (
            self.storage.object_path(image_after.image_id)
            if image_after is not None and image_after.image_id else None
        )
        return {
            "state": job_after.state.value if job_after else None,
            "error_code": job_after.error_code if job_after else None,
            "error_message": job_after.error_message if job_after else None,
            "job_md5": job_after.md5_hash if job_after else None,
            "image_md5": image_after.md5_hash if image_after else None,
            "md5_verified": image_after.md5_verified if image_after else None,
            "object_path": str(object_path) if object_path else None,
        }


@asynccontextmanager
async def queued_bench_job(
    url: str, storage_dir: Path, expected_md5: str, size_bytes: int, img_id: str
) -> AsyncIterator[BenchJob]:
    """Queue one download of `url` on an in-memory catalog and queue; close the clients after."""
    from app.config import Settings
    from app.database import init_database
    from app.memory_db import create_memory_database
    from app.models.documents import OsImage
    from app.queue import create_memory_queue_pool
    from app.services.jobs import trigger_download
    from app.storage import Storage
    from app.workers.settings import create_http_client

    # Default settings apart from the storage directory. Environment variables such as
    # DOWNLOAD_CHUNK_BYTES still apply, as they would to the worker.
    settings = Settings(_env_file=None, storage_dir=storage_dir)
    await init_database(create_memory_database("bench"))
    pool = create_memory_queue_pool()
    storage = Storage(settings.storage_dir)
    storage.ensure_directories()
    client = create_http_client(settings)
    try:
        image = OsImage(
            img_id=img_id, organization="bench", file_path=url, file_name=SOURCE_FILE_NAME,
            md5_hash=expected_md5, image_size=str(size_bytes),
        )
        await image.insert()
        job = await trigger_download(image, "bench", settings, pool)
        yield BenchJob(settings, storage, pool, client, image, job)
    finally:
        await client.aclose()
        await pool.aclose()


async def run_worker_job(url: str, storage_dir: Path, expected_md5: str, size_bytes: int) -> dict[str, Any]:
    """Queue one download on the in-memory database and queue, run the arq job, and report it."""
    from app.workers.download import download_image

    async with queued_bench_job(url, storage_dir, expected_md5, size_bytes, "bench-image") as bench:
        vmhwm_before_kib = read_vmhwm_kib()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = await download_image(bench.context(job_try=1), str(bench.job.id))
        wall_s = time.perf_counter() - started
        usage_after = resource.getrusage(resource.RUSAGE_SELF)

    return {
        "result": result,
        **await bench.outcome(),
        "wall_s": wall_s,
        "cpu_s": cpu_seconds(usage_after) - cpu_seconds(usage_before),
        "chunk_bytes": bench.settings.download_chunk_bytes,
        "vmhwm_before_kib": vmhwm_before_kib,
        "vmhwm_kib": read_vmhwm_kib(),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


# --- Parent: processes, files, measurements ---------------------------------------------------


class ProcessGroups:
    """Processes this script started, each in its own session, stopped by process group id."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[Any]] = []

    def start(self, command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(command, start_new_session=True, **kwargs)
        self._running.append(process)
        return process

    def run(self, command: list[str], timeout_s: float, **kwargs: Any) -> tuple[int, str, str, float]:
        """Run to the end; return exit code, stdout, stderr and wall time in seconds."""
        started = time.perf_counter()
        process = self.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop(process)
            raise RuntimeError(f"timed out after {timeout_s:.0f} s: {' '.join(command)}") from None
        wall_s = time.perf_counter() - started
        self._running.remove(process)
        return process.returncode, stdout, stderr, wall_s

    def stop(self, process: subprocess.Popen[Any]) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self._running:
            self._running.remove(process)

    def stop_all(self) -> None:
        for process in list(self._running):
            self.stop(process)


def write_random_file(path: Path, size_bytes: int) -> str:
    """Write `size_bytes` random bytes to `path`, fsync it, and return its MD5."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as file:
        remaining = size_bytes
        while remaining:
            block = os.urandom(min(RANDOM_BLOCK_BYTES, remaining))
            file.write(block)
            md5.update(block)
            remaining -= len(block)
        file.flush()
        os.fsync(file.fileno())
    return md5.hexdigest()


def file_md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(RANDOM_BLOCK_BYTES):
            md5.update(block)
    return md5.hexdigest()


def settle_disk() -> None:
    """Flush dirty pages left by the previous run so that it does not slow down the next one."""
    os.sync()


def timeout_for(size_bytes: int) -> float:
    return max(MIN_TIMEOUT_S, size_bytes / SLOWEST_EXPECTED_BYTES_PER_S)


def load_during(
    before: dict[int, tuple[float, bool]], after: dict[int, tuple[float, bool]], server_pid: int,
    window_s: float,
) -> dict[str, float]:
    """Return the CPU seconds of the server, other processes and kernel threads in a run's window.

    The measured processes themselves started after `before` and ended before `after`, so they
    are in neither snapshot.
    """
    others_s, kernel_threads_s = cpu_of_others(before, after, {os.getpid(), server_pid})
    server_s = after[server_pid][0] - before[server_pid][0]
    return {
        "window_s": window_s, "server_cpu_s": server_s, "other_cpu_s": others_s,
        "kernel_threads_cpu_s": kernel_threads_s,
    }


def measure_source(processes: ProcessGroups, url: str, size_bytes: int) -> float:
    """Time `curl -s -o /dev/null URL`: what the source and loopback deliver with no consumer."""
    code, _, stderr, wall_s = processes.run(["curl", "-s", "-o", "/dev/null", url], timeout_for(size_bytes))
    if code != 0:
        raise RuntimeError(f"curl -o /dev/null {url} failed with exit code {code}: {stderr.strip()}")
    return wall_s


def measure_pipeline(
    processes: ProcessGroups, url: str, server_pid: int, output: Path, size_bytes: int,
    expected_md5: str,
) -> dict[str, Any]:
    """Time `curl -s URL | tee FILE | md5sum`, then `sync FILE` separately; check MD5 and size."""
    script = 'set -o pipefail; curl -s "$0" | tee "$1" | md5sum'
    # bash waits for curl, tee and md5sum, so their CPU time is in this process's RUSAGE_CHILDREN
    # once bash is reaped. The server is reaped only at the end, so it is not counted here.
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot_before = snapshot_process_cpu()
    code, stdout, stderr, wall_s = processes.run(
        ["bash", "-c", script, url, str(output)], timeout_for(size_bytes)
    )
    snapshot_after = snapshot_process_cpu()
    cpu_s = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu_seconds(usage_before)
    if code != 0:
        raise RuntimeError(f"pipeline failed with exit code {code}: {stderr.strip()}")
    md5 = stdout.split()[0] if stdout.split() else ""
    if md5 != expected_md5:
        raise RuntimeError(f"pipeline MD5 is {md5!r}, expected {expected_md5}")
    if output.stat().st_size != size_bytes:
        raise RuntimeError(f"pipeline wrote {output.stat().st_size} bytes, expected {size_bytes}")

    code, _, stderr, sync_s = processes.run(["sync", str(output)], timeout_for(size_bytes))
    if code != 0:
        raise RuntimeError(f"sync {output} failed with exit code {code}: {stderr.strip()}")
    output.unlink()
    return {
        "wall_s": wall_s, "sync_s": sync_s, "cpu_s": cpu_s,
        **load_during(snapshot_before, snapshot_after, server_pid, wall_s),
    }


def measure_worker(
    processes: ProcessGroups, url: str, server_pid: int, app_dir: Path, storage_dir: Path,
    size_bytes: int, expected_md5: str,
) -> dict[str, Any]:
    """Run the worker job in a new Python process; check its state and the stored file's MD5."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "worker-job", "--url", url,
        "--storage-dir", str(storage_dir), "--md5", expected_md5, "--size-bytes", str(size_bytes),
    ]
    # PYTHONPATH makes the job import the `app` package under `app_dir`, whatever `app` the
    # environment has installed.
    python_path = os.pathsep.join(filter(None, [str(app_dir), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    snapshot_before = snapshot_process_cpu()
    code, stdout, stderr, process_wall_s = processes.run(
        command, timeout_for(size_bytes), cwd=app_dir, env=env
    )
    snapshot_after = snapshot_process_cpu()

    if code != 0:
        raise RuntimeError(f"worker job process failed with exit code {code}:\n{stderr.strip()}")
    report = json.loads(stdout.strip().splitlines()[-1])
    if report["state"] != "succeeded" or report["result"] != "succeeded":
        raise RuntimeError(
            f"worker job ended in state {report['state']!r} (returned {report['result']!r}): "
            f"{report['error_code']}: {report['error_message']}\n{stderr.strip()}"
        )
    if report["job_md5"] != expected_md5 or report["image_md5"] != expected_md5:
        raise RuntimeError(
            f"worker job MD5 is {report['job_md5']!r} (image {report['image_md5']!r}), "
            f"expected {expected_md5}"
        )

    stored = Path(report["object_path"])
    stored_md5 = file_md5(stored)
    if stored_md5 != expected_md5 or stored.stat().st_size != size_bytes:
        raise RuntimeError(
            f"stored file {stored} has MD5 {stored_md5} and {stored.stat().st_size} bytes, "
            f"expected {expected_md5} and {size_bytes}"
        )
    shutil.rmtree(storage_dir)

    # The window covers the whole job process, start-up included, not only the download.
    report.update(load_during(snapshot_before, snapshot_after, server_pid, process_wall_s))
    return report


# --- Parent: report ---------------------------------------------------------------------------


def describe_app(app_dir: Path) -> str:
    """Return the git commit of `app_dir`, and whether its app/ has uncommitted changes."""
    commit = subprocess.run(
        ["git", "-C", str(app_dir), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    if not commit:
        return f"{app_dir / 'app'} (not a git checkout)"
    changed = subprocess.run(
        ["git", "-C", str(app_dir), "status", "--porcelain", "--", "app"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    return f"{app_dir / 'app'} at {commit}" + (" with uncommitted changes" if changed else "")


def describe_machine(work_dir: Path) -> dict[str, str]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    mount = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(work_dir)],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "memory": f"{memory_kib / 1024**2:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "work_dir_filesystem": mount or "unknown",
    }


def mb_per_s(size_bytes: int, seconds: float) -> float:
    return size_bytes / seconds / MB


def format_size(size_bytes: int) -> str:
    return f"{size_bytes / GIB:g} GiB"


def summarise(
    size_bytes: int, pipeline_runs: list[dict[str, Any]], worker_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    pipeline_s = statistics.median(run["wall_s"] for run in pipeline_runs)
    pipeline_sync_s = statistics.median(run["wall_s"] + run["sync_s"] for run in pipeline_runs)
    worker_s = statistics.median(run["wall_s"] for run in worker_runs)
    return {
        "size_bytes": size_bytes,
        "pipeline_mb_s": mb_per_s(size_bytes, pipeline_s),
        "pipeline_sync_mb_s": mb_per_s(size_bytes, pipeline_sync_s),
        "worker_mb_s": mb_per_s(size_bytes, worker_s),
        "throughput_ratio": pipeline_s / worker_s,
        "throughput_ratio_vs_sync": pipeline_sync_s / worker_s,
        "pipeline_cpu_s": statistics.median(run["cpu_s"] for run in pipeline_runs),
        "worker_cpu_s": statistics.median(run["cpu_s"] for run in worker_runs),
        "worker_peak_rss_mib": statistics.median(run["vmhwm_kib"] for run in worker_runs) / 1024,
        "worker_rss_before_download_mib": (
            statistics.median(run["vmhwm_before_kib"] for run in worker_runs) / 1024
        ),
        "disturbed_runs": sum(
            other_load_share(run) > MAX_OTHER_LOAD_SHARE for run in [*pipeline_runs, *worker_runs]
        ),
    }


def print_summary(summaries: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    print(f"\nMedians over {runs} round{'' if runs == 1 else 's'} (MB = 10^6 bytes):")
    header = (
        f"{'size':>8} {'pipeline':>10} {'pipe+sync':>10} {'worker':>10} {'ratio':>7} "
        f"{'vs +sync':>8} {'pipe CPU':>8} {'job CPU':>8} {'RSS start':>10} {'peak RSS':>9}"
    )
    print(header)
    for summary in summaries:
        print(
            f"{format_size(summary['size_bytes']):>8} "
            f"{summary['pipeline_mb_s']:>5.0f} MB/s {summary['pipeline_sync_mb_s']:>5.0f} MB/s "
            f"{summary['worker_mb_s']:>5.0f} MB/s {summary['throughput_ratio']:>7.2f} "
            f"{summary['throughput_ratio_vs_sync']:>8.2f} "
            f"{summary['pipeline_cpu_s']:>6.2f} s {summary['worker_cpu_s']:>6.2f} s "
            f"{summary['worker_rss_before_download_mib']:>6.1f} MiB "
            f"{summary['worker_peak_rss_mib']:>5.1f} MiB"
        )

    verdict: dict[str, Any] = {}
    first, last = summaries[0], summaries[-1]
    ratio = first["throughput_ratio"]
    verdict["throughput_ratio"] = ratio
    verdict["throughput_target_met"] = ratio >= TARGET_THROUGHPUT_RATIO
    print(
        f"\nthroughput ratio at {format_size(first['size_bytes'])} (worker / pipeline): {ratio:.2f}, "
        f"target >= {TARGET_THROUGHPUT_RATIO:.1f}: {'met' if verdict['throughput_target_met'] else 'MISSED'}"
    )
    if len(summaries) > 1:
        growth = last["worker_peak_rss_mib"] - first["worker_peak_rss_mib"]
        verdict["rss_growth_mib"] = growth
        verdict["rss_target_met"] = growth <= TARGET_RSS_GROWTH_MIB
        print(
            f"peak RSS growth {format_size(first['size_bytes'])} -> {format_size(last['size_bytes'])}: "
            f"{growth:+.1f} MiB, target <= {TARGET_RSS_GROWTH_MIB:.0f} MiB: "
            f"{'met' if verdict['rss_target_met'] else 'MISSED'}"
        )
    disturbed = sum(summary["disturbed_runs"] for summary in summaries)
    verdict["disturbed_runs"] = disturbed
    if disturbed:
        print(
            f"WARNING: during {disturbed} of {2 * runs * len(summaries)} runs other processes used "
            f"more than {MAX_OTHER_LOAD_SHARE:.0%} of the CPUs, so these figures are not reliable: "
            "rerun on an idle machine"
        )
    return verdict


# --- Parent: main -----------------------------------------------------------------------------


def check_app_dir(app_dir: Path) -> None:
    """Exit with a message unless `app_dir` contains the `app` package the jobs import."""
    if not (app_dir / "app" / "workers" / "download.py").is_file():
        sys.exit(f"error: {app_dir} has no app/workers/download.py: pass the directory above app/")


def parse_size(text: str) -> int:
    sizes = parse_sizes(text)
    if len(sizes) != 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give one number of GiB")
    return sizes[0]


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        try:
            gib = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid size {part!r}: give GiB numbers such as 1,4"
            ) from None
        if gib <= 0:
            raise argparse.ArgumentTypeError(f"invalid size {part!r}: sizes must be above 0")
        sizes.append(int(gib * GIB))
    return sorted(sizes)


def check_requirements(work_dir: Path, sizes: list[int]) -> None:
    tools = ("bash", "curl", "tee", "md5sum", "sync", "findmnt")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found in PATH; install them to run the benchmark")
    # At any time the work directory contains one source file and one downloaded copy of it.
    needed = 2 * max(sizes) + DISK_MARGIN_BYTES
    free = shutil.disk_usage(work_dir).free
    if free < needed:
        sys.exit(
            f"error: {free / GIB:.1f} GiB free under {work_dir}, the benchmark needs "
            f"{needed / GIB:.1f} GiB: free space or pass smaller --sizes"
        )


def wait_for_idle_machine(max_wait_s: float) -> None:
    """Wait at most `max_wait_s` for other processes to use less than MAX_OTHER_LOAD_SHARE of the CPUs.

    The source server is idle between runs, so nearly all CPU time seen here is other processes'.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before_s = read_machine_busy_s()
        time.sleep(1.0)
        share = (read_machine_busy_s() - before_s) / (os.cpu_count() or 1)
        if share < MAX_OTHER_LOAD_SHARE:
            return
        if time.monotonic() >= deadline:
            print(f"  (other processes still use {share:.0%} of the CPUs; running anyway)", flush=True)
            return


def other_load_share(run: dict[str, Any]) -> float:
    """Share of all CPUs that other user-space processes used during a run."""
    return run["other_cpu_s"] / (run["window_s"] * (os.cpu_count() or 1))


def describe_run(run: dict[str, Any], size_bytes: int) -> str:
    text = (
        f"{run['wall_s']:.2f} s, {mb_per_s(size_bytes, run['wall_s']):.0f} MB/s, CPU {run['cpu_s']:.2f} s "
        f"(server {run['server_cpu_s']:.2f} s, kernel threads {run['kernel_threads_cpu_s']:.2f} s, "
        f"other processes {run['other_cpu_s']:.2f} s)"
    )
    if other_load_share(run) > MAX_OTHER_LOAD_SHARE:
        text += " [disturbed by other load]"
    return text


def start_source_server(processes: ProcessGroups, source_dir: Path) -> tuple[subprocess.Popen[Any], str]:
    server = processes.start(
        [sys.executable, str(Path(__file__).resolve()), "serve", "--directory", str(source_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    port_line = server.stdout.readline().strip()
    if not port_line.isdigit():
        raise RuntimeError(f"source server did not start (printed {port_line!r})")
    return server, f"http://127.0.0.1:{port_line}/{SOURCE_FILE_NAME}"


def measure_size(
    args: argparse.Namespace, processes: ProcessGroups, server_pid: int, url: str, run_dir: Path,
    size_bytes: int,
) -> dict[str, Any]:
    """Time `args.runs` rounds of pipeline then worker job on a new random file of `size_bytes`."""
    print(f"\n{format_size(size_bytes)}: writing random source file ...", flush=True)
    source_path = run_dir / "source" / SOURCE_FILE_NAME
    expected_md5 = write_random_file(source_path, size_bytes)
    source_s = measure_source(processes, url, size_bytes)
    print(f"  source alone (curl -o /dev/null): {mb_per_s(size_bytes, source_s):.0f} MB/s")

    pipeline_runs: list[dict[str, Any]] = []
    worker_runs: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        settle_disk()
        wait_for_idle_machine(args.idle_wait)
        pipeline = measure_pipeline(
            processes, url, server_pid, run_dir / "pipeline.out", size_bytes, expected_md5
        )
        pipeline_runs.append(pipeline)
        print(
            f"  run {run}/{args.runs} pipeline: {describe_run(pipeline, size_bytes)}; "
            f"then sync FILE {pipeline['sync_s']:.2f} s", flush=True,
        )

        settle_disk()
        wait_for_idle_machine(args.idle_wait)
        worker = measure_worker(
            processes, url, server_pid, args.app_dir, run_dir / "storage", size_bytes, expected_md5
        )
        worker_runs.append(worker)
        print(
            f"  run {run}/{args.runs} worker:   {describe_run(worker, size_bytes)}; peak RSS "
            f"{worker['vmhwm_kib'] / 1024:.1f} MiB, {worker['vmhwm_before_kib'] / 1024:.1f} MiB "
            "before the download", flush=True,
        )
    source_path.unlink()

    return {
        **summarise(size_bytes, pipeline_runs, worker_runs),
        "source_mb_s": mb_per_s(size_bytes, source_s), "md5": expected_md5,
        "pipeline_runs": pipeline_runs, "worker_runs": worker_runs,
    }


def run_benchmark(args: argparse.Namespace) -> int:
    args.work_dir.mkdir(parents=True, exist_ok=True)
    check_requirements(args.work_dir, args.sizes)
    machine = describe_machine(args.work_dir)
    print("machine: " + ", ".join(f"{key}={value}" for key, value in machine.items()))
    app = describe_app(args.app_dir)
    print(f"code measured: {app}")

    # SIGTERM would end the process without running `finally`, which stops the server and the
    # job processes, so turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda signal_number, frame: sys.exit(128 + signal_number))
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=args.work_dir))
    (run_dir / "source").mkdir()
    processes = ProcessGroups()
    results: dict[str, Any] = {"machine": machine, "app": app, "runs": args.runs, "sizes": []}
    try:
        server, url = start_source_server(processes, run_dir / "source")
        print(f"source: ThreadingHTTPServer with sendfile(2), pid {server.pid}, {url}")
        for size_bytes in args.sizes:
            results["sizes"].append(measure_size(args, processes, server.pid, url, run_dir, size_bytes))
        results["verdict"] = print_summary(results["sizes"], args.runs)
        if args.json is not None:
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
        description="Compare the download worker's throughput and peak RSS with "
        "`curl -s URL | tee FILE | md5sum`, both reading from a local HTTP source.",
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=parse_sizes("1,4"),
        help="file sizes in GiB, comma-separated (default: 1,4); the throughput ratio is taken at "
        "the smallest, the RSS growth between the smallest and the largest",
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="rounds of pipeline then worker job per size (default: 5)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR,
        help=f"directory for the source file and the downloads (default: {DEFAULT_WORK_DIR})",
    )
    parser.add_argument(
        "--app-dir", type=Path, default=REPO_ROOT,
        help="directory containing the `app` package that the worker job imports (default: this "
        "checkout); e.g. a `git archive` copy of one commit, which later edits do not change",
    )
    parser.add_argument(
        "--idle-wait", type=float, default=60.0,
        help="seconds to wait before each run for other processes to leave the CPUs idle "
        "(default: 60); the run starts anyway after that and is flagged if it was disturbed",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory under --work-dir at the end"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")

    commands = parser.add_subparsers(dest="command", help="internal: the subprocesses the benchmark starts")
    serve_parser = commands.add_parser("serve", help="serve a directory on 127.0.0.1 and print the port")
    serve_parser.add_argument("--directory", type=Path, required=True)
    job_parser = commands.add_parser("worker-job", help="run one download job and print a JSON report")
    job_parser.add_argument("--url", required=True)
    job_parser.add_argument("--storage-dir", type=Path, required=True)
    job_parser.add_argument("--md5", required=True, help="expected MD5 of the file, 32 hex digits")
    job_parser.add_argument("--size-bytes", type=int, required=True)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.command == "serve":
        serve(args.directory)
        return 0
    if args.command == "worker-job":
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        report = asyncio.run(run_worker_job(args.url, args.storage_dir, args.md5, args.size_bytes))
        print(json.dumps(report), flush=True)
        return 0
    if args.runs < 1:
        sys.exit("error: --runs must be at least 1")
    args.app_dir = args.app_dir.resolve()
    check_app_dir(args.app_dir)
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
