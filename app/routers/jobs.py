"""Download jobs: trigger, status and the audit trail."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth import Caller, CallerDep, check_organization
from app.dependencies import QueueDep, SettingsDep, StorageDep
from app.errors import InvalidInput
from app.models import openapi_examples as examples
from app.models.documents import DownloadJob, JobState, OsImage
from app.models.schemas import OBJECT_ID_PATTERN, AuditEntry, JobStatus, TriggerRequest, TriggerResult
from app.services import images as image_service
from app.services import jobs as job_service
from app.timeutil import UtcDateTime

router = APIRouter(tags=["downloads"])


@router.post("/trigger-osdownload/", response_model=TriggerResult, status_code=status.HTTP_202_ACCEPTED)
async def trigger_download(
    caller: CallerDep, body: TriggerRequest, settings: SettingsDep, queue: QueueDep
) -> TriggerResult:
    """Queue downloads of the images named by `id`, `img_id` or `ids`.

    An image with a queued or running job gets that job back instead of a second one.
    """
    check_organization(caller, body.organization)
    images = await _images_named(caller, body)
    jobs = [await job_service.trigger_download(image, caller.actor, settings, queue) for image in images]
    return TriggerResult(jobs=[JobStatus.from_document(job) for job in jobs])


@router.post(
    "/cancel-osdownload/",
    response_model=TriggerResult,
    responses={200: {"content": {"application/json": {"example": {"jobs": [examples.CANCELLED_JOB_STATUS]}}}}},
)
async def cancel_download(
    caller: CallerDep, body: TriggerRequest, queue: QueueDep, storage: StorageDep
) -> TriggerResult:
    """Cancel the queued or running downloads of the images named by `id`, `img_id` or `ids`.

    A running download stops within about a second and its partial file is removed. The jobs
    returned are the ones cancelled; an image without an active download contributes none.
    """
    check_organization(caller, body.organization)
    images = await _images_named(caller, body)
    cancelled = []
    for image in images:
        job = await job_service.cancel_active_job(image, caller.actor, queue, storage, "cancelled on request")
        if job is not None:
            refreshed = await DownloadJob.get(job.id)
            cancelled.append(JobStatus.from_document(refreshed or job))
    return TriggerResult(jobs=cancelled)


async def _images_named(caller: Caller, body: TriggerRequest) -> list[OsImage]:
    if body.ids is not None:
        return [await image_service.get_image(caller, image_id) for image_id in dict.fromkeys(body.ids)]
    if body.id is not None:
        return [await image_service.get_image(caller, body.id)]
    if body.img_id is not None:
        return [await image_service.find_live_image_by_img_id(caller, body.img_id)]
    raise InvalidInput("name the image: give id, img_id or ids", field="id")


def _split_ids(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@router.get("/os-images-status/", response_model=list[JobStatus])
async def read_download_status(
    caller: CallerDep,
    response: Response,
    image_ids: Annotated[
        list[str] | None, Query(description="Image record ids, repeated or comma-separated.")
    ] = None,
    state: JobState | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    items_per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[JobStatus]:
    """Return the latest download job of each image, newest first, with the total in X-Total-Count."""
    ids = _split_ids(image_ids)
    object_ids = None
    if ids is not None:
        object_ids = [oid for oid in map(image_service.parse_object_id, ids) if oid is not None]
    jobs, total = await job_service.latest_jobs(caller, object_ids, state, page, items_per_page)
    response.headers["X-Total-Count"] = str(total)
    return [JobStatus.from_document(job) for job in jobs]


@router.get("/os-job-audit/", response_model=list[AuditEntry])
async def read_audit_trail(
    caller: CallerDep,
    response: Response,
    image_id: Annotated[str | None, Query(pattern=OBJECT_ID_PATTERN, description="Image record id.")] = None,
    job_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    schedule_id: Annotated[str | None, Query(min_length=1, max_length=64, description="Schedule id.")] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=64, description="e.g. download_failed")] = None,
    since: Annotated[UtcDateTime | None, Query(description="From this time on (inclusive).")] = None,
    until: Annotated[UtcDateTime | None, Query(description="Before this time (exclusive).")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    items_per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntry]:
    """Return one page of the audit trail, newest first, with the total in X-Total-Count."""
    record_id = None
    if image_id is not None:
        record_id = image_service.parse_object_id(image_id)
        if record_id is None:
            raise InvalidInput(f"image_id {image_id!r} is not a 24-hex id", field="image_id")
    events, total = await job_service.list_audit_events(
        caller, image_record_id=record_id, job_id=job_id, action=action, since=since,
        until=until, page=page, items_per_page=items_per_page, schedule_id=schedule_id,
    )
    response.headers["X-Total-Count"] = str(total)
    return [
        AuditEntry(
            id=str(event.id), time=event.time, action=event.action, actor=event.actor,
            image_record_id=None if event.image_record_id is None else str(event.image_record_id),
            img_id=event.img_id, job_id=event.job_id, schedule_id=event.schedule_id,
            message=event.message, details=event.details,
        )
        for event in events
    ]
