"""Logging for every role: plain text or JSON lines (LOG_FORMAT) on stderr, with request ids.

Log calls pass ids, sizes and durations as `extra={...}` fields besides the message. Text lines
show only the message, so messages repeat the ids that matter. JSON lines carry every field.
"""

import logging
import time
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The id of the HTTP request being served, set by the access log middleware. It is "-" outside
# requests.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record, so JSON lines logged while serving a request carry it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = request_id_var.get()
            if request_id != "-":
                record.request_id = request_id
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: time (RFC 3339, UTC, milliseconds), level, logger, message, extras."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn adds a copy of each message with terminal colour codes.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        )


def create_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLineFormatter()
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings) -> None:
    """Send all records, uvicorn's included, through one stderr handler in the configured format."""
    handler = logging.StreamHandler()
    handler.setFormatter(create_formatter(settings.log_format))
    handler.addFilter(RequestIdFilter())

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn's own handlers would print a second, differently formatted copy of its records.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        # LOG_LEVEL decides, not a level an earlier uvicorn.Config set on these loggers.
        uvicorn_logger.setLevel(logging.NOTSET)
