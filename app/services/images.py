"""Image catalog operations: list, create, change and delete records of one organization."""

import logging
import re
from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from app.auth import Caller, check_organization
from app.config import Settings
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.models.documents import FileStatus, OsImage, UploadedType
from app.models.schemas import CLIENT_FIELDS, ImagePatch, ImagePublic, ImageWrite
from app.services.audit import record_event
from app.timeutil import utc_now
from app.validation import check_allowed_suffix

logger = logging.getLogger(__name__)

SORTABLE_FIELDS = frozenset(ImagePublic.model_fields)
FILTER_FIELDS = ("vendor", "ostype", "series", "model", "os_version", "image_type", "img_id")
SEARCH_FIELDS = ("img_id", "description", "vendor", "model", "series", "os_version", "file_name")


def parse_object_id(value: str) -> PydanticObjectId | None:
    try:
        return PydanticObjectId(value)
    except (InvalidId, TypeError, ValueError):
        return None


async def get_image(caller: Caller, image_id: str, *, include_deleted: bool = False) -> OsImage:
    """Load a record of the caller's organization; anything else is 404, as if it did not exist."""
    object_id = parse_object_id(image_id)
    image = None if object_id is None else await OsImage.get(object_id)
    if image is None or image.organization != caller.organization:
        raise NotFound(f"image {image_id!r} not found")
    if image.is_deleted and not include_deleted:
        raise NotFound(f"image {image_id!r} not found (it was deleted)")
    return image


async def find_live_image_by_img_id(caller: Caller, img_id: str) -> OsImage:
    image = await OsImage.find_one(
        {"organization": caller.organization, "img_id": img_id, "is_deleted": False}
    )
    if image is None:
        raise NotFound(f"image with img_id {img_id!r} not found", field="img_id")
    return image


def _check_file_type(settings: Settings, file_name: str | None) -> None:
    if file_name is None:
        return
    try:
        check_allowed_suffix(file_name, settings.allowed_file_types)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="file_name") from None


def _img_id_conflict(img_id: str) -> Conflict:
    return Conflict(
        f"img_id {img_id!r} is already used by a live image of this organization: "
        "choose another img_id or delete the other image",
        field="img_id",
    )


async def _ensure_img_id_free(organization: str, img_id: str, own_id: Any = None) -> None:
    query: dict[str, Any] = {"organization": organization, "img_id": img_id, "is_deleted": False}
    if own_id is not None:
        query["_id"] = {"$ne": own_id}
    if await OsImage.find_one(query) is not None:
        raise _img_id_conflict(img_id)


def _check_md5_against_file(image: OsImage, md5_hash: str | None) -> None:
    if image.file_status == FileStatus.AVAILABLE and md5_hash is not None and md5_hash != image.md5_hash:
        raise Conflict(
            f"md5_hash {md5_hash} differs from the MD5 {image.md5_hash} of the stored file. To "
            "replace the file, first clear md5_hash (PATCH with \"md5_hash\": null), then upload "
            "the new file or trigger its download; or create a new image record for it",
            field="md5_hash",
        )


async def create_image(caller: Caller, body: ImageWrite, settings: Settings) -> OsImage:
    check_organization(caller, body.organization)
    _check_file_type(settings, body.file_name)
    await _ensure_img_id_free(caller.organization, body.img_id)

    now = utc_now()
    values = body.model_dump(include=set(CLIENT_FIELDS))
    image = OsImage(
        **values,
        md5_declared=values.get("md5_hash") is not None,
        creation_time=body.creation_time or now,
        modified_time=now,
        last_update_time=now,
        uploader_profile=caller.api_key_id,
    )
    try:
        await image.insert()
    except DuplicateKeyError:
        raise _img_id_conflict(body.img_id) from None
    await record_event(
        caller.organization, "image_created", caller.actor,
        image_record_id=image.id, img_id=image.img_id, message="image record created",
    )
    return image


async def update_image(
    caller: Caller, image: OsImage, body: ImagePatch, settings: Settings, *, replace: bool
) -> OsImage:
    """Change client-owned fields: all of them (PUT, `replace`) or only those given (PATCH)."""
    check_organization(caller, body.organization)
    if replace:
        changes = body.model_dump(include=set(CLIENT_FIELDS))
    else:
        # A field sent as null is cleared, except the two that a record cannot be without.
        changes = body.model_dump(include=set(CLIENT_FIELDS), exclude_unset=True)
        for required in ("img_id", "is_checked"):
            if required in changes and changes[required] is None:
                raise InvalidInput(f"{required} cannot be null", field=required)
    changes.pop("organization", None)

    if "file_name" in changes:
        _check_file_type(settings, changes["file_name"])
    if "md5_hash" in changes:
        _check_md5_against_file(image, changes["md5_hash"])
        changes["md5_declared"] = changes["md5_hash"] is not None
        if image.file_status == FileStatus.AVAILABLE:
            # The stored file's MD5 stays in md5_hash: a fact, not an input. Clearing md5_hash
            # only ends the declaration, so that a different file may replace this one.
            changes["md5_verified"] = changes["md5_declared"]
            if changes["md5_hash"] is None:
                changes.pop("md5_hash")
    if image.file_status == FileStatus.AVAILABLE:
        changes.pop("image_size", None)  # the stored file's size is the size
    if changes.get("img_id") and changes["img_id"] != image.img_id:
        await _ensure_img_id_free(caller.organization, changes["img_id"], image.id)

    now = utc_now()
    changes.update(modified_time=now, last_update_time=now)
    try:
        result = await OsImage.get_pymongo_collection().update_one(
            {"_id": image.id, "is_deleted": False}, {"$set": changes}
        )
    except DuplicateKeyError:
        raise _img_id_conflict(changes["img_id"]) from None
    if result.matched_count == 0:
        raise NotFound(f"image {image.id} not found (it was deleted)")
    await record_event(
        caller.organization, "image_updated", caller.actor, image_record_id=image.id,
        img_id=changes.get("img_id", image.img_id), message="image record changed",
        fields=sorted(name for name in changes if name not in ("modified_time", "last_update_time")),
    )
    refreshed = await OsImage.get(image.id)
    assert refreshed is not None
    return refreshed


def build_list_query(caller: Caller, filters: dict[str, str | None], search: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"organization": caller.organization, "is_deleted": False}
    for name in FILTER_FIELDS:
        value = filters.get(name)
        if value is not None:
            query[name] = value
    if filters.get("file_status") is not None:
        query["file_status"] = filters["file_status"]
    if search:
        pattern = {"$regex": re.escape(search), "$options": "i"}
        query["$or"] = [{name: pattern} for name in SEARCH_FIELDS]
    return query


async def list_images(
    query: dict[str, Any], *, page: int, items_per_page: int, sort: str | None, reverse: bool
) -> tuple[list[OsImage], int]:
    """Return one page of images and the total count, in a stable order (ties broken by id)."""
    if sort is not None and sort not in SORTABLE_FIELDS:
        raise InvalidInput(
            f"cannot sort by {sort!r}: use one of {', '.join(sorted(SORTABLE_FIELDS))}", field="sort"
        )
    direction = DESCENDING if reverse else ASCENDING
    sort_key = "_id" if sort in (None, "id") else sort
    order = [(sort_key, direction)]
    if sort_key != "_id":
        order.append(("_id", direction))

    total = await OsImage.find(query).count()
    images = (
        await OsImage.find(query)
        .sort(order)
        .skip((page - 1) * items_per_page)
        .limit(items_per_page)
        .to_list()
    )
    return images, total


async def distinct_values(caller: Caller, field: str) -> list[str]:
    values = await OsImage.get_pymongo_collection().distinct(
        field, {"organization": caller.organization, "is_deleted": False}
    )
    return sorted(value for value in values if isinstance(value, str) and value)


async def receive_images(
    caller: Caller, records: list[ImageWrite], settings: Settings
) -> tuple[list[str], list[str], list[str], list[OsImage]]:
    """Upsert records pushed by another service, by (organization, img_id).

    Every record is checked before the first write, so a bad request writes nothing. A record
    equal to the stored one is left alone, which makes a repeated push change nothing.
    Returns the ids created, updated and unchanged, and the records in request order.
    """
    positions: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.organization != caller.organization:
            raise Forbidden(
                f"record {index}: organization {record.organization!r} differs from the API key's "
                f"organization {caller.organization!r}; nothing was written",
                field="organization",
            )
        if record.img_id in positions:
            raise InvalidInput(
                f"img_id {record.img_id!r} appears at index {positions[record.img_id]} and {index}; "
                "nothing was written", field="img_id", index=index,
            )
        positions[record.img_id] = index
        try:
            _check_file_type(settings, record.file_name)
        except InvalidInput as exc:
            raise InvalidInput(f"{exc.message}; nothing was written", field="file_name", index=index) from None

    stored = await OsImage.find(
        {"organization": caller.organization, "img_id": {"$in": list(positions)}, "is_deleted": False}
    ).to_list()
    existing = {image.img_id: image for image in stored}
    for img_id, image in existing.items():
        try:
            _check_md5_against_file(image, records[positions[img_id]].md5_hash)
        except Conflict as exc:
            raise Conflict(f"record {positions[img_id]}: {exc.message}", field="md5_hash") from None

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    results: list[OsImage] = []
    for record in records:
        values = record.model_dump(include=set(CLIENT_FIELDS))
        if values.get("uploaded_type") is None:
            values["uploaded_type"] = UploadedType.RECEIVED
        image = existing.get(record.img_id)
        if image is None:
            image = await create_image(caller, record.model_copy(update={"uploaded_type": values["uploaded_type"]}), settings)
            created.append(str(image.id))
        elif _client_fields_equal(image, values):
            unchanged.append(str(image.id))
        else:
            image = await update_image(
                caller, image, record.model_copy(update={"uploaded_type": values["uploaded_type"]}),
                settings, replace=True,
            )
            updated.append(str(image.id))
        results.append(image)
    return created, updated, unchanged, results


def _client_fields_equal(image: OsImage, values: dict[str, Any]) -> bool:
    for name, value in values.items():
        if name in ("image_size", "md5_hash") and image.file_status == FileStatus.AVAILABLE and value is None:
            continue  # a stored file's size and MD5 stay when the pushed record leaves them out
        if getattr(image, name) != value:
            return False
    return True
