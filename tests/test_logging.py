"""Access log lines, JSON log output, request ids, and API keys kept out of the logs."""

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.logging_setup import JsonLineFormatter, RequestIdFilter, configure_logging, create_formatter
from tests.source_server import Route
from tests.test_downloads import BASE, PAYLOAD, download


def rendered(records: list[logging.LogRecord]) -> list[str]:
    """Each record as the text and the JSON formatter write it, with every extra field."""
    text, json_lines = create_formatter("text"), create_formatter("json")
    return [formatter.format(record) for record in records for formatter in (text, json_lines)]


async def test_api_key_never_logged(
    acme, acme_key, client, source, run_worker, caplog  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level(logging.DEBUG)

    _, job, _ = await download(acme, source, run_worker, Route(body=PAYLOAD))
    assert job["state"] == "succeeded"
    assert (await acme.get(f"{BASE}/", params={"search": "x"})).status_code == 200
    bearer = {"Authorization": f"Bearer {acme_key}"}
    assert (await client.get(f"{BASE}/options/", headers=bearer)).status_code == 200
    unknown_key = acme_key[:-4] + "XXXX"
    assert (await client.get(f"{BASE}/", headers={"Authorization": unknown_key})).status_code == 401

    access_lines = [record for record in caplog.records if record.name == "app.access"]
    assert len(access_lines) >= 6
    for line in rendered(caplog.records):
        assert acme_key not in line
        assert unknown_key not in line
        assert acme_key[:20] not in line


async def test_access_log_line_fields(acme: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    image_id = "0123456789abcdef01234567"

    response = await acme.get(f"{BASE}/{image_id}/")

    (record,) = [record for record in caplog.records if record.name == "app.access"]
    assert record.levelno == logging.INFO
    assert record.method == "GET"
    assert record.path == f"{BASE}/{image_id}/"
    assert record.route == f"{BASE}/{{id}}/"
    assert record.status == 404
    assert record.size_bytes == len(response.content)
    assert record.duration_ms >= 0
    assert record.request_id == response.headers["X-Request-ID"]
    assert record.getMessage().startswith(f"GET {BASE}/{image_id}/ 404 {len(response.content)} bytes ")


async def test_metrics_requests_logged_at_debug(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="app.access")
    await client.get("/metrics")
    (record,) = [record for record in caplog.records if record.name == "app.access"]
    assert record.levelno == logging.DEBUG


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-42.a:b_c", True), ("two words", False), ("x" * 65, False), ("", False)],
)
async def test_request_id_header(client: httpx.AsyncClient, sent: str, kept: bool) -> None:
    response = await client.get("/no/such/path", headers={"X-Request-ID": sent})
    returned = response.headers["X-Request-ID"]
    assert (returned == sent) is kept
    assert 1 <= len(returned) <= 64


async def test_job_log_lines_carry_ids_and_sizes(acme, source, run_worker, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="app.workers.download")

    image_id, job, _ = await download(acme, source, run_worker, Route(body=PAYLOAD))

    records = [record for record in caplog.records if record.name == "app.workers.download"]
    start, done = records
    for record in (start, done):
        assert record.job_id == job["job_id"]
        assert record.image_record_id == image_id
        assert record.attempt == 1
    assert start.getMessage().startswith("download start")
    assert done.getMessage().startswith("download done")
    assert done.size_bytes == len(PAYLOAD)
    assert done.duration_s >= 0
    assert done.md5 == job["md5_hash"]


def make_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_line_has_fields_and_extras() -> None:
    line = JsonLineFormatter().format(make_record("download failed", job_id="j1", size_bytes=12))
    data = json.loads(line)
    assert data["level"] == "WARNING"
    assert data["logger"] == "app.test"
    assert data["message"] == "download failed"
    assert data["job_id"] == "j1"
    assert data["size_bytes"] == 12
    assert data["time"].endswith("Z")
    assert len(data["time"]) == len("2026-01-31T16:02:56.596Z")


def test_json_line_has_exception() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        import sys

        record = logging.LogRecord("app.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    data = json.loads(JsonLineFormatter().format(record))
    assert "ValueError: bad value" in data["exc_info"]


def test_request_id_filter_adds_context_id() -> None:
    from app.logging_setup import request_id_var

    record = make_record("inside a request")
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert record.request_id == "req-1"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_json(restore_root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="info"))
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    logging.getLogger("app.test").debug("not shown at INFO")

    (line,) = capsys.readouterr().err.splitlines()
    data = json.loads(line)
    assert data["logger"] == "uvicorn.error"
    assert data["message"] == "Started server process [1]"


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert Settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()
