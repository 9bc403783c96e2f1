"""The schedule dispatcher: claim each due slot once and queue its downloads.

A slot is claimed by a compare-and-set update of the schedule on its `revision` that also moves
next_run_time past `now`. Only one of any number of concurrent dispatchers matches that update,
on mongomock as on a MongoDB server, so each slot runs once. The claim comes before the
downloads are queued: a dispatcher that dies in between loses that run (it is logged, never
repeated).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from arq.connections import ArqRedis

from app.config import Settings
from app.errors import ServiceError
from app.models.documents import DownloadSchedule, OsImage, ScheduleRun, ScheduleRunJob, ScheduleRunOutcome
from app.scheduling import DispatchPlan, plan_dispatch
from app.services import jobs as job_service
from app.services.audit import record_event
from app.services.schedules import MAX_RECENT_RUNS, rule_of, schedule_actor
from app.timeutil import format_rfc3339

logger = logging.getLogger(__name__)

# Skipped slots listed by name in one audit event; the event always carries their count.
MAX_LISTED_SKIPPED_SLOTS = 100
# Claim attempts per schedule when a save changes it between the read and the claim.
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class DispatchResult:
    """One schedule's run (or expiry) that this dispatcher claimed."""

    schedule_id: str
    run: ScheduleRun


async def dispatch_due_schedules(settings: Settings, pool: ArqRedis, now: datetime) -> list[DispatchResult]:
    """Run every enabled schedule whose next slot is due at `now`; return the runs this call claimed.

    Runs that another dispatcher claimed first are not returned. An error in one schedule is
    logged and does not stop the others.
    """
    due = await DownloadSchedule.find(
        {"enabled": True, "is_deleted": False, "next_run_time": {"$lte": now}}
    ).sort([("next_run_time", 1), ("_id", 1)]).to_list()
    results = []
    for schedule in due:
        try:
            result = await dispatch_schedule(schedule, settings, pool, now)
        except Exception:
            logger.exception("schedule dispatch failed schedule=%s slot=%s", schedule.id, schedule.next_run_time)
            continue
        if result is not None:
            results.append(result)
    return results


async def dispatch_schedule(
    schedule: DownloadSchedule, settings: Settings, pool: ArqRedis, now: datetime
) -> DispatchResult | None:
    """Claim the due slot of `schedule` and queue its downloads; None if it was not ours to run."""
    for _ in range(CLAIM_ATTEMPTS):
        if not schedule.enabled or schedule.is_deleted or schedule.next_run_time is None:
            return None
        if schedule.next_run_time > now:
            return None
        plan = plan_dispatch(rule_of(schedule), schedule.next_run_time, now)
        if await _claim(schedule, plan):
            break
        reloaded = await DownloadSchedule.get(schedule.id)
        if reloaded is None:
            return None
        schedule = reloaded
    else:
        logger.warning("schedule dispatch gave up claiming schedule=%s: it kept changing", schedule.id)
        return None

    if plan.run_slot is None:
        run = ScheduleRun(
            slot_time=None, dispatch_time=now, outcome=ScheduleRunOutcome.EXPIRED,
            skipped_slot_count=len(plan.skipped_slots),
        )
    else:
        jobs = await _queue_downloads(schedule, settings, pool)
        run = ScheduleRun(
            slot_time=plan.run_slot, dispatch_time=now, outcome=_outcome(jobs), jobs=jobs,
            skipped_slot_count=len(plan.skipped_slots),
        )
    stored_run = run.model_dump()
    stored_run["outcome"] = run.outcome.value
    await DownloadSchedule.get_pymongo_collection().update_one(
        {"_id": schedule.id},
        {"$push": {"recent_runs": {"$each": [stored_run], "$slice": -MAX_RECENT_RUNS}}},
    )
    await _audit_run(schedule, plan, run)
    job_ids = [job.job_id for job in run.jobs if job.job_id]
    logger.info(
        "schedule dispatch schedule=%s organization=%s slot=%s outcome=%s jobs=%s skipped=%d next=%s",
        schedule.id, schedule.organization, _text(plan.run_slot), run.outcome.value,
        ",".join(job_ids) or "-", len(plan.skipped_slots), _text(plan.next_slot),
    )
    return DispatchResult(schedule_id=str(schedule.id), run=run)


async def _claim(schedule: DownloadSchedule, plan: DispatchPlan) -> bool:
    claimed_slot = plan.run_slot or plan.skipped_slots[-1]
    result = await DownloadSchedule.get_pymongo_collection().update_one(
        {"_id": schedule.id, "revision": schedule.revision, "enabled": True, "is_deleted": False},
        {"$set": {"next_run_time": plan.next_slot, "last_slot_time": claimed_slot}, "$inc": {"revision": 1}},
    )
    return result.matched_count == 1


async def _queue_downloads(
    schedule: DownloadSchedule, settings: Settings, pool: ArqRedis
) -> list[ScheduleRunJob]:
    """Trigger a download of each image of the schedule; a failure is recorded per image."""
    actor = schedule_actor(schedule.id)
    images = {
        image.id: image
        for image in await OsImage.find(
            {"_id": {"$in": schedule.image_ids}, "organization": schedule.organization, "is_deleted": False}
        ).to_list()
    }
    jobs = []
    for image_id in schedule.image_ids:
        image = images.get(image_id)
        if image is None:
            jobs.append(ScheduleRunJob(image_record_id=image_id, error="the image was deleted"))
            continue
        running = await job_service.active_job(image)
        try:
            job = await job_service.trigger_download(image, actor, settings, pool)
        except ServiceError as exc:
            logger.warning(
                "schedule download not queued schedule=%s image=%s: %s", schedule.id, image_id, exc.message
            )
            jobs.append(ScheduleRunJob(image_record_id=image_id, img_id=image.img_id, error=exc.message))
            continue
        jobs.append(ScheduleRunJob(
            image_record_id=image_id, img_id=image.img_id, job_id=str(job.id),
            reused=running is not None and running.id == job.id,
        ))
    return jobs


def _outcome(jobs: list[ScheduleRunJob]) -> ScheduleRunOutcome:
    queued = sum(1 for job in jobs if job.job_id is not None)
    if queued == 0:
        return ScheduleRunOutcome.FAILED
    if queued == len(jobs):
        return ScheduleRunOutcome.QUEUED
    return ScheduleRunOutcome.PARTIAL


async def _audit_run(schedule: DownloadSchedule, plan: DispatchPlan, run: ScheduleRun) -> None:
    actor = schedule_actor(schedule.id)
    schedule_id = str(schedule.id)
    if plan.skipped_slots:
        count = len(plan.skipped_slots)
        count_text = f"at least {count}" if plan.skipped_count_is_lower_bound else str(count)
        reason = (
            "the schedule expired before they could run" if plan.run_slot is None
            else f"they ran as one run at {format_rfc3339(run.dispatch_time)}"
        )
        await record_event(
            schedule.organization, "schedule_slots_skipped", actor, schedule_id=schedule_id,
            message=f"{count_text} due slots of schedule {schedule.name!r} were skipped: {reason}",
            skipped_slots=[format_rfc3339(slot) for slot in plan.skipped_slots[:MAX_LISTED_SKIPPED_SLOTS]],
            skipped_slot_count=count, count_is_lower_bound=plan.skipped_count_is_lower_bound,
        )
    if plan.run_slot is None:
        return
    job_ids = [job.job_id for job in run.jobs if job.job_id]
    failures = {str(job.image_record_id): job.error for job in run.jobs if job.error}
    await record_event(
        schedule.organization, "schedule_fired", actor, schedule_id=schedule_id,
        message=(
            f"schedule {schedule.name!r} ran for slot {format_rfc3339(plan.run_slot)}: "
            f"{len(job_ids)} of {len(run.jobs)} downloads queued or reused"
        ),
        slot_time=format_rfc3339(plan.run_slot), job_ids=job_ids, outcome=run.outcome.value,
        reused_job_ids=[job.job_id for job in run.jobs if job.reused], errors=failures,
    )


def _text(value: datetime | None) -> str:
    return "-" if value is None else format_rfc3339(value)
