"""Bookkeeping for files served to devices: counters on the image and one audit entry a fetch."""

import re

from app.auth import Caller
from app.models.documents import OsImage
from app.services.audit import record_event

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def matches_if_none_match(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [value.strip() for value in header.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


def _range_bytes(range_header: str, size_bytes: int) -> tuple[int, int] | None:
    """Return (start, length) of a single satisfiable byte range, or None."""
    match = _SINGLE_RANGE.match(range_header.strip())
    if match is None or size_bytes == 0:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size_bytes)
        return size_bytes - length, length
    start = int(first)
    end = size_bytes - 1 if last == "" else min(int(last), size_bytes - 1)
    if start > end:
        return None
    return start, end - start + 1


async def record_served(caller: Caller, image: OsImage, range_header: str | None) -> None:
    """Count a GET of the file; audit it once a fetch, i.e. for requests that start at byte 0.

    A device that fetches in ranges makes many requests for one copy, and only its first range
    starts at 0, so the audit trail gets one entry per copy while the counters see every request.
    """
    size_bytes = int(image.image_size or 0)
    if range_header:
        served = _range_bytes(range_header, size_bytes)
        if served is None:
            return  # multiple or unsatisfiable ranges are not counted; Starlette responds to them
        start, length = served
    else:
        start, length = 0, size_bytes
    await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id}, {"$inc": {"served_count": 1, "served_bytes": length}}
    )
    if start == 0:
        await record_event(
            caller.organization, "file_served", caller.actor, image_record_id=image.id,
            img_id=image.img_id, message=f"file served ({length} of {size_bytes} bytes)",
            bytes=length, range=range_header,
        )
