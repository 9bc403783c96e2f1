"""A real HTTP file server on 127.0.0.1 that can misbehave on purpose, run in a thread."""

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Route:
    """What the server sends for one path. `handler` overrides everything else when set."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[["SourceHandler", int], None] | None = None


class SourceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "SourceServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        route = self.server.routes.get(self.path)
        with self.server.lock:
            count = self.server.request_counts.get(self.path, 0) + 1
            self.server.request_counts[self.path] = count
            self.server.request_headers.append((self.path, dict(self.headers)))
        if route is None:
            self.send_plain(404, b"not found")
            return
        if route.handler is not None:
            route.handler(self, count)
            return
        self.send_response(route.status)
        headers = {"Content-Type": "application/octet-stream", **route.headers}
        headers.setdefault("Content-Length", str(len(route.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(route.body)

    def send_plain(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


class SourceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SourceHandler)
        self.routes: dict[str, Route] = {}
        self.request_counts: dict[str, int] = {}
        self.request_headers: list[tuple[str, dict[str, str]]] = []
        self.bytes_sent = 0  # body bytes of the handlers that count them (see `ranged`)
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


# Misbehaviours, as route handlers.

def fail_then_serve(body: bytes, failures: int, status: int = 503) -> Route:
    def handler(request: SourceHandler, count: int) -> None:
        if count <= failures:
            request.send_plain(status, b"busy", Retry_After="0")
        else:
            request.send_plain(200, body, Content_Type="application/octet-stream")

    return Route(handler=handler)


def cut_after(body: bytes, sent_bytes: int) -> Route:
    """Declare the full length, send only the first `sent_bytes`, then drop the connection."""
    return stall_after(body, sent_bytes, stall_s=0)


def stall_after(body: bytes, sent_bytes: int, stall_s: float) -> Route:
    """Declare the full length, send `sent_bytes`, wait `stall_s`, then drop the connection."""

    def handler(request: SourceHandler, count: int) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body[:sent_bytes])
        request.wfile.flush()
        if stall_s:
            time.sleep(stall_s)
        request.close_connection = True

    return Route(handler=handler)


def redirect_chain(target: str, hops: int, prefix: str) -> dict[str, Route]:
    """Routes prefix/1 -> prefix/2 -> ... -> target."""
    routes = {}
    for hop in range(1, hops + 1):
        location = target if hop == hops else f"{prefix}/{hop + 1}"
        routes[f"{prefix}/{hop}"] = Route(status=302, headers={"Location": location})
    return routes


def gzip_encoded(body: bytes, content_type: str = "application/octet-stream") -> Route:
    return Route(
        body=gzip.compress(body),
        headers={"Content-Encoding": "gzip", "Content-Type": content_type},
    )


def ranged(
    body: bytes,
    *,
    etag: str | None = '"v1"',
    last_modified: str | None = None,
    cut_first_at: int | None = None,
    range_status: str = "honour",
) -> Route:
    """Serve `body` with validators and single-range support, misbehaving on purpose if asked.

    `cut_first_at` drops the first response's connection after that many bytes. `range_status`:
    "honour" responds to a range with 206; "ignore" sends the whole file with 200; "shifted" sends a
    206 that starts one byte early; "unsatisfiable" responds with 416.
    """

    def handler(request: SourceHandler, count: int) -> None:
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        validators = {}
        if etag is not None:
            validators["ETag"] = etag
        if last_modified is not None:
            validators["Last-Modified"] = last_modified
        same_entity = if_range is None or if_range in (etag, last_modified)
        if range_header and same_entity and range_status != "ignore":
            if range_status == "unsatisfiable":
                request.send_plain(416, b"", Content_Range=f"bytes */{len(body)}")
                return
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if range_status == "shifted":
                start = max(0, start - 1)
            part = body[start:]
            request.send_response(206)
            request.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            request.send_header("Content-Length", str(len(part)))
            for name, value in validators.items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(part)
            with request.server.lock:
                request.server.bytes_sent += len(part)
            return
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        for name, value in validators.items():
            request.send_header(name, value)
        request.end_headers()
        sent = body if cut_first_at is None or count > 1 else body[:cut_first_at]
        request.wfile.write(sent)
        request.wfile.flush()
        with request.server.lock:
            request.server.bytes_sent += len(sent)
        if len(sent) < len(body):
            request.close_connection = True

    return Route(handler=handler)
