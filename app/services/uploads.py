"""Streamed, resumable uploads of an image's file, and the upload status.

A plain PUT sends the whole file. A client that may be cut off sends `Content-Range: bytes
START-END/TOTAL` pieces instead. The bytes of every piece that arrived stay on disk, and the
status endpoint returns the offset to continue from. Bytes of a request cut off in the middle are
kept too. The file counts as stored only after the last byte arrived, was fsynced and matched the
declared MD5 and size; then it is renamed into place like a download.
"""

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from beanie import PydanticObjectId

from app.auth import Caller
from app.config import Settings
from app.errors import Conflict, InvalidInput, PayloadTooLarge, UploadTimeout
from app.hashing import DigestingFileWriter, FileDigests, HashState, hash_file_prefix
from app.models.documents import FileStatus, OsImage, UploadedType, expected_md5
from app.services.audit import record_event
from app.services.jobs import active_job
from app.storage import Storage
from app.timeutil import utc_now
from app.validation import check_allowed_suffix, check_file_name

logger = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"^bytes (\d{1,20})-(\d{1,20})/(\d{1,20})$")
# Digests of unfinished uploads in this process, so a resume need not re-read the kept bytes.
# Another process (or a restart) re-hashes them from disk instead, which gives the same result.
_HASH_STATES: "OrderedDict[str, HashState]" = OrderedDict()
_MAX_HASH_STATES = 64


class ClientGone(Exception):
    """The client closed the connection, so no response can reach it."""


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive, as in the header
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class UploadOutcome:
    image: OsImage
    complete: bool
    offset: int
    digests: FileDigests | None


def parse_content_range(value: str) -> ContentRange:
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        raise InvalidInput(
            f"Content-Range {value!r} is invalid: use 'bytes START-END/TOTAL', e.g. bytes 0-1048575/5000000",
            field="Content-Range", location="header",
        )
    start, end, total = (int(group) for group in match.groups())
    if not start <= end < total:
        raise InvalidInput(
            f"Content-Range {value!r} is invalid: START <= END < TOTAL must hold",
            field="Content-Range", location="header",
        )
    return ContentRange(start, end, total)


def _remember_hash_state(image_id: str, state: HashState) -> None:
    _HASH_STATES[image_id] = state
    _HASH_STATES.move_to_end(image_id)
    while len(_HASH_STATES) > _MAX_HASH_STATES:
        _HASH_STATES.popitem(last=False)


async def _resume_state(storage: Storage, image_id: str, offset: int) -> HashState | None:
    if offset == 0:
        return None
    state = _HASH_STATES.get(image_id)
    if state is not None and state.size_bytes == offset:
        return state
    return await hash_file_prefix(storage.upload_path(image_id), offset)


async def _acquire_lease(image: OsImage, settings: Settings) -> None:
    now = utc_now()
    result = await OsImage.get_pymongo_collection().update_one(
        {
            "_id": image.id, "is_deleted": False,
            "$or": [{"upload_lease_until": None}, {"upload_lease_until": {"$lt": now}}],
        },
        {"$set": {"upload_lease_until": now + timedelta(seconds=settings.upload_lease_s)}},
    )
    if result.matched_count == 0:
        raise Conflict(
            f"another upload to image {image.id} is in progress: wait for it to finish, "
            "or ask POST /file-upload-status/ where to resume",
        )


async def _release_lease(image: OsImage, offset: int, total: int | None, **fields: Any) -> None:
    await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id},
        {"$set": {"upload_lease_until": None, "upload_offset": offset, "upload_total": total, **fields}},
    )


def resolve_file_name(image: OsImage, part_file_name: str | None, settings: Settings) -> str:
    """Return the name the file is known by: the record's, else the multipart part's."""
    name = image.file_name or part_file_name
    if not name:
        raise InvalidInput(
            "the image has no file_name: set it on the record, or upload as multipart/form-data "
            "with a file name", field="file_name",
        )
    try:
        check_file_name(name)
        check_allowed_suffix(name, settings.allowed_file_types)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="file_name") from None
    return name


async def check_upload_allowed(image: OsImage, settings: Settings, declared_bytes: int | None) -> None:
    """Reject an upload before its body is read: size over the limit, or a download running."""
    if declared_bytes is not None and declared_bytes > settings.max_image_size_bytes:
        raise PayloadTooLarge(
            f"the file has {declared_bytes} bytes, above the limit of "
            f"{settings.max_image_size_bytes} bytes (MAX_IMAGE_SIZE_BYTES)"
        )
    if await active_job(image) is not None:
        raise Conflict(
            f"a download of image {image.id} is queued or running: wait for it, or delete and "
            "recreate the image to stop it, before uploading a file",
        )


async def receive_upload(
    caller: Caller,
    image: OsImage,
    body: AsyncIterator[bytes],
    *,
    content_range: ContentRange | None,
    file_name: str,
    settings: Settings,
    storage: Storage,
) -> UploadOutcome:
    """Write an upload request's body to the image's unfinished upload; store the file when complete.

    `body` raises ClientGone when the client disconnects and UploadTimeout when it stalls.
    """
    image_id = str(image.id)
    path = storage.upload_path(image_id)
    if content_range is not None and content_range.total > settings.max_image_size_bytes:
        raise PayloadTooLarge(
            f"Content-Range declares {content_range.total} bytes, above the limit of "
            f"{settings.max_image_size_bytes} bytes (MAX_IMAGE_SIZE_BYTES)"
        )
    await _acquire_lease(image, settings)
    try:
        return await _receive_with_lease(
            caller, image, body, content_range, file_name, settings, storage, path
        )
    finally:
        await OsImage.get_pymongo_collection().update_one(
            {"_id": image.id}, {"$set": {"upload_lease_until": None}}
        )


async def _receive_with_lease(  # noqa: PLR0913 - one request's whole context
    caller: Caller, image: OsImage, body: AsyncIterator[bytes], content_range: ContentRange | None,
    file_name: str, settings: Settings, storage: Storage, path: Any,
) -> UploadOutcome:
    image_id = str(image.id)
    kept_bytes = await storage.size_of(path)
    # Reload: the lease guarantees no other request changes the upload fields meanwhile.
    fresh = await OsImage.get(image.id)
    assert fresh is not None
    image = fresh

    if content_range is None:
        start, total = 0, None
    else:
        start, total = content_range.start, content_range.total
        if image.upload_total is not None and kept_bytes and image.upload_total != total:
            raise Conflict(
                f"Content-Range total {total} differs from the {image.upload_total} bytes of the "
                "upload in progress: send the same total, or restart with a plain PUT",
                field="Content-Range",
            )
        if start != kept_bytes:
            raise Conflict(
                f"the upload continues at byte {kept_bytes}, not {start}: send "
                f"'Content-Range: bytes {kept_bytes}-END/{total}'",
                field="Content-Range",
            )

    resume = await _resume_state(storage, image_id, start)
    action = "upload_resumed" if start > 0 else "upload_started"
    now = utc_now()
    started_fields: dict[str, Any] = {"upload_total": total}
    if start == 0:
        started_fields["upload_started_time"] = now
        if image.file_status != FileStatus.AVAILABLE:
            started_fields["file_status"] = FileStatus.UPLOADING.value
    await OsImage.get_pymongo_collection().update_one({"_id": image.id}, {"$set": started_fields})
    await record_event(
        caller.organization, action, caller.actor, image_record_id=image.id, img_id=image.img_id,
        message=f"upload of {file_name} from byte {start}" + (f" of {total}" if total else ""),
        offset=start, total_bytes=total,
    )

    writer = DigestingFileWriter(path, resume)
    await writer.open()
    limit = settings.max_image_size_bytes if content_range is None else content_range.end + 1
    try:
        buffer = bytearray()
        async for chunk in body:
            if writer.size_bytes + len(buffer) + len(chunk) > limit:
                raise _overrun(content_range, settings)
            buffer += chunk
            if len(buffer) >= settings.download_chunk_bytes:
                await writer.write(bytes(buffer))
                buffer.clear()
        if buffer:
            await writer.write(bytes(buffer))
    except (ClientGone, UploadTimeout, OSError, asyncio.CancelledError) as exc:
        if buffer and not isinstance(exc, OSError):
            await asyncio.shield(writer.write(bytes(buffer)))
        await _keep_partial(caller, image, writer, total, exc)
        raise
    except PayloadTooLarge:
        await _discard(caller, image, writer, "too_large", "the body exceeded its declared size")
        raise
    except InvalidInput as exc:
        # A malformed multipart body, found while it streams in.
        await _discard(caller, image, writer, "invalid_body", exc.message)
        raise

    if content_range is not None and writer.size_bytes != content_range.end + 1:
        await writer.close()
        await _save_progress(image, writer, total)
        raise InvalidInput(
            f"the body ended after {writer.size_bytes - start} bytes, but Content-Range announced "
            f"{content_range.length}; the {writer.size_bytes} bytes received are kept",
            field="Content-Range", location="header",
        )

    finished = total is None or writer.size_bytes == total
    if not finished:
        await writer.close()
        await _save_progress(image, writer, total)
        logger.info("upload piece kept image=%s offset=%d total=%s", image_id, writer.size_bytes, total)
        updated = await OsImage.get(image.id)
        assert updated is not None
        return UploadOutcome(updated, False, writer.size_bytes, None)

    digests = await writer.finish()
    _HASH_STATES.pop(image_id, None)
    stored = await _store(caller, image, digests, file_name, storage)
    return UploadOutcome(stored, True, digests.size_bytes, digests)


def _overrun(content_range: ContentRange | None, settings: Settings) -> PayloadTooLarge:
    if content_range is None:
        return PayloadTooLarge(
            f"the body exceeds the limit of {settings.max_image_size_bytes} bytes (MAX_IMAGE_SIZE_BYTES)"
        )
    return PayloadTooLarge(
        f"the body is longer than the {content_range.length} bytes its Content-Range announced"
    )


async def _save_progress(image: OsImage, writer: DigestingFileWriter, total: int | None) -> None:
    _remember_hash_state(str(image.id), writer.hash_state())
    await _release_lease(image, writer.size_bytes, total)


async def _keep_partial(
    caller: Caller, image: OsImage, writer: DigestingFileWriter, total: int | None, exc: BaseException
) -> None:
    """Keep what arrived of a request that was cut off, for a resume."""
    try:
        await asyncio.shield(writer.close())
        await asyncio.shield(_save_progress(image, writer, total))
    except OSError as close_error:
        logger.error("upload of image %s: cannot keep the partial file: %s", image.id, close_error)
        return
    reason = type(exc).__name__ if not str(exc) else str(exc)
    logger.warning("upload interrupted image=%s kept=%d: %s", image.id, writer.size_bytes, reason)
    await asyncio.shield(record_event(
        caller.organization, "upload_interrupted", caller.actor, image_record_id=image.id,
        img_id=image.img_id, message=f"upload cut off after {writer.size_bytes} bytes; they are kept",
        offset=writer.size_bytes,
    ))


async def _end_session(image: OsImage) -> None:
    """Forget a discarded upload; an image without a stored file goes back to file_status none."""
    _HASH_STATES.pop(str(image.id), None)
    await _release_lease(image, 0, None, upload_started_time=None)
    await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id, "file_status": FileStatus.UPLOADING.value},
        {"$set": {"file_status": FileStatus.NONE.value}},
    )


async def _discard(caller: Caller, image: OsImage, writer: DigestingFileWriter, code: str, message: str) -> None:
    await writer.discard()
    await _end_session(image)
    logger.warning("upload failed image=%s code=%s: %s", image.id, code, message)
    await record_event(
        caller.organization, "upload_failed", caller.actor, image_record_id=image.id,
        img_id=image.img_id, message=f"{code}: {message}", error_code=code,
    )


async def _store(
    caller: Caller, image: OsImage, digests: FileDigests, file_name: str, storage: Storage
) -> OsImage:
    """Verify the complete upload and make it the image's file, or discard it with a 422."""
    path = storage.upload_path(str(image.id))
    problem = None
    declared_md5 = expected_md5(image)
    if declared_md5 is not None and digests.md5 != declared_md5:
        problem = (
            "md5_hash",
            f"MD5 of the uploaded file is {digests.md5}, but md5_hash is {declared_md5}: the file "
            "was discarded and the record left unchanged; check the file or the declared MD5",
        )
    elif image.image_size is not None and image.file_status != FileStatus.AVAILABLE and int(image.image_size) != digests.size_bytes:
        problem = (
            "image_size",
            f"the uploaded file has {digests.size_bytes} bytes, but image_size is "
            f"{image.image_size}: the file was discarded and the record left unchanged",
        )
    if problem is not None:
        field, message = problem
        await storage.remove(path)
        await _end_session(image)
        await record_event(
            caller.organization, "upload_failed", caller.actor, image_record_id=image.id,
            img_id=image.img_id, message=message, error_code=f"{field}_mismatch",
            md5=digests.md5, size_bytes=digests.size_bytes,
        )
        raise InvalidInput(message, field=field)

    blob_id = str(PydanticObjectId())
    await storage.commit(path, blob_id)
    now = utc_now()
    result = await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id, "is_deleted": False},
        {"$set": {
            "image_id": blob_id, "image_size": str(digests.size_bytes), "md5_hash": digests.md5,
            "sha256_hash": digests.sha256, "md5_verified": declared_md5 is not None,
            "file_status": FileStatus.AVAILABLE.value, "file_name": file_name,
            "uploaded_type": UploadedType.UPLOAD, "upload_offset": 0, "upload_total": None,
            "upload_started_time": None, "last_update_time": now, "modified_time": now,
        }},
    )
    if result.matched_count == 0:
        await storage.remove_object(blob_id)
        raise Conflict(f"image {image.id} was deleted during the upload; the file was discarded")
    if image.image_id and image.image_id != blob_id:
        await storage.remove_object(image.image_id)
    logger.info("upload stored image=%s bytes=%d md5=%s", image.id, digests.size_bytes, digests.md5)
    await record_event(
        caller.organization, "upload_completed", caller.actor, image_record_id=image.id,
        img_id=image.img_id, message=f"{digests.size_bytes} bytes stored, MD5 {digests.md5}",
        size_bytes=digests.size_bytes, md5=digests.md5, sha256=digests.sha256,
    )
    stored = await OsImage.get(image.id)
    assert stored is not None
    return stored
