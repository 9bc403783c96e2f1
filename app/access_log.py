"""One access log line and one metrics observation per HTTP request, with a request id.

The line carries method, route template, path, status, response size and duration. Request
headers are never logged, so the API key in `Authorization` cannot reach the logs through here.
"""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging_setup import request_id_var
from app.metrics import UNMATCHED_ROUTE, observe_http_request

logger = logging.getLogger("app.access")

REQUEST_ID_HEADER = b"x-request-id"
# A client's own X-Request-ID is kept when it looks like an id. Anything else is replaced, so
# the header cannot be used to write arbitrary text into the logs.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Probes and scrapes arrive every few seconds, so their lines are logged at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _REQUEST_ID_PATTERN.match(text):
                return text
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """Return the matched route's full path template, e.g. `/ux/nccm/os-image/{id}/`.

    Depending on the FastAPI version, the route in the scope carries its full template or only
    the part below its router's prefix. The prefix is the request path minus that part filled
    in with the path parameters. A mount (the docs assets) is reported as `<mount>/{path}`.
    """
    route = scope.get("route")
    path: str = scope["path"]
    if route is None:
        mount_path = scope.get("root_path", "")[len(scope.get("app_root_path", "")):]
        if "endpoint" in scope and mount_path:
            return f"{mount_path}/{{path}}"
        return UNMATCHED_ROUTE
    template: str | None = getattr(route, "path_format", None) or getattr(route, "path", None)
    if template is None:
        return UNMATCHED_ROUTE
    try:
        filled = template.format(**{name: str(value) for name, value in scope.get("path_params", {}).items()})
    except (KeyError, IndexError, ValueError):
        return template
    if path.endswith(filled):
        return path[: len(path) - len(filled)] + template
    return template


class AccessLogMiddleware:
    """Time each HTTP request, log it, count it in the HTTP metrics and echo X-Request-ID.

    Must sit inside any middleware that replaces the scope, because the router records the
    matched route in the scope object it is given.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started = time.monotonic()
        status = 500
        size_bytes = 0

        async def send_and_measure(message: Message) -> None:
            nonlocal status, size_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())
                ]
            elif message["type"] == "http.response.body":
                size_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_measure)
        finally:
            duration_s = time.monotonic() - started
            route = route_template(scope)
            observe_http_request(scope["method"], route, status, duration_s)
            self._log(scope, route, status, size_bytes, duration_s, request_id)
            request_id_var.reset(token)

    @staticmethod
    def _log(
        scope: Scope, route: str, status: int, size_bytes: int, duration_s: float, request_id: str
    ) -> None:
        path = scope["path"]
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        client = scope.get("client")
        logger.log(
            level,
            "%s %s %d %d bytes %.1f ms request_id=%s",
            scope["method"], path, status, size_bytes, duration_s * 1000, request_id,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": path,
                "route": route,
                "status": status,
                "size_bytes": size_bytes,
                "duration_ms": round(duration_s * 1000, 1),
                "client": client[0] if client else None,
            },
        )
