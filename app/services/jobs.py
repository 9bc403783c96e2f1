"""Download jobs: trigger (one job per image at a time), cancel, report status and audit."""

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from beanie import PydanticObjectId
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.auth import Caller
from app.config import Settings
from app.errors import InvalidInput
from app.models.documents import (
    ACTIVE_JOB_STATES,
    AuditEvent,
    DownloadJob,
    FileStatus,
    JobState,
    OsImage,
    expected_md5,
)
from app.queue import enqueue_download, request_abort
from app.services.audit import record_event
from app.services.schedules import remove_image_from_schedules
from app.storage import Storage
from app.timeutil import to_utc, utc_now
from app.validation import check_allowed_suffix, file_name_from_url, normalise_md5

logger = logging.getLogger(__name__)


async def active_job(image: OsImage) -> DownloadJob | None:
    if image.active_job_id is None:
        return None
    job = await DownloadJob.get(PydanticObjectId(image.active_job_id))
    if job is not None and job.state in ACTIVE_JOB_STATES:
        return job
    return None


def _check_downloadable(image: OsImage, settings: Settings) -> None:
    if not image.file_path:
        raise InvalidInput(
            f"image {image.img_id!r} has no file_path: set an http(s) source URL first",
            field="file_path",
        )
    file_name = image.file_name or file_name_from_url(image.file_path)
    if file_name is None:
        raise InvalidInput(
            "the image has no file_name and its file_path ends without one: set file_name",
            field="file_name",
        )
    try:
        check_allowed_suffix(file_name, settings.allowed_file_types)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="file_name") from None
    if expected_md5(image) is not None:
        try:
            normalise_md5(image.md5_hash or "")
        except ValueError as exc:
            raise InvalidInput(str(exc), field="md5_hash") from None


async def trigger_download(
    image: OsImage, actor: str, settings: Settings, pool: ArqRedis
) -> DownloadJob:
    """Queue a download of the image's file, or return the job already queued or running."""
    existing = await active_job(image)
    if existing is not None:
        return existing
    _check_downloadable(image, settings)

    job = DownloadJob(
        organization=image.organization,
        image_record_id=image.id,  # type: ignore[arg-type]
        img_id=image.img_id,
        source_url=image.file_path,  # type: ignore[arg-type]
        file_name=image.file_name or file_name_from_url(image.file_path or ""),
        expected_md5=expected_md5(image),
        expected_size_bytes=int(image.image_size) if image.image_size and image.file_status != FileStatus.AVAILABLE else None,
        max_attempts=settings.download_max_attempts,
        triggered_by=actor,
    )
    await job.insert()
    job_id = str(job.id)

    # Compare-and-set on the image: only the trigger whose read of the pointer is still current wins.
    image_update: dict[str, Any] = {
        "active_job_id": job_id,
        "download_status_obj": job_id,
        "job_id": job_id,
        "job_iteration_id": "0",
        "last_update_time": utc_now(),
    }
    if image.file_status != FileStatus.AVAILABLE:
        image_update["file_status"] = FileStatus.DOWNLOADING.value
    result = await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id, "is_deleted": False, "active_job_id": image.active_job_id},
        {"$set": image_update},
    )
    if result.matched_count == 0:
        await job.delete()
        current = await OsImage.get(image.id)
        winner = None if current is None else await active_job(current)
        if winner is not None:
            return winner
        raise InvalidInput("the image changed while the download was being queued: try again")

    message = f"download queued from {job.source_url}"
    try:
        await enqueue_download(pool, settings, job_id)
    except (RedisError, OSError) as exc:
        # The job is stored, so nothing is lost: the requeue loop puts it on the queue once
        # Redis is back.
        logger.error("enqueue failed for job %s of image %s, will retry: %s", job_id, image.id, exc)
        await DownloadJob.get_pymongo_collection().update_one({"_id": job.id}, {"$set": {"enqueued": False}})
        job.enqueued = False
        message = "download recorded; the job queue (Redis) is unreachable, so it is queued once Redis is back"

    await record_event(
        image.organization, "download_queued", actor, image_record_id=image.id,
        img_id=image.img_id, job_id=job_id, message=message, enqueued=job.enqueued,
    )
    return job


async def finish_job(
    job: DownloadJob, state: JobState, error_code: str | None = None, error_message: str | None = None,
    **fields: Any,
) -> bool:
    """Move an active job to a final state and release the image; False if it had ended already."""
    now = utc_now()
    result = await DownloadJob.get_pymongo_collection().update_one(
        {"_id": job.id, "state": {"$in": [s.value for s in ACTIVE_JOB_STATES]}},
        {"$set": {
            "state": state.value, "error_code": error_code, "error_message": error_message,
            "finished_time": now, "updated_time": now, "next_attempt_time": None, **fields,
        }},
    )
    release: dict[str, Any] = {"active_job_id": None, "last_update_time": now}
    await OsImage.get_pymongo_collection().update_one(
        {"_id": job.image_record_id, "active_job_id": str(job.id)}, {"$set": release}
    )
    if state != JobState.SUCCEEDED:
        # An image whose only file attempt failed shows it; one with a stored file keeps it.
        await OsImage.get_pymongo_collection().update_one(
            {"_id": job.image_record_id, "file_status": FileStatus.DOWNLOADING.value},
            {"$set": {"file_status": FileStatus.FAILED.value if state == JobState.FAILED else FileStatus.NONE.value}},
        )
    return result.modified_count == 1


async def cancel_active_job(
    image: OsImage, actor: str, pool: ArqRedis, storage: Storage, reason: str
) -> DownloadJob | None:
    """Cancel the image's queued or running download; return it, or None when there was none."""
    job = await active_job(image)
    if job is None:
        return None
    if await finish_job(job, JobState.CANCELLED, "cancelled", reason):
        await storage.remove(storage.partial_path(str(job.id)))
        try:
            await request_abort(pool, str(job.id))
        except (RedisError, OSError) as exc:
            # The worker also reads the state change at its next progress update and stops then.
            logger.warning("could not signal abort of job %s: %s", job.id, exc)
        await record_event(
            image.organization, "download_cancelled", actor, image_record_id=image.id,
            img_id=image.img_id, job_id=str(job.id), message=reason,
        )
    return job


async def delete_image(
    caller: Caller, image: OsImage, pool: ArqRedis, storage: Storage
) -> None:
    """Soft-delete: keep the record for the audit trail, cancel its download, remove its file.

    Schedules that named the image lose it; one left without images is disabled.
    """
    await cancel_active_job(image, caller.actor, pool, storage, "image deleted")
    now = utc_now()
    result = await OsImage.get_pymongo_collection().update_one(
        {"_id": image.id, "is_deleted": False},
        {"$set": {
            "is_deleted": True, "deletion_key": str(image.id), "image_id": None,
            "file_status": FileStatus.NONE.value, "active_job_id": None,
            "modified_time": now, "last_update_time": now,
        }},
    )
    if result.modified_count == 0:
        return
    await storage.remove_object(image.image_id)
    await record_event(
        caller.organization, "image_deleted", caller.actor, image_record_id=image.id,
        img_id=image.img_id, message="image deleted; its stored file was removed",
    )
    await remove_image_from_schedules(image, caller.actor)


async def latest_jobs(
    caller: Caller, image_ids: list[PydanticObjectId] | None, state: JobState | None,
    page: int, items_per_page: int,
) -> tuple[list[DownloadJob], int]:
    """Return the latest job of each live image of the caller's organization, one page of them."""
    image_query: dict[str, Any] = {
        "organization": caller.organization, "is_deleted": False, "download_status_obj": {"$ne": None},
    }
    if image_ids is not None:
        image_query["_id"] = {"$in": image_ids}
    images = await OsImage.get_pymongo_collection().find(
        image_query, {"download_status_obj": 1}
    ).sort("_id", 1).to_list(None)
    job_ids = [PydanticObjectId(doc["download_status_obj"]) for doc in images]
    job_query: dict[str, Any] = {"_id": {"$in": job_ids}, "organization": caller.organization}
    if state is not None:
        job_query["state"] = state.value
    total = await DownloadJob.find(job_query).count()
    jobs = (
        await DownloadJob.find(job_query)
        .sort([("_id", -1)])
        .skip((page - 1) * items_per_page)
        .limit(items_per_page)
        .to_list()
    )
    return jobs, total


async def list_audit_events(
    caller: Caller, *, image_record_id: PydanticObjectId | None, job_id: str | None,
    action: str | None, since: datetime | None, until: datetime | None, page: int,
    items_per_page: int, schedule_id: str | None = None,
) -> tuple[list[AuditEvent], int]:
    query: dict[str, Any] = {"organization": caller.organization}
    if image_record_id is not None:
        query["image_record_id"] = image_record_id
    if job_id is not None:
        query["job_id"] = job_id
    if schedule_id is not None:
        query["schedule_id"] = schedule_id
    if action is not None:
        query["action"] = action
    time_range: dict[str, datetime] = {}
    if since is not None:
        time_range["$gte"] = since
    if until is not None:
        time_range["$lt"] = until
    if time_range:
        query["time"] = time_range
    total = await AuditEvent.find(query).count()
    events = (
        await AuditEvent.find(query)
        .sort([("time", -1), ("_id", -1)])
        .skip((page - 1) * items_per_page)
        .limit(items_per_page)
        .to_list()
    )
    return events, total


async def requeue_jobs(pool: ArqRedis, settings: Settings) -> int:
    """Put on the queue the jobs that are not there: never enqueued, or lost by Redis.

    A job counts as lost when neither its arq job key nor its in-progress key exists and it has
    not changed for two leases. Putting a job on the queue twice is harmless, because arq keeps one
    job per id and the job skips itself once it has ended. Returns how many jobs were enqueued.
    """
    lost_before = utc_now() - timedelta(seconds=2 * settings.job_lease_s)
    count = 0
    active = await DownloadJob.find({"state": {"$in": [state.value for state in ACTIVE_JOB_STATES]}}).to_list()
    for job in active:
        job_id = str(job.id)
        if job.enqueued:
            if to_utc(job.updated_time) > lost_before:
                continue
            if await pool.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id):
                continue
            reason = "the queue had lost the job (was Redis restarted?)"
        else:
            reason = "Redis is reachable again"
        await enqueue_download(pool, settings, job_id)
        await DownloadJob.get_pymongo_collection().update_one(
            {"_id": job.id}, {"$set": {"enqueued": True, "updated_time": utc_now()}}
        )
        await record_event(
            job.organization, "download_enqueued", "requeue", image_record_id=job.image_record_id,
            img_id=job.img_id, job_id=job_id, message=f"put on the queue: {reason}",
        )
        count += 1
    return count


async def run_requeue_loop(pool: ArqRedis, settings: Settings) -> None:
    """Call `requeue_jobs` every REQUEUE_INTERVAL_S until cancelled, surviving outages."""
    while True:
        try:
            enqueued = await requeue_jobs(pool, settings)
            if enqueued:
                logger.info("requeued %d download jobs", enqueued)
        except (RedisError, OSError, PyMongoError) as exc:
            logger.warning("requeue pass failed, trying again in %.0f s: %s", settings.requeue_interval_s, exc)
        await asyncio.sleep(settings.requeue_interval_s)
