"""The arq job that downloads one image: attempts, retries, progress, commit and audit."""

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from arq import Retry
from arq.constants import in_progress_key_prefix
from beanie import PydanticObjectId
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.config import Settings
from app.metrics import record_download_finished, record_download_retry
from app.models.documents import ACTIVE_JOB_STATES, DownloadJob, FileStatus, JobState, OsImage
from app.services.audit import record_event
from app.services.jobs import finish_job
from app.storage import Storage
from app.timeutil import utc_now
from app.validation import check_allowed_suffix, normalise_md5
from app.workers.fetch import (
    DownloadCancelled,
    DownloadError,
    FetchRequest,
    ProgressReporter,
    SourceValidators,
    fetch_to_file,
)

logger = logging.getLogger(__name__)

ACTOR = "worker"


def retry_delay_s(settings: Settings, attempt: int, retry_after_s: float | None) -> float:
    """Delay before the next attempt: doubling from the base delay, at least what the source asked."""
    delay = settings.download_retry_base_delay_s * 2 ** (attempt - 1)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, settings.download_retry_max_delay_s)


def _precheck(job: DownloadJob, settings: Settings) -> None:
    """Fail before any network traffic when the job's own values cannot succeed."""
    if job.file_name is None:
        raise DownloadError("file_type_not_allowed", "the image has no file_name")
    try:
        check_allowed_suffix(job.file_name, settings.allowed_file_types)
    except ValueError as exc:
        raise DownloadError("file_type_not_allowed", str(exc)) from None
    if job.expected_md5 is not None:
        try:
            job.expected_md5 = normalise_md5(job.expected_md5)
        except ValueError as exc:
            raise DownloadError("invalid_md5", str(exc)) from None


async def _mark_running(job: DownloadJob) -> bool:
    now = utc_now()
    result = await DownloadJob.get_pymongo_collection().update_one(
        {"_id": job.id, "state": {"$in": [state.value for state in ACTIVE_JOB_STATES]}},
        {
            "$set": {
                "state": JobState.RUNNING.value, "attempt": job.attempt, "bytes_done": 0,
                "bytes_total": None, "rate_bytes_per_s": None, "updated_time": now,
                "next_attempt_time": None,
                **({"started_time": now} if job.started_time is None else {}),
            }
        },
    )
    if result.matched_count == 0:
        return False
    await OsImage.get_pymongo_collection().update_one(
        {"_id": job.image_record_id, "active_job_id": str(job.id)},
        {"$set": {"job_iteration_id": str(job.attempt), "last_update_time": now}},
    )
    return True


def _progress_publisher(job: DownloadJob):  # type: ignore[no-untyped-def]
    async def publish(bytes_done: int, bytes_total: int | None, rate: float) -> None:
        result = await DownloadJob.get_pymongo_collection().update_one(
            {"_id": job.id, "state": JobState.RUNNING.value},
            {"$set": {
                "bytes_done": bytes_done, "bytes_total": bytes_total,
                "rate_bytes_per_s": round(rate, 1), "updated_time": utc_now(),
            }},
        )
        if result.matched_count == 0:
            # Cancelled (image deleted or job cancelled) while running: stop now.
            raise DownloadCancelled()

    return publish


def _validators_saver(job: DownloadJob):  # type: ignore[no-untyped-def]
    async def save(validators: SourceValidators) -> None:
        await DownloadJob.get_pymongo_collection().update_one(
            {"_id": job.id},
            {"$set": {
                "source_etag": validators.etag, "source_last_modified": validators.last_modified,
                "source_size_bytes": validators.total_bytes,
            }},
        )

    return save


async def _commit(job: DownloadJob, storage: Storage, digests: Any, elapsed_s: float) -> bool:
    """Make the verified file the image's file; False if the image went away meanwhile."""
    blob_id = str(PydanticObjectId())
    await storage.commit(storage.partial_path(str(job.id)), blob_id)
    image = await OsImage.get(job.image_record_id)
    now = utc_now()
    result = await OsImage.get_pymongo_collection().update_one(
        {"_id": job.image_record_id, "is_deleted": False, "active_job_id": str(job.id)},
        {"$set": {
            "image_id": blob_id, "image_size": str(digests.size_bytes), "md5_hash": digests.md5,
            "sha256_hash": digests.sha256, "md5_verified": job.expected_md5 is not None,
            "file_status": FileStatus.AVAILABLE.value, "active_job_id": None,
            "uploaded_type": 2, "last_update_time": now,
        }},
    )
    if result.matched_count == 0:
        await storage.remove_object(blob_id)
        return False
    if image is not None and image.image_id and image.image_id != blob_id:
        await storage.remove_object(image.image_id)
    await DownloadJob.get_pymongo_collection().update_one(
        {"_id": job.id},
        {"$set": {
            "state": JobState.SUCCEEDED.value, "bytes_done": digests.size_bytes,
            "bytes_total": digests.size_bytes, "md5_hash": digests.md5,
            "sha256_hash": digests.sha256, "finished_time": now, "updated_time": now,
            "error_code": None, "error_message": None,
            "rate_bytes_per_s": round(digests.size_bytes / elapsed_s, 1) if elapsed_s > 0 else None,
        }},
    )
    return True


async def _renew_claim(ctx: dict[str, Any], lease_s: float) -> None:
    """Keep arq's in-progress key alive while this worker runs the job.

    arq keeps a job claimed for its whole timeout, which here is days. Shortening the claim to the
    lease, and renewing it, lets another worker take over soon after this one dies.
    """
    key = in_progress_key_prefix + ctx["job_id"]
    while True:
        try:
            await ctx["redis"].pexpire(key, int(lease_s * 1000))
        except (RedisError, OSError) as exc:
            logger.warning("cannot renew the claim on job %s: %s", ctx["job_id"], exc)
        await asyncio.sleep(lease_s / 3)


async def download_image(ctx: dict[str, Any], job_id: str) -> str:
    """arq job: one attempt at downloading the file of DownloadJob `job_id`; returns its state.

    A database outage makes arq run the job again later; the partial file is kept meanwhile.
    """
    settings: Settings = ctx["settings"]
    renewer = asyncio.create_task(_renew_claim(ctx, settings.job_lease_s)) if "redis" in ctx else None
    try:
        return await _run_attempt(ctx, job_id)
    except PyMongoError as exc:
        delay_s = retry_delay_s(settings, 1, None)
        logger.error("job %s: database unreachable, trying again in %.1f s: %s", job_id, delay_s, exc)
        raise Retry(defer=delay_s) from exc
    except asyncio.CancelledError:
        await _report_cancellation(job_id)
        raise
    finally:
        if renewer is not None:
            renewer.cancel()


async def _report_cancellation(job_id: str) -> None:
    """Log and count a job that arq cancelled: an abort (the job was cancelled) or a shutdown."""
    try:
        job = await asyncio.wait_for(DownloadJob.get(PydanticObjectId(job_id)), 5)
    except (PyMongoError, TimeoutError) as exc:
        logger.warning("job %s stopped; its state could not be read: %s", job_id, exc)
        return
    if job is not None and job.state == JobState.CANCELLED:
        logger.info("download cancelled job=%s image=%s", job_id, job.image_record_id)
        record_download_finished(JobState.CANCELLED)
    else:
        logger.info("download interrupted job=%s: the worker is stopping; the job runs again", job_id)


async def _run_attempt(ctx: dict[str, Any], job_id: str) -> str:
    settings: Settings = ctx["settings"]
    storage: Storage = ctx["storage"]
    client: httpx.AsyncClient = ctx["http_client"]

    job = await DownloadJob.get(PydanticObjectId(job_id))
    if job is None or job.state not in ACTIVE_JOB_STATES:
        logger.info("job %s skipped: %s", job_id, "not found" if job is None else job.state)
        await storage.remove(storage.partial_path(job_id))
        return "skipped" if job is None else job.state.value
    image = await OsImage.get(job.image_record_id)
    if image is None or image.is_deleted:
        if await finish_job(job, JobState.CANCELLED, "cancelled", "image deleted before the download ran"):
            record_download_finished(JobState.CANCELLED)
        await storage.remove(storage.partial_path(job_id))
        return JobState.CANCELLED.value

    job.attempt += 1
    if not await _mark_running(job):
        return "skipped"
    log_ids = f"job={job_id} image={job.image_record_id} attempt={job.attempt}/{job.max_attempts}"
    log_fields = {
        "job_id": job_id, "image_record_id": str(job.image_record_id), "img_id": job.img_id,
        "organization": job.organization, "attempt": job.attempt,
        "max_attempts": job.max_attempts,
    }
    logger.info("download start %s url=%s", log_ids, job.source_url, extra=log_fields)
    await record_event(
        job.organization, "download_started", ACTOR, image_record_id=job.image_record_id,
        img_id=job.img_id, job_id=job_id, message=f"attempt {job.attempt} of {job.max_attempts}",
        attempt=job.attempt,
    )

    started = time.monotonic()
    known = None
    if job.source_etag or job.source_last_modified:
        known = SourceValidators(job.source_etag, job.source_last_modified, job.source_size_bytes)
    try:
        _precheck(job, settings)
        result = await fetch_to_file(
            client,
            FetchRequest(
                url=job.source_url,
                partial_path=storage.partial_path(job_id),
                file_name=job.file_name or "",
                expected_md5=job.expected_md5,
                expected_size_bytes=job.expected_size_bytes,
                max_size_bytes=settings.max_image_size_bytes,
                chunk_bytes=settings.download_chunk_bytes,
            ),
            ProgressReporter(settings.progress_interval_s, _progress_publisher(job)),
            validators=known,
            on_validators=_validators_saver(job),
        )
    except DownloadCancelled:
        logger.info(
            "download cancelled %s", log_ids,
            extra={**log_fields, "duration_s": round(time.monotonic() - started, 3)},
        )
        record_download_finished(JobState.CANCELLED)
        return JobState.CANCELLED.value
    except DownloadError as exc:
        log_fields["duration_s"] = round(time.monotonic() - started, 3)
        return await _handle_failure(job, settings, storage, exc, log_ids, log_fields)

    digests = result.digests
    if result.resumed_from_bytes:
        await record_event(
            job.organization, "download_resumed", ACTOR, image_record_id=job.image_record_id,
            img_id=job.img_id, job_id=job_id,
            message=f"continued at byte {result.resumed_from_bytes} of the earlier attempt",
            offset=result.resumed_from_bytes,
        )
    elapsed_s = time.monotonic() - started
    if not await _commit(job, storage, digests, elapsed_s):
        logger.info(
            "download discarded %s: image deleted or job cancelled meanwhile", log_ids,
            extra={**log_fields, "duration_s": round(elapsed_s, 3)},
        )
        record_download_finished(JobState.CANCELLED)
        return JobState.CANCELLED.value
    logger.info(
        "download done %s bytes=%d seconds=%.1f md5=%s", log_ids, digests.size_bytes, elapsed_s,
        digests.md5,
        extra={
            **log_fields, "size_bytes": digests.size_bytes, "duration_s": round(elapsed_s, 3),
            "md5": digests.md5, "sha256": digests.sha256,
        },
    )
    record_download_finished(JobState.SUCCEEDED)
    await record_event(
        job.organization, "download_succeeded", ACTOR, image_record_id=job.image_record_id,
        img_id=job.img_id, job_id=job_id,
        message=f"{digests.size_bytes} bytes stored, MD5 {digests.md5}"
        + (" matches the declared value" if job.expected_md5 else " (no MD5 was declared)"),
        size_bytes=digests.size_bytes, md5=digests.md5, sha256=digests.sha256,
        seconds=round(elapsed_s, 3),
    )
    return JobState.SUCCEEDED.value


async def _handle_failure(
    job: DownloadJob, settings: Settings, storage: Storage, exc: DownloadError, log_ids: str,
    log_fields: dict[str, Any],
) -> str:
    job_id = str(job.id)
    if exc.retryable and job.attempt < job.max_attempts:
        delay_s = retry_delay_s(settings, job.attempt, exc.retry_after_s)
        now = utc_now()
        await DownloadJob.get_pymongo_collection().update_one(
            {"_id": job.id, "state": JobState.RUNNING.value},
            {"$set": {
                "state": JobState.QUEUED.value, "error_code": exc.code,
                "error_message": exc.message, "updated_time": now,
                "next_attempt_time": now + timedelta(seconds=delay_s),
            }},
        )
        logger.warning(
            "download retry %s code=%s in %.1fs: %s", log_ids, exc.code, delay_s, exc.message,
            extra={**log_fields, "error_code": exc.code, "retry_delay_s": delay_s},
        )
        record_download_retry(exc.code)
        await record_event(
            job.organization, "download_retry_scheduled", ACTOR,
            image_record_id=job.image_record_id, img_id=job.img_id, job_id=job_id,
            message=f"{exc.code}: {exc.message}; next attempt in {delay_s:.1f} s",
            error_code=exc.code, attempt=job.attempt, delay_s=delay_s,
        )
        raise Retry(defer=delay_s)

    size_fields = {} if exc.digests is None else {"size_bytes": exc.digests.size_bytes}
    logger.warning(
        "download failed %s code=%s: %s", log_ids, exc.code, exc.message,
        extra={**log_fields, **size_fields, "error_code": exc.code},
    )
    await storage.remove(storage.partial_path(job_id))
    measured = {}
    if exc.digests is not None:
        measured = {
            "bytes_done": exc.digests.size_bytes, "md5_hash": exc.digests.md5,
            "sha256_hash": exc.digests.sha256,
        }
    if await finish_job(job, JobState.FAILED, exc.code, exc.message, **measured):
        record_download_finished(JobState.FAILED, exc.code)
        await record_event(
            job.organization, "download_failed", ACTOR, image_record_id=job.image_record_id,
            img_id=job.img_id, job_id=job_id, message=f"{exc.code}: {exc.message}",
            error_code=exc.code, attempt=job.attempt,
        )
    return JobState.FAILED.value
