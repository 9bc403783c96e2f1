"""Benchmark a resumed download: which bytes the source sends when a cut connection is resumed.

One run of this script:
- writes a file of random bytes of --size under the work directory;
- starts a source HTTP server on 127.0.0.1 in a subprocess. It serves that file at
  `/<any name>/image.bin` with a strong ETag and Last-Modified, responds to `Range: bytes=START-`
  with 206 unless If-Range names another entity, and sends bodies with sendfile(2). The first
  GET of each path gets the whole file announced in Content-Length, but the server closes the
  connection (FIN, no RST) after --cut-fraction of it. For every response it logs the Range and
  If-Range headers it received and the body bytes it sent to a JSON-lines file;
- for --runs rounds, each on its own path, runs the worker's arq job `download_image` the way
  bench/download.py does, in a new Python process. The first attempt ends with arq's Retry
  when the connection is cut, and the job is then run again as arq would after the retry delay,
  without waiting for it. Between the attempts the job process reads the size of the partial
  file: the bytes the worker kept for the resume;
- checks that the job succeeded and that the stored file has the source's size and MD5, and
  reports per round the bytes sent per request, the Range asked for, the bytes kept, received
  and sent twice.

Run from the repository root with the project's virtualenv: `python bench/resume.py`.
`python bench/resume.py --help` lists the options.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import http.server
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this file runs as a script, so its sibling imports by name.
from download import (
    check_app_dir,
    GIB,
    ProcessGroups,
    describe_app,
    describe_machine,
    file_md5,
    format_size,
    mb_per_s,
    parse_size,
    queued_bench_job,
    read_vmhwm_kib,
    settle_disk,
    timeout_for,
    wait_for_idle_machine,
    write_random_file,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = REPO_ROOT / "bench" / "work"
SOURCE_FILE_NAME = "image.bin"
# Attempts the job process makes before it gives up. The job's own limit is
# DOWNLOAD_MAX_ATTEMPTS (default 5), and one cut needs two.
MAX_JOB_TRIES = 5
DISK_MARGIN_BYTES = 2 * GIB
LOG_WAIT_S = 10.0


# --- Source server (subprocess) ---------------------------------------------------------------


class CuttingRangeHandler(http.server.BaseHTTPRequestHandler):
    """Handler for one file, with ETag and Range support, that cuts each path's first response.

    The class attributes are set by `serve` before the server starts.
    """

    protocol_version = "HTTP/1.1"
    file_path: Path = Path()
    cut_fraction = 0.6
    log_path: Path = Path()
    lock = threading.Lock()
    requests_per_path: dict[str, int] = {}

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if not path.endswith("/" + SOURCE_FILE_NAME):
            self.send_error(404, f"no file at {path!r}: request /<name>/{SOURCE_FILE_NAME}")
            return
        with self.lock:
            number = self.requests_per_path.get(path, 0) + 1
            self.requests_per_path[path] = number

        with open(self.file_path, "rb") as file:
            status = os.fstat(file.fileno())
            size = status.st_size
            etag = f'"{size:x}-{status.st_mtime_ns:x}"'
            last_modified = email.utils.formatdate(status.st_mtime, usegmt=True)
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            start = self._range_start(range_header, if_range, etag, last_modified)
            if start is not None and start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._log(path, number, range_header, if_range, 416, start, 0, 0, cut=False)
                return

            offset = start or 0
            length = size - offset
            status_code = 200 if start is None else 206
            self.send_response(status_code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Accept-Ranges", "bytes")
            if start is not None:
                self.send_header("Content-Range", f"bytes {offset}-{size - 1}/{size}")
            self.end_headers()
            self.wfile.flush()
            if not send_body:
                self._log(path, number, range_header, if_range, status_code, offset, length, 0, cut=False)
                return

            cut = self.command == "GET" and number == 1
            to_send = min(length, int(size * self.cut_fraction)) if cut else length
            sent = self._send_file(file, offset, to_send)
            if cut or sent < length:
                # FIN after the bytes sent, like a server or proxy that drops the connection.
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._log(path, number, range_header, if_range, status_code, offset, length, sent, cut=cut)

    @staticmethod
    def _range_start(
        range_header: str | None, if_range: str | None, etag: str, last_modified: str
    ) -> int | None:
        """Return START of a `bytes=START-` or `bytes=START-END` range that applies, else None."""
        if range_header is None:
            return None
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
        if match is None:
            return None
        if if_range is not None and if_range not in (etag, last_modified):
            return None  # the client's bytes belong to another entity: send the whole file
        return int(match.group(1))

    def _send_file(self, file: Any, offset: int, count: int) -> int:
        """Send `count` bytes of `file` from `offset` with sendfile(2), and return the bytes sent."""
        sent = 0
        try:
            while sent < count:
                chunk = os.sendfile(self.connection.fileno(), file.fileno(), offset + sent, count - sent)
                if chunk == 0:
                    break
                sent += chunk
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return sent

    def _log(
        self, path: str, number: int, range_header: str | None, if_range: str | None, status: int,
        offset: int, declared: int, sent: int, *, cut: bool,
    ) -> None:
        entry = {
            "path": path, "request": number, "method": self.command, "range": range_header,
            "if_range": if_range, "status": status, "offset": offset, "declared_bytes": declared,
            "sent_bytes": sent, "cut": cut,
        }
        with self.lock, open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(file_path: Path, cut_fraction: float, log_path: Path) -> None:
    """Serve `file_path` on 127.0.0.1 at a free port, print the port, and run until killed."""
    CuttingRangeHandler.file_path = file_path.resolve()
    CuttingRangeHandler.cut_fraction = cut_fraction
    CuttingRangeHandler.log_path = log_path.resolve()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CuttingRangeHandler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- Worker job (subprocess) ------------------------------------------------------------------


async def run_resumed_job(url: str, storage_dir: Path, expected_md5: str, size_bytes: int) -> dict[str, Any]:
    """Queue one download, run the arq job until it stops asking for a retry, and report it."""
    from arq import Retry

    from app.models.documents import DownloadJob
    from app.workers.download import download_image

    attempts: list[dict[str, Any]] = []
    async with queued_bench_job(url, storage_dir, expected_md5, size_bytes, "bench-resume") as bench:
        partial_path = bench.storage.partial_path(str(bench.job.id))
        for job_try in range(1, MAX_JOB_TRIES + 1):
            started = time.perf_counter()
            try:
                result = await download_image(bench.context(job_try), str(bench.job.id))
            except Retry as retry:
                job_now = await DownloadJob.get(bench.job.id)
                attempts.append({
                    "result": "retry",
                    "wall_s": time.perf_counter() - started,
                    "retry_delay_ms": getattr(retry, "defer_score", None),
                    "kept_bytes": partial_path.stat().st_size if partial_path.exists() else 0,
                    "error_code": job_now.error_code if job_now else None,
                    "error_message": job_now.error_message if job_now else None,
                })
                continue
            attempts.append({"result": result, "wall_s": time.perf_counter() - started})
            break

    return {"attempts": attempts, **await bench.outcome(), "vmhwm_kib": read_vmhwm_kib()}


# --- Parent -----------------------------------------------------------------------------------


def received_before_cut(error_message: str | None) -> int | None:
    """Return the bytes the worker reports as received before the cut, from the job's error message.

    The worker's message reads "connection failed after N bytes: ..." (app/workers/fetch.py);
    None when the message has another form.
    """
    match = re.search(r"after (\d+) bytes", error_message or "")
    return int(match.group(1)) if match else None


def read_log(log_path: Path, path: str, expected_entries: int) -> list[dict[str, Any]]:
    """Return the source's log entries for `path`, waiting briefly for the last one to be written."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        entries = []
        if log_path.exists():
            entries = [
                entry for entry in map(json.loads, log_path.read_text().splitlines())
                if entry["path"] == path
            ]
        if len(entries) >= expected_entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


def run_round(
    args: argparse.Namespace, processes: ProcessGroups, base_url: str, log_path: Path,
    run_dir: Path, number: int, size_bytes: int, expected_md5: str,
) -> dict[str, Any]:
    path = f"/round-{number}/{SOURCE_FILE_NAME}"
    storage_dir = run_dir / "storage"
    command = [
        sys.executable, str(Path(__file__).resolve()), "resume-job", "--url", base_url + path,
        "--storage-dir", str(storage_dir), "--md5", expected_md5, "--size-bytes", str(size_bytes),
    ]
    # PYTHONPATH makes the job import the `app` package under --app-dir.
    python_path = os.pathsep.join(filter(None, [str(args.app_dir), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    settle_disk()
    wait_for_idle_machine(args.idle_wait)
    code, stdout, stderr, wall_s = processes.run(
        command, 4 * timeout_for(size_bytes), cwd=args.app_dir, env=env
    )
    if code != 0:
        raise RuntimeError(f"job process failed with exit code {code}:\n{stderr.strip()}")
    report = json.loads(stdout.strip().splitlines()[-1])
    if report["state"] != "succeeded":
        raise RuntimeError(
            f"job ended in state {report['state']!r}: {report['error_code']}: "
            f"{report['error_message']}\n{stderr.strip()}"
        )
    if report["job_md5"] != expected_md5:
        raise RuntimeError(f"job MD5 is {report['job_md5']!r}, expected {expected_md5}")
    stored = Path(report["object_path"])
    stored_md5 = file_md5(stored)
    if stored_md5 != expected_md5 or stored.stat().st_size != size_bytes:
        raise RuntimeError(
            f"stored file {stored} has MD5 {stored_md5} and {stored.stat().st_size} bytes, "
            f"expected {expected_md5} and {size_bytes}"
        )
    shutil.rmtree(storage_dir)

    attempts = report["attempts"]
    requests = read_log(log_path, path, len(attempts))
    return summarise_round(number, size_bytes, attempts, requests, wall_s, report["vmhwm_kib"])


def summarise_round(
    number: int, size_bytes: int, attempts: list[dict[str, Any]], requests: list[dict[str, Any]],
    wall_s: float, vmhwm_kib: int,
) -> dict[str, Any]:
    """Compare what the source sent with what the worker kept and asked for."""
    sent_total = sum(request["sent_bytes"] for request in requests)
    first_retry = next((attempt for attempt in attempts if attempt["result"] == "retry"), None)
    kept = first_retry["kept_bytes"] if first_retry else None
    received = received_before_cut(first_retry["error_message"]) if first_retry else None
    cut_sent = requests[0]["sent_bytes"] if requests and requests[0]["cut"] else None
    resumed = requests[1] if len(requests) > 1 else None
    range_start = None
    if resumed is not None and resumed["range"]:
        match = re.fullmatch(r"bytes=(\d+)-\d*", resumed["range"])
        range_start = int(match.group(1)) if match else None
    return {
        "round": number,
        "size_bytes": size_bytes,
        "requests": requests,
        "attempts": attempts,
        "sent_total_bytes": sent_total,
        "cut_sent_bytes": cut_sent,
        "received_before_cut_bytes": received,
        "kept_bytes": kept,
        "range_start": range_start,
        "range_starts_at_kept": range_start is not None and range_start == kept,
        "resumed_status": resumed["status"] if resumed else None,
        "resumed_sent_bytes": resumed["sent_bytes"] if resumed else None,
        # Bytes the source sent more than once: everything above the file's size.
        "sent_twice_bytes": sent_total - size_bytes,
        # Bytes the resumed request asked for beyond what the worker was missing.
        "asked_beyond_missing_bytes": (size_bytes - range_start) - (size_bytes - kept)
        if range_start is not None and kept is not None else None,
        "wall_s": wall_s,
        "vmhwm_kib": vmhwm_kib,
    }


def describe_round(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"  round {summary['round']}: job process {summary['wall_s']:.2f} s, "
        f"peak RSS {summary['vmhwm_kib'] / 1024:.1f} MiB"
    ]
    for request, attempt in zip(summary["requests"], summary["attempts"]):
        kept = ""
        if attempt["result"] == "retry":
            kept = f", kept {attempt['kept_bytes']} bytes ({attempt['error_code']})"
        lines.append(
            f"    request {request['request']}: Range {request['range'] or '-'}, If-Range "
            f"{request['if_range'] or '-'}, HTTP {request['status']}, sent {request['sent_bytes']} of "
            f"{request['declared_bytes']} bytes{' (cut)' if request['cut'] else ''}; attempt "
            f"{attempt['result']} after {attempt['wall_s']:.2f} s{kept}"
        )
    lines.append(
        f"    sent in total {summary['sent_total_bytes']} bytes for a file of {summary['size_bytes']}; "
        f"received before the cut {summary['received_before_cut_bytes']}, kept {summary['kept_bytes']}, "
        f"sent twice {summary['sent_twice_bytes']}; resumed Range starts at the kept size: "
        f"{'yes' if summary['range_starts_at_kept'] else 'NO'}"
    )
    return lines


def print_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    size_bytes = rounds[0]["size_bytes"]
    all_at_kept = all(summary["range_starts_at_kept"] for summary in rounds)
    two_requests = all(len(summary["requests"]) == 2 for summary in rounds)
    sent_twice = [summary["sent_twice_bytes"] for summary in rounds]

    dropped = [
        summary["received_before_cut_bytes"] - summary["kept_bytes"]
        for summary in rounds
        if summary["received_before_cut_bytes"] is not None and summary["kept_bytes"] is not None
    ]
    in_transit = [
        summary["cut_sent_bytes"] - summary["received_before_cut_bytes"]
        for summary in rounds
        if summary["cut_sent_bytes"] is not None and summary["received_before_cut_bytes"] is not None
    ]

    print(f"\nOver {len(rounds)} round{'' if len(rounds) == 1 else 's'} with a {format_size(size_bytes)} file:")
    print(f"  every download took two requests, the second a resume: {'yes' if two_requests else 'NO'}")
    print(
        "  resumed Range started at the kept size in every round: "
        + ("yes (met)" if all_at_kept else "NO (MISSED)")
    )
    print(f"  bytes sent twice per round: {', '.join(map(str, sent_twice))} (median {statistics.median(sent_twice):.0f})")
    if dropped:
        print(
            "  of those, received by the worker but not kept: "
            f"{', '.join(map(str, dropped))}; still in transit at the cut: {', '.join(map(str, in_transit))}"
        )

    return {
        "two_requests": two_requests,
        "range_starts_at_kept": all_at_kept,
        "sent_twice_bytes": sent_twice,
        "received_not_kept_bytes": dropped,
        "in_transit_bytes": in_transit,
    }


def start_source_server(
    processes: ProcessGroups, file_path: Path, cut_fraction: float, log_path: Path
) -> tuple[subprocess.Popen[Any], str]:
    server = processes.start(
        [
            sys.executable, str(Path(__file__).resolve()), "serve", "--file", str(file_path),
            "--cut-fraction", str(cut_fraction), "--log", str(log_path),
        ],
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    port_line = server.stdout.readline().strip()
    if not port_line.isdigit():
        raise RuntimeError(f"source server did not start (printed {port_line!r})")
    return server, f"http://127.0.0.1:{port_line}"


def run_benchmark(args: argparse.Namespace) -> int:
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("findmnt") is None:
        sys.exit("error: findmnt not found in PATH; install util-linux to run the benchmark")
    needed = 2 * args.size + DISK_MARGIN_BYTES
    free = shutil.disk_usage(args.work_dir).free
    if free < needed:
        sys.exit(
            f"error: {free / GIB:.1f} GiB free under {args.work_dir}, the benchmark needs "
            f"{needed / GIB:.1f} GiB: free space or pass a smaller --size"
        )
    machine = describe_machine(args.work_dir)
    print("machine: " + ", ".join(f"{key}={value}" for key, value in machine.items()))
    app = describe_app(args.app_dir)
    print(f"code measured: {app}")

    # SIGTERM would end the process without running `finally`, which stops the server and the
    # job process, so turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda signal_number, frame: sys.exit(128 + signal_number))
    run_dir = Path(tempfile.mkdtemp(prefix="resume-", dir=args.work_dir))
    processes = ProcessGroups()
    results: dict[str, Any] = {"machine": machine, "app": app, "cut_fraction": args.cut_fraction}
    try:
        source = run_dir / SOURCE_FILE_NAME
        print(f"writing a random source file of {format_size(args.size)} ...", flush=True)
        expected_md5 = write_random_file(source, args.size)
        log_path = run_dir / "requests.jsonl"
        server, base_url = start_source_server(processes, source, args.cut_fraction, log_path)
        print(
            f"source: ThreadingHTTPServer with sendfile(2), pid {server.pid}, {base_url}; cuts the "
            f"first GET of each path after {int(args.size * args.cut_fraction)} bytes", flush=True,
        )
        rounds = []
        for number in range(1, args.runs + 1):
            summary = run_round(args, processes, base_url, log_path, run_dir, number, args.size, expected_md5)
            rounds.append(summary)
            print("\n".join(describe_round(summary)), flush=True)
        results["rounds"] = rounds
        results["verdict"] = print_summary(rounds)
        resumed_rates = [
            mb_per_s(summary["resumed_sent_bytes"], summary["attempts"][-1]["wall_s"])
            for summary in rounds if summary["resumed_sent_bytes"]
        ]
        if resumed_rates:
            print(
                f"  second attempt, including re-hashing the kept bytes: median "
                f"{statistics.median(resumed_rates):.0f} MB/s of bytes sent"
            )
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


def parse_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}: give a number such as 0.6") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}: it must be between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Cut a download's connection part-way and count the bytes the source sends "
        "while the worker retries and resumes it.",
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("1"), help="file size in GiB (default: 1)")
    parser.add_argument(
        "--cut-fraction", type=parse_fraction, default=0.6,
        help="share of the file the source sends before it closes the first connection (default: 0.6)",
    )
    parser.add_argument("--runs", type=int, default=3, help="downloads, each cut once (default: 3)")
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR,
        help=f"directory for the source file and the downloads (default: {DEFAULT_WORK_DIR})",
    )
    parser.add_argument(
        "--app-dir", type=Path, default=REPO_ROOT,
        help="directory containing the `app` package that the worker job imports (default: this "
        "checkout); e.g. a copy with a change to try",
    )
    parser.add_argument(
        "--idle-wait", type=float, default=60.0,
        help="seconds to wait before each round for other processes to leave the CPUs idle (default: 60)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's directory under --work-dir at the end")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")

    commands = parser.add_subparsers(dest="command", help="internal: the subprocesses the benchmark starts")
    serve_parser = commands.add_parser("serve", help="serve a file on 127.0.0.1 and print the port")
    serve_parser.add_argument("--file", type=Path, required=True)
    serve_parser.add_argument("--cut-fraction", type=parse_fraction, required=True)
    serve_parser.add_argument("--log", type=Path, required=True)
    job_parser = commands.add_parser("resume-job", help="run one download job to the end and print a JSON report")
    job_parser.add_argument("--url", required=True)
    job_parser.add_argument("--storage-dir", type=Path, required=True)
    job_parser.add_argument("--md5", required=True, help="expected MD5 of the file, 32 hex digits")
    job_parser.add_argument("--size-bytes", type=int, required=True)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.command == "serve":
        serve(args.file, args.cut_fraction, args.log)
        return 0
    if args.command == "resume-job":
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        report = asyncio.run(run_resumed_job(args.url, args.storage_dir, args.md5, args.size_bytes))
        print(json.dumps(report), flush=True)
        return 0
    if args.runs < 1:
        sys.exit("error: --runs must be at least 1")
    args.app_dir = args.app_dir.resolve()
    args.work_dir = args.work_dir.resolve()
    check_app_dir(args.app_dir)
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
