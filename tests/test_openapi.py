"""The OpenAPI document (API-key scheme, read-only fields, examples) and the offline docs pages."""

import re
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.models import openapi_examples as examples
from app.models.schemas import (
    SERVER_OWNED_FIELDS,
    AuditEntry,
    DownloadOptions,
    ImagePatch,
    ImagePublic,
    ImageSummary,
    ImageWrite,
    JobStatus,
    TriggerResult,
)

API_PREFIX = "/ux/nccm/os-image/"
OPERATIONS_WITHOUT_KEY = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    ]


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`, and `items` of arrays, to the schema that describes one value."""
    while True:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            schema = openapi["components"]["schemas"][name]
        elif schema.get("type") == "array" and "items" in schema:
            schema = schema["items"]
        else:
            return schema


def has_example(openapi: dict[str, Any], content: dict[str, Any]) -> bool:
    for media in content.values():
        if "example" in media or "examples" in media:
            return True
        if "examples" in resolve(openapi, media.get("schema", {})):
            return True
    return False


def test_api_key_scheme(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"]["type"] == "apiKey"
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "Authorization"


def test_operations_declare_security(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        if (method, path) in OPERATIONS_WITHOUT_KEY:
            assert "security" not in operation, (method, path)
        else:
            assert path.startswith(API_PREFIX)
            assert operation["security"] == [{"APIKeyHeader": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_every_operation_has_example(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        where = f"{method.upper()} {path}"
        body = operation.get("requestBody")
        if body is not None:
            assert has_example(openapi, body["content"]), f"{where}: request body has no example"
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success, where
        for code in success:
            content = operation["responses"][code].get("content")
            if content is None:
                assert code == "204", where
                continue
            assert has_example(openapi, content), f"{where}: response {code} has no example"
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"].get("examples"), f"{where}: path parameter {parameter['name']}"


def test_server_owned_fields_read_only(openapi: dict[str, Any]) -> None:
    properties = openapi["components"]["schemas"]["ImagePublic"]["properties"]
    read_only = {name for name, field in properties.items() if field.get("readOnly")}
    assert read_only == set(SERVER_OWNED_FIELDS)
    for name in ("id", "image_id", "sha256_hash", "file_status", "md5_verified", "uploader_profile"):
        assert properties[name]["readOnly"] is True


def test_client_fields_writable(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for schema in ("ImageWrite", "ImagePatch"):
        properties = schemas[schema]["properties"]
        assert {name for name, field in properties.items() if field.get("readOnly")} == {"modified_time"}
    for name in ("img_id", "md5_hash", "file_path", "file_name", "image_size"):
        assert "readOnly" not in schemas["ImagePublic"]["properties"][name]


def test_status_schemas_fully_read_only(openapi: dict[str, Any]) -> None:
    for schema in ("JobStatus", "AuditEntry", "DownloadOptions"):
        properties = openapi["components"]["schemas"][schema]["properties"]
        assert all(field.get("readOnly") for field in properties.values()), schema


@pytest.mark.parametrize(
    ("model", "example"),
    [
        (ImageWrite, examples.IMAGE_WRITE),
        (ImagePatch, examples.IMAGE_PATCH),
        (ImagePublic, examples.IMAGE_PUBLIC),
        (ImageSummary, examples.IMAGE_SUMMARY),
        (JobStatus, examples.JOB_STATUS),
        (TriggerResult, {"jobs": [examples.QUEUED_JOB_STATUS]}),
        (AuditEntry, examples.AUDIT_ENTRY),
        (DownloadOptions, examples.DOWNLOAD_OPTIONS),
    ],
)
def test_examples_match_models(model: type[BaseModel], example: dict[str, Any]) -> None:
    parsed = model.model_validate(example)
    assert set(example) <= set(type(parsed).model_fields)


async def test_docs_pages_use_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "img-src 'self' data:" in policy
        html = response.text
        assert "://" not in html, f"{page} links outside the service"
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith("/docs-assets/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0


async def test_docs_asset_types(client: httpx.AsyncClient) -> None:
    expected = {
        "swagger-ui-bundle.js": "javascript",
        "swagger-ui.css": "text/css",
        "redoc.standalone.js": "javascript",
        "favicon.png": "image/png",
    }
    for name, content_type in expected.items():
        response = await client.get(f"/docs-assets/{name}")
        assert response.status_code == 200, name
        assert content_type in response.headers["content-type"], name
