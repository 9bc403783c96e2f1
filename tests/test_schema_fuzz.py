"""Property-based tests of the whole API from its own OpenAPI schema, with schemathesis.

Every operation gets generated requests, valid and invalid. No response may be a server error,
and every response must match the schema: its status, content type, headers and body.
"""

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.auth import create_api_key
from app.config import Settings
from app.main import create_app
from app.memory_db import create_memory_database
from tests.conftest import REDIS_URL

FUZZ_SETTINGS = Settings(
    mongodb_url=None,
    redis_url=REDIS_URL,
    queue_name=f"fuzz:{uuid.uuid4().hex}",
    storage_dir=Path(os.environ.get("TMPDIR", "/tmp")) / f"os-image-fuzz-{uuid.uuid4().hex}",
    max_image_size_bytes=10 * 1024 * 1024,
)
APP = create_app(FUZZ_SETTINGS, database=create_memory_database("fuzz"), embedded_worker=False)
schema = schemathesis.openapi.from_dict(APP.openapi())
# These two checks assume the schema states every rule. Some rules cannot be stated there: the
# allowed file suffixes are a setting, and a record or an img_id must exist. Every other check
# (no 5xx, documented status codes, content types, headers and bodies) applies.
RULES_BEYOND_THE_SCHEMA = [positive_data_acceptance, negative_data_rejection]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    shutil.rmtree(FUZZ_SETTINGS.storage_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def api_key(base_url: str) -> str:
    # The catalog is mongomock underneath, which any event loop may call.
    _, key = asyncio.run(create_api_key("fuzz", "schemathesis"))
    # A few records, so that generated ids sometimes meet real ones.
    for index in range(3):
        httpx.post(
            f"{base_url}/ux/nccm/os-image/", headers={"Authorization": key},
            json={"img_id": f"seed-{index}", "organization": "fuzz", "file_name": "seed.bin"},
        ).raise_for_status()
    return key


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_schema(case, base_url: str, api_key: str) -> None:  # type: ignore[no-untyped-def]
    headers = dict(case.headers or {})
    headers["Authorization"] = api_key
    case.call_and_validate(
        base_url=base_url, headers=headers, timeout=30, excluded_checks=RULES_BEYOND_THE_SCHEMA
    )
