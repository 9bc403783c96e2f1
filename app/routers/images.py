"""Image records: list, create, read, replace, patch, delete and multidelete."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from app.auth import CallerDep
from app.dependencies import QueueDep, SettingsDep, StorageDep
from app.errors import InvalidInput, NotFound
from app.models import openapi_examples as examples
from app.models.documents import FileStatus
from app.models.schemas import (
    ImagePatch,
    ImagePublic,
    ImageWrite,
    MultiDeleteRequest,
    MultiDeleteResult,
    ReceiveResult,
    SortField,
)
from app.services import images as image_service
from app.services.jobs import delete_image

router = APIRouter(tags=["images"])

FilterText = Annotated[str | None, Query(max_length=255)]
ImageRecordId = Annotated[
    str, Path(description="The image record's id, 24 hex digits.", examples=[examples.IMAGE_RECORD_ID])
]


@router.get("/", response_model=list[ImagePublic])
async def read_images(
    caller: CallerDep,
    response: Response,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    items_per_page: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 25,
    sort: Annotated[SortField | None, Query(description="Image field to sort by; default id.")] = None,
    reverse: Annotated[bool, Query(description="Sort in descending order.")] = False,
    vendor: FilterText = None,
    ostype: FilterText = None,
    series: FilterText = None,
    model: FilterText = None,
    os_version: FilterText = None,
    image_type: FilterText = None,
    img_id: FilterText = None,
    file_status: FileStatus | None = None,
    search: Annotated[
        str | None, Query(max_length=255, description="Case-insensitive text in name, description, vendor, model, series, version or file name.")
    ] = None,
) -> list[ImagePublic]:
    """Return one page of the organization's live images, with the total in X-Total-Count."""
    filters = {
        "vendor": vendor, "ostype": ostype, "series": series, "model": model,
        "os_version": os_version, "image_type": image_type, "img_id": img_id,
        "file_status": file_status.value if file_status else None,
    }
    query = image_service.build_list_query(caller, filters, search)
    images, total = await image_service.list_images(
        query, page=page, items_per_page=items_per_page, sort=None if sort is None else sort.value,
        reverse=reverse,
    )
    response.headers["X-Total-Count"] = str(total)
    return [ImagePublic.from_document(image) for image in images]


@router.post("/", response_model=ImagePublic, status_code=status.HTTP_201_CREATED)
async def create_image(caller: CallerDep, body: ImageWrite, settings: SettingsDep) -> ImagePublic:
    """Create an image record. Server-owned fields in the body are ignored."""
    image = await image_service.create_image(caller, body, settings)
    return ImagePublic.from_document(image)


@router.post("/multidelete/", response_model=MultiDeleteResult)
async def delete_images(
    caller: CallerDep, body: MultiDeleteRequest, queue: QueueDep, storage: StorageDep
) -> MultiDeleteResult:
    """Delete each listed image; ids that are unknown, malformed or deleted come back as not_found."""
    deleted, not_found = [], []
    for image_id in dict.fromkeys(body.ids):
        try:
            image = await image_service.get_image(caller, image_id)
        except NotFound:
            not_found.append(image_id)
            continue
        await delete_image(caller, image, queue, storage)
        deleted.append(image_id)
    return MultiDeleteResult(deleted=deleted, not_found=not_found)


_RECORDS = TypeAdapter(list[ImageWrite])
_RECEIVE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One image record, or a list of up to 500.",
        "content": {"application/json": {
            "schema": {"oneOf": [
                {"$ref": "#/components/schemas/ImageWrite"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ImageWrite"}, "maxItems": 500},
            ]},
            "examples": {
                "records": {
                    "summary": "Two records",
                    "value": [examples.IMAGE_WRITE, examples.CISCO_IMAGE_WRITE],
                },
                "record": {"summary": "One record", "value": examples.CISCO_IMAGE_WRITE},
            },
        }},
    }
}


def _parse_records(body: Any) -> list[ImageWrite]:
    """Validate one record or a list; errors name the list index and the field, as in `loc`."""
    is_list = isinstance(body, list)
    try:
        return _RECORDS.validate_python(body if is_list else [body])
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            location = error["loc"] if is_list else error["loc"][1:]
            errors.append({**error, "loc": ("body", *location)})
        raise RequestValidationError(errors) from None


@router.post("/os-img-recve/", response_model=ReceiveResult, openapi_extra=_RECEIVE_OPENAPI)
async def receive_images(
    caller: CallerDep,
    body: Annotated[Any, Body(include_in_schema=False)],
    settings: SettingsDep,
) -> ReceiveResult:
    """Upsert image records pushed by another service, by organization and img_id.

    A repeated push changes nothing. A bad record fails the whole request with a 422 whose `loc`
    names its index and field, and nothing is written.
    """
    records = _parse_records(body)
    if not records:
        raise InvalidInput("the list is empty: send at least one image record")
    if len(records) > 500:
        raise InvalidInput(f"{len(records)} records in one request; send at most 500")
    created, updated, unchanged, images = await image_service.receive_images(caller, records, settings)
    return ReceiveResult(
        created=created, updated=updated, unchanged=unchanged,
        records=[ImagePublic.from_document(image) for image in images],
    )


@router.get("/{id}/", response_model=ImagePublic)
async def read_image(caller: CallerDep, id: ImageRecordId) -> ImagePublic:
    image = await image_service.get_image(caller, id)
    return ImagePublic.from_document(image)


@router.put("/{id}/", response_model=ImagePublic)
async def replace_image(caller: CallerDep, id: ImageRecordId, body: ImageWrite, settings: SettingsDep) -> ImagePublic:
    """Replace every client-owned field; fields left out are reset to their defaults."""
    image = await image_service.get_image(caller, id)
    image = await image_service.update_image(caller, image, body, settings, replace=True)
    return ImagePublic.from_document(image)


@router.patch("/{id}/", response_model=ImagePublic)
async def patch_image(caller: CallerDep, id: ImageRecordId, body: ImagePatch, settings: SettingsDep) -> ImagePublic:
    """Change only the client-owned fields given; a field sent as null is cleared."""
    image = await image_service.get_image(caller, id)
    image = await image_service.update_image(caller, image, body, settings, replace=False)
    return ImagePublic.from_document(image)


@router.delete("/{id}/", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove_image(caller: CallerDep, id: ImageRecordId, queue: QueueDep, storage: StorageDep) -> Response:
    """Soft-delete: the record stays for the audit trail, its file and running download go."""
    image = await image_service.get_image(caller, id)
    await delete_image(caller, image, queue, storage)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
