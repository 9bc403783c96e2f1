"""The OpenAPI document (API-key scheme, read-only fields, examples) and the offline docs pages."""

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.models import openapi_examples as examples
from app.models import schemas
from app.models.schemas import (
    CLIENT_FIELDS,
    SERVER_OWNED_FIELDS,
    AuditEntry,
    DownloadOptions,
    ImagePatch,
    ImagePublic,
    ImageSummary,
    ImageWrite,
    JobStatus,
    ReceiveResult,
    ScheduleOptions,
    SchedulePublic,
    ScheduleSave,
    ScheduleSearchOptions,
    TriggerResult,
    UploadStatus,
    UploadStatusRequest,
)
from app.routers import catalog, files, images, jobs, schedules

API_PREFIX = "/ux/nccm/os-image/"
Example = tuple[str, dict[str, Any], Any]
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
            response = operation["responses"][code]
            for name, header in response.get("headers", {}).items():
                assert "example" in header, f"{where}: response {code} header {name} has no example"
            content = response.get("content")
            if method == "head":
                # A response to HEAD has no body, so only its headers can be shown.
                assert content is None, f"{where}: response {code} declares a body"
                continue
            if content is None:
                assert code == "204", where
                continue
            assert has_example(openapi, content), f"{where}: response {code} has no example"
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"].get("examples"), f"{where}: path parameter {parameter['name']}"


def test_image_fields_all_classified() -> None:
    classified = set(SERVER_OWNED_FIELDS) | set(CLIENT_FIELDS) | {"creation_time"}
    assert set(ImagePublic.model_fields) == classified
    assert not set(SERVER_OWNED_FIELDS) & set(CLIENT_FIELDS)


def test_server_owned_fields_read_only(openapi: dict[str, Any]) -> None:
    properties = openapi["components"]["schemas"]["ImagePublic"]["properties"]
    read_only = {name for name, field in properties.items() if field.get("readOnly")}
    assert read_only == set(SERVER_OWNED_FIELDS)
    for name in (
        "id", "image_id", "sha256_hash", "file_status", "md5_verified", "uploader_profile",
        "served_count", "served_bytes",
    ):
        assert properties[name]["readOnly"] is True


def test_client_fields_writable(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for schema in ("ImageWrite", "ImagePatch"):
        properties = schemas[schema]["properties"]
        assert {name for name, field in properties.items() if field.get("readOnly")} == {"modified_time"}
    for name in ("img_id", "md5_hash", "file_path", "file_name", "image_size"):
        assert "readOnly" not in schemas["ImagePublic"]["properties"][name]


def test_status_schemas_fully_read_only(openapi: dict[str, Any]) -> None:
    for schema in (
        "JobStatus", "AuditEntry", "DownloadOptions", "UploadStatus", "ReceiveResult",
        "SchedulePublic", "ScheduleOptions", "ScheduleSearchOptions",
    ):
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
        (TriggerResult, {"jobs": [examples.CANCELLED_JOB_STATUS]}),
        (AuditEntry, examples.AUDIT_ENTRY),
        (DownloadOptions, examples.DOWNLOAD_OPTIONS),
        (ImageWrite, examples.CISCO_IMAGE_WRITE),
        (ImagePublic, examples.CISCO_IMAGE_PUBLIC),
        (ReceiveResult, examples.RECEIVE_RESULT),
        (UploadStatusRequest, {"img_id": "eos-4.30"}),
        (UploadStatusRequest, {"id": examples.IMAGE_RECORD_ID}),
        (UploadStatus, examples.UPLOAD_STATUS_PARTIAL),
        (UploadStatus, examples.UPLOAD_STATUS_COMPLETE),
        (ScheduleSave, examples.SCHEDULE_SAVE),
        (ScheduleSave, examples.SCHEDULE_CHANGE),
        (SchedulePublic, examples.SCHEDULE_PUBLIC),
        (SchedulePublic, examples.DISABLED_SCHEDULE_PUBLIC),
        (SchedulePublic, examples.DELETED_SCHEDULE_PUBLIC),
        (ScheduleOptions, examples.SCHEDULE_OPTIONS),
        (ScheduleSearchOptions, examples.SCHEDULE_SEARCH_OPTIONS),
    ],
)
def test_examples_match_models(model: type[BaseModel], example: dict[str, Any]) -> None:
    parsed = model.model_validate(example)
    assert set(example) <= set(type(parsed).model_fields)


def media_examples(where: str, schema: dict[str, Any], media: dict[str, Any]) -> Iterator[Example]:
    if "example" in media:
        yield where, schema, media["example"]
    for name, example in media.get("examples", {}).items():
        # schemathesis would send an Example Object without `value` as the body itself.
        assert "value" in example, f"{where} example {name} has no value"
        yield f"{where} example {name}", schema, example["value"]


def declared_examples(openapi: dict[str, Any]) -> Iterator[Example]:
    """Yield (where, schema, example) for each example the code declares, with its published schema.

    The examples come from the models and routers, not from the document, because FastAPI drops
    every null value from the examples it publishes.
    """
    components = openapi["components"]["schemas"]
    for model in vars(schemas).values():
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__name__ in components:
            for example in model.model_json_schema().get("examples", []):
                yield f"schema {model.__name__}", components[model.__name__], example
    for router in (catalog.router, files.router, images.router, jobs.router, schedules.router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = API_PREFIX.rstrip("/") + route.path
            for method in sorted(route.methods):
                where = f"{method} {path}"
                operation = openapi["paths"][path][method.lower()]
                body = (route.openapi_extra or {}).get("requestBody", {})
                for media_type, media in body.get("content", {}).items():
                    schema = operation["requestBody"]["content"][media_type]["schema"]
                    yield from media_examples(f"{where} request body {media_type}", schema, media)
                for code, response in route.responses.items():
                    published = operation["responses"][str(code)]
                    for media_type, media in response.get("content", {}).items():
                        schema = published["content"][media_type].get("schema", {})
                        yield from media_examples(f"{where} response {code} {media_type}", schema, media)
                    for name, header in response.get("headers", {}).items():
                        yield f"{where} response {code} header {name}", header["schema"], header["example"]
                for parameter in operation.get("parameters", []):
                    for example in parameter["schema"].get("examples", []):
                        yield f"{where} parameter {parameter['name']}", parameter["schema"], example


def test_declared_examples_match_schemas(openapi: dict[str, Any]) -> None:
    checked = set()
    for where, schema, example in declared_examples(openapi):
        # jsonschema-rs comes with schemathesis, which validates responses with it. The components
        # sit beside the schema, so its `#/components/...` references resolve.
        validator = jsonschema_rs.Draft202012Validator({**schema, "components": openapi["components"]})
        errors = [error.message for error in validator.iter_errors(example)]
        assert not errors, f"{where}: {errors}"
        checked.add(where)
    for where in (
        "schema SchedulePublic",
        "POST /ux/nccm/os-image/cancel-osdownload/ response 200 application/json",
        "POST /ux/nccm/os-image/os-img-recve/ request body application/json example records",
        "PUT /ux/nccm/os-image/{id}/file/ request body multipart/form-data example swi",
        "HEAD /ux/nccm/os-image/{id}/file/ response 206 header Content-Range",
        "GET /ux/nccm/os-image/os-schedule-detail/ parameter id",
    ):
        assert where in checked, where


async def test_schedule_examples_accepted(acme: httpx.AsyncClient) -> None:
    created = await acme.post(API_PREFIX, json=examples.IMAGE_WRITE)
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]

    saved = await acme.post(
        f"{API_PREFIX}save-osimage-schedule-info/",
        json={**examples.SCHEDULE_SAVE, "image_ids": [image_id]},
    )
    assert saved.status_code == 200, saved.text
    schedule = saved.json()
    for name in (
        "organization", "name", "description", "frequency", "time_zone", "start_time",
        "start_local_time", "end_time", "end_local_time", "weekdays", "day_of_month",
        "cron_expression", "enabled", "status", "is_deleted",
    ):
        assert schedule[name] == examples.SCHEDULE_PUBLIC[name], name

    search_options = await acme.get(f"{API_PREFIX}os-schedule-search-options/")
    assert search_options.status_code == 200, search_options.text
    # The example names the image by its example id; this database gave it another one.
    expected = json.dumps(examples.SCHEDULE_SEARCH_OPTIONS).replace(examples.IMAGE_RECORD_ID, image_id)
    assert search_options.json() == json.loads(expected)

    changed = await acme.post(
        f"{API_PREFIX}save-osimage-schedule-info/",
        json={**examples.SCHEDULE_CHANGE, "id": schedule["id"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["weekdays"] == examples.SCHEDULE_CHANGE["weekdays"]
    assert changed.json()["name"] == examples.SCHEDULE_SAVE["name"]


async def test_schedule_options_example_matches_response(acme: httpx.AsyncClient) -> None:
    response = await acme.get(f"{API_PREFIX}os-schedule-options/")
    assert response.status_code == 200, response.text
    options = response.json()
    example = dict(examples.SCHEDULE_OPTIONS)
    assert set(example.pop("time_zones")) <= set(options.pop("time_zones"))
    assert options == example


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
