"""An image's file: upload (plain, resumable or multipart), upload status, and download."""

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from app.auth import CallerDep, check_organization
from app.config import Settings
from app.dependencies import SettingsDep, StorageDep
from app.errors import ErrorBody, InvalidInput, NotFound, UploadTimeout
from app.models import openapi_examples as examples
from app.models.documents import FileStatus
from app.models.schemas import UploadStatus, UploadStatusRequest
from app.multipart_stream import MultipartFileStream
from app.routers.images import ImageRecordId
from app.services import images as image_service
from app.services import serving, uploads

router = APIRouter(tags=["files"])


class ImageFileResponse(FileResponse):
    """A file response that reads 1 MiB at a time instead of Starlette's 64 KiB.

    Servers without zero-copy file sending (uvicorn has none) pass every read through the event
    loop, so fewer, larger reads serve multi-GB images faster for the same memory per request.
    """

    chunk_size = 1024 * 1024

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

_FILE_SAMPLE = (
    f"A .swi file is a ZIP archive, so EOS-4.30.1F.swi ({examples.SIZE_BYTES} bytes) starts with "
    "these 4 bytes, the ZIP signature."
)
_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The image file, as the raw body (any content type but multipart), or as the one file "
            "part of multipart/form-data. Send `Content-Range: bytes START-END/TOTAL` with raw "
            "pieces to upload in parts and to resume after a cut; POST /file-upload-status/ "
            "returns the offset to continue from."
        ),
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "examples": {
                    "swi": {
                        "summary": "The start of EOS-4.30.1F.swi",
                        "description": (
                            "The body is the whole file, or one Content-Range piece. " + _FILE_SAMPLE
                        ),
                        "value": examples.SWI_LEADING_BYTES,
                    }
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "examples": {
                    "swi": {
                        "summary": "The start of EOS-4.30.1F.swi as the file part",
                        "description": "The part holds the whole file. " + _FILE_SAMPLE,
                        "value": {"file": examples.SWI_LEADING_BYTES},
                    }
                },
            },
        },
    }
}


async def _request_body(request: Request, settings: Settings) -> AsyncIterator[bytes]:
    """Yield the request body in chunks; raise UploadTimeout when idle and ClientGone on a disconnect."""
    iterator = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), settings.upload_idle_timeout_s)
        except StopAsyncIteration:
            return
        except ClientDisconnect:
            raise uploads.ClientGone() from None
        except TimeoutError:
            raise UploadTimeout(
                f"no body bytes arrived for {settings.upload_idle_timeout_s:g} s "
                "(UPLOAD_IDLE_TIMEOUT_S): the bytes received so far are kept; resume with "
                "Content-Range from the offset POST /file-upload-status/ returns"
            ) from None
        if chunk:
            yield chunk


async def _first_chunk_and_rest(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pull one chunk now (so a multipart part's headers are parsed), then yield everything."""
    iterator = stream.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None

    async def chained() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for chunk in iterator:
            yield chunk

    return chained()


def _declared_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInput(f"Content-Length {value!r} is not a number", field="Content-Length", location="header")
    return int(value)


@router.put(
    "/{id}/file/",
    response_model=UploadStatus,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_OPENAPI,
    responses={
        200: {
            "model": UploadStatus,
            "description": "A Content-Range piece was kept; continue at `offset`.",
            "content": {"application/json": {"example": examples.UPLOAD_STATUS_PARTIAL}},
        },
        201: {"content": {"application/json": {"example": examples.UPLOAD_STATUS_COMPLETE}}},
        408: {"model": ErrorBody, "description": "The client sent nothing for UPLOAD_IDLE_TIMEOUT_S."},
        413: {"model": ErrorBody, "description": "The file is larger than MAX_IMAGE_SIZE_BYTES."},
    },
)
async def upload_file(
    caller: CallerDep,
    id: ImageRecordId,
    request: Request,
    response: Response,
    settings: SettingsDep,
    storage: StorageDep,
    content_range: Annotated[str | None, Header(description="bytes START-END/TOTAL")] = None,
) -> UploadStatus:
    """Upload the image's file, streamed to storage and hashed on the way.

    Returns 201 with `complete: true` once the file is stored and verified, or 200 with the next
    `offset` after a Content-Range piece. A body whose MD5 differs from a declared `md5_hash` is
    discarded with a 422 and the record stays as it was.
    """
    image = await image_service.get_image(caller, id)
    declared = _declared_length(request.headers.get("content-length"))
    content_type = request.headers.get("content-type", "")
    is_multipart = content_type.lower().startswith("multipart/form-data")
    parsed_range = uploads.parse_content_range(content_range) if content_range else None
    if parsed_range is not None and is_multipart:
        raise InvalidInput(
            "Content-Range works with a raw body only, not with multipart/form-data",
            field="Content-Range", location="header",
        )
    if parsed_range is not None and declared is not None and declared != parsed_range.length:
        raise InvalidInput(
            f"Content-Length {declared} differs from the {parsed_range.length} bytes of Content-Range",
            field="Content-Length", location="header",
        )
    size_for_check = declared
    if is_multipart and declared is not None:
        size_for_check = max(0, declared - MULTIPART_OVERHEAD_BYTES)
    await uploads.check_upload_allowed(image, settings, size_for_check)

    body: AsyncIterator[bytes] = _request_body(request, settings)
    part_file_name = None
    if is_multipart:
        multipart = MultipartFileStream(content_type, body)
        body = await _first_chunk_and_rest(multipart)
        part_file_name = multipart.file_name
    file_name = uploads.resolve_file_name(image, part_file_name, settings)

    try:
        outcome = await uploads.receive_upload(
            caller, image, body, content_range=parsed_range, file_name=file_name,
            settings=settings, storage=storage,
        )
    except uploads.ClientGone:
        return Response(status_code=499)  # type: ignore[return-value] - nobody reads it
    response.status_code = status.HTTP_201_CREATED if outcome.complete else status.HTTP_200_OK
    return UploadStatus.from_image(outcome.image, await storage.size_of(storage.upload_path(id)))


@router.post("/file-upload-status/", response_model=UploadStatus)
async def read_upload_status(
    caller: CallerDep, body: UploadStatusRequest, storage: StorageDep
) -> UploadStatus:
    """Upload state of the image named by `id` or `img_id`: bytes kept, offset, digests."""
    check_organization(caller, body.organization)
    if body.id is not None:
        image = await image_service.get_image(caller, body.id)
    elif body.img_id is not None:
        image = await image_service.find_live_image_by_img_id(caller, body.img_id)
    else:
        raise InvalidInput("name the image: give id or img_id", field="id")
    return UploadStatus.from_image(image, await storage.size_of(storage.upload_path(str(image.id))))


def _file_header(description: str, example: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}, "example": example}


_FILE_HEADERS: dict[str, Any] = {
    "ETag": _file_header("The file's SHA-256 in hex, quoted.", examples.FILE_HEADERS["ETag"]),
    "Repr-Digest": _file_header(
        "The file's SHA-256 in base64, as RFC 9530 defines it.", examples.FILE_HEADERS["Repr-Digest"]
    ),
    "Digest": _file_header(
        "The same SHA-256 in the older RFC 3230 form.", examples.FILE_HEADERS["Digest"]
    ),
    "X-Image-MD5": _file_header(
        "The file's MD5 in hex; empty when the record has none.", examples.FILE_HEADERS["X-Image-MD5"]
    ),
    "Content-Disposition": _file_header(
        "attachment, with the record's file_name, else img_id.bin.",
        examples.FILE_HEADERS["Content-Disposition"],
    ),
}
_RANGE_HEADERS: dict[str, Any] = {
    **_FILE_HEADERS,
    "Content-Range": _file_header(
        "The bytes sent and the file's size.", examples.FILE_RANGE_HEADERS["Content-Range"]
    ),
}
_FILE_CONTENT: dict[str, Any] = {
    "application/octet-stream": {
        "schema": {"type": "string", "format": "binary"},
        "examples": {
            "swi": {
                "summary": "The start of EOS-4.30.1F.swi",
                "description": "The body is the whole file. " + _FILE_SAMPLE,
                "value": examples.SWI_LEADING_BYTES,
            }
        },
    }
}
_RANGE_CONTENT: dict[str, Any] = {
    "application/octet-stream": {
        "schema": {"type": "string", "format": "binary"},
        "examples": {
            "first_bytes": {
                "summary": "Range: bytes=0-3 of EOS-4.30.1F.swi",
                "description": _FILE_SAMPLE,
                "value": examples.SWI_LEADING_BYTES,
            }
        },
    }
}
_SERVE_ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "The file matches If-None-Match."},
    404: {"model": ErrorBody, "description": "No such image, or it has no verified file yet."},
    416: {"description": "The range is outside the file."},
}
_SERVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The verified file.", "headers": _FILE_HEADERS, "content": _FILE_CONTENT},
    206: {"description": "The requested byte range.", "headers": _RANGE_HEADERS, "content": _RANGE_CONTENT},
    **_SERVE_ERRORS,
}
# A response to HEAD has no body (RFC 9110, section 9.3.2), so these declare only the headers.
_HEAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The headers of the verified file.", "headers": _FILE_HEADERS},
    206: {"description": "The headers of the requested byte range.", "headers": _RANGE_HEADERS},
    **_SERVE_ERRORS,
}


@router.get("/{id}/file/", response_class=FileResponse, responses=_SERVE_RESPONSES)
async def download_file(caller: CallerDep, id: ImageRecordId, request: Request, storage: StorageDep) -> Response:
    """Serve the image's verified file, with Range, ETag (the SHA-256) and digest headers."""
    return await _serve_file(caller, id, request, storage)


@router.head("/{id}/file/", response_class=FileResponse, responses=_HEAD_RESPONSES)
async def read_file_headers(
    caller: CallerDep, id: ImageRecordId, request: Request, storage: StorageDep
) -> Response:
    """Send the headers a GET of the file would send, without the body."""
    return await _serve_file(caller, id, request, storage)


async def _serve_file(caller: CallerDep, id: str, request: Request, storage: StorageDep) -> Response:
    image = await image_service.get_image(caller, id)
    if image.file_status != FileStatus.AVAILABLE or not image.image_id or not image.sha256_hash:
        raise NotFound(
            f"image {id} has no verified file yet (file_status {image.file_status}): "
            "upload one or trigger a download", field="file",
        )
    path = storage.object_path(image.image_id)
    if not path.is_file():
        raise NotFound(f"the stored file of image {id} is missing from storage", field="file")

    etag = f'"{image.sha256_hash}"'
    sha256_b64 = base64.b64encode(bytes.fromhex(image.sha256_hash)).decode()
    headers = {
        "ETag": etag,
        "Repr-Digest": f"sha-256=:{sha256_b64}:",
        "Digest": f"SHA-256={sha256_b64}",
        "X-Image-MD5": image.md5_hash or "",
        "Cache-Control": "private, no-cache",
    }
    if serving.matches_if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if request.method == "GET":
        await serving.record_served(caller, image, request.headers.get("range"))
    return ImageFileResponse(
        path,
        media_type="application/octet-stream",
        filename=image.file_name or f"{image.img_id}.bin",
        headers=headers,
    )
