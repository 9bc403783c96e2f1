"""Download schedules of one organization: save, read, list, enable, disable and delete.

Every write that touches next_run_time is a compare-and-set on the schedule's `revision`, the
same field the dispatcher (app.services.dispatch) claims slots with, so a save never brings back
a slot that a dispatcher has already claimed.
"""

import logging
import re
from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from pymongo import ASCENDING, DESCENDING

from app.auth import Caller, check_organization
from app.errors import Conflict, InvalidInput, NotFound
from app.models.documents import DownloadJob, DownloadSchedule, JobState, OsImage
from app.models.schemas import ImageChoice, ScheduleSave
from app.scheduling import (
    WEEKDAYS,
    ScheduleFrequency,
    ScheduleRule,
    format_wall_time,
    next_slot,
    parse_time_zone,
    utc_to_wall_time,
    wall_time_to_utc,
)
from app.services.audit import record_event
from app.services.images import parse_object_id
from app.timeutil import format_rfc3339, utc_now

logger = logging.getLogger(__name__)

DEFAULT_TIME_ZONE = "UTC"
MAX_RECENT_RUNS = 20
SORTABLE_FIELDS = (
    "id", "name", "frequency", "enabled", "time_zone", "start_time", "next_run_time",
    "creation_time", "modified_time",
)
SEARCH_FIELDS = ("name", "description")
# A save retries its compare-and-set this often when a dispatcher claims a slot in between.
SAVE_ATTEMPTS = 5
# Fields that only one frequency uses, and that frequency.
FREQUENCY_FIELDS = {
    "weekdays": ScheduleFrequency.WEEKLY,
    "day_of_month": ScheduleFrequency.MONTHLY,
    "cron_expression": ScheduleFrequency.CRON,
}
REQUIRED_ON_CREATE = ("name", "image_ids", "frequency", "start_time")


def schedule_actor(schedule_id: object) -> str:
    """Return the audit actor of the downloads a schedule queues."""
    return f"schedule:{schedule_id}"


def rule_of(schedule: DownloadSchedule) -> ScheduleRule:
    """Return the slot rule of a stored schedule."""
    return ScheduleRule(
        frequency=schedule.frequency,
        zone=parse_time_zone(schedule.time_zone),
        start=datetime.fromisoformat(schedule.start_local_time),
        end=None if schedule.end_local_time is None else datetime.fromisoformat(schedule.end_local_time),
        weekdays=tuple(WEEKDAYS.index(day) for day in schedule.weekdays or ()),
        day_of_month=schedule.day_of_month,
        cron_expression=schedule.cron_expression,
    )


def first_slot_from(rule: ScheduleRule, now: datetime, last_slot_time: datetime | None) -> datetime | None:
    """Return the first slot a schedule saved or enabled at `now` waits for.

    A slot in the current minute still counts, because slots are whole minutes and the
    dispatcher runs once a minute. A slot that was claimed already never comes back.
    """
    minute = now.replace(second=0, microsecond=0)
    if last_slot_time is not None and last_slot_time >= minute:
        return next_slot(rule, last_slot_time)
    return next_slot(rule, minute, inclusive=True)


async def get_schedule(caller: Caller, schedule_id: str) -> DownloadSchedule:
    """Load a live schedule of the caller's organization; anything else is 404."""
    object_id = parse_object_id(schedule_id)
    schedule = None if object_id is None else await DownloadSchedule.get(object_id)
    if schedule is None or schedule.organization != caller.organization or schedule.is_deleted:
        raise NotFound(f"schedule {schedule_id!r} not found", field="id", location="query")
    return schedule


async def _check_images(caller: Caller, image_ids: list[str]) -> list[PydanticObjectId]:
    """Return the ids, without repeats, if each names a live image of the caller's organization."""
    wanted = [PydanticObjectId(image_id) for image_id in dict.fromkeys(image_ids)]
    found = await OsImage.get_pymongo_collection().distinct(
        "_id", {"_id": {"$in": wanted}, "organization": caller.organization, "is_deleted": False}
    )
    missing = [str(image_id) for image_id in wanted if image_id not in set(found)]
    if missing:
        raise InvalidInput(
            f"image_ids {', '.join(missing)} name no live image of organization "
            f"{caller.organization!r}: use the id of an image that exists and is not deleted",
            field="image_ids",
        )
    return wanted


def _to_wall_time(value: datetime, zone: Any) -> datetime:
    """Return the wall time in `zone` that a naive (already wall) or aware input time means."""
    wall = value if value.tzinfo is None else utc_to_wall_time(value, zone)
    return wall.replace(second=0, microsecond=0)


def _stored_values(schedule: DownloadSchedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "description": schedule.description,
        "image_ids": [str(image_id) for image_id in schedule.image_ids],
        "frequency": schedule.frequency,
        "start_time": datetime.fromisoformat(schedule.start_local_time),
        "end_time": None if schedule.end_local_time is None else datetime.fromisoformat(schedule.end_local_time),
        "time_zone": schedule.time_zone,
        "weekdays": schedule.weekdays,
        "day_of_month": schedule.day_of_month,
        "cron_expression": schedule.cron_expression,
        "enabled": schedule.enabled,
    }


def _check_frequency_fields(values: dict[str, Any]) -> None:
    frequency = values["frequency"]
    for name, owner in FREQUENCY_FIELDS.items():
        if values[name] is not None and frequency != owner:
            raise InvalidInput(
                f"{name} applies only to frequency {owner.value!r}, not {frequency.value!r}: "
                f"remove {name} or set frequency to {owner.value!r}",
                field=name,
            )
    if frequency == ScheduleFrequency.CRON and values["cron_expression"] is None:
        raise InvalidInput(
            "frequency 'cron' needs a cron_expression, e.g. '30 2 * * 0' (Sundays at 02:30)",
            field="cron_expression",
        )


def _build_rule(values: dict[str, Any]) -> ScheduleRule:
    """Check the timing fields together and return the rule they make; raise InvalidInput.

    Sorts and deduplicates values["weekdays"] in place.
    """
    _check_frequency_fields(values)
    if values["weekdays"]:
        values["weekdays"] = sorted(set(values["weekdays"]), key=WEEKDAYS.index)
    zone = parse_time_zone(values["time_zone"])
    start = _to_wall_time(values["start_time"], zone)
    end = None if values["end_time"] is None else _to_wall_time(values["end_time"], zone)
    if end is not None and end < start:
        raise InvalidInput(
            f"end_time {format_wall_time(end)} is before start_time {format_wall_time(start)} "
            f"(wall-clock times in {values['time_zone']}): give an end_time after start_time",
            field="end_time",
        )
    rule = ScheduleRule(
        frequency=values["frequency"],
        zone=zone,
        start=start,
        end=end,
        weekdays=tuple(WEEKDAYS.index(day) for day in values["weekdays"] or ()),
        day_of_month=values["day_of_month"],
        cron_expression=values["cron_expression"],
    )
    if next_slot(rule, wall_time_to_utc(start, zone), inclusive=True) is None:
        if end is None:
            raise InvalidInput(
                f"cron_expression {rule.cron_expression!r} matches no date after start_time",
                field="cron_expression",
            )
        raise InvalidInput(
            "no run falls between start_time and end_time: move end_time later", field="end_time"
        )
    return rule


def _no_slot_left(rule: ScheduleRule) -> InvalidInput:
    if rule.frequency == ScheduleFrequency.ONCE:
        return InvalidInput(
            f"start_time {format_wall_time(rule.start)} ({rule.zone.key}) has passed, so this once "
            "schedule would never run: choose a later start_time, or save it disabled",
            field="start_time",
        )
    return InvalidInput(
        f"end_time {format_wall_time(rule.end or rule.start)} ({rule.zone.key}) has passed, so "
        "the schedule would never run again: choose a later end_time, or none",
        field="end_time",
    )


def _document_fields(values: dict[str, Any], rule: ScheduleRule, image_ids: list[PydanticObjectId]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "description": values["description"],
        "image_ids": image_ids,
        "frequency": rule.frequency,
        "time_zone": values["time_zone"],
        "start_local_time": format_wall_time(rule.start),
        "end_local_time": None if rule.end is None else format_wall_time(rule.end),
        "start_time": wall_time_to_utc(rule.start, rule.zone),
        "end_time": rule.end_instant,
        "weekdays": values["weekdays"],
        "day_of_month": values["day_of_month"],
        "cron_expression": values["cron_expression"],
        "enabled": values["enabled"],
    }


async def save_schedule(caller: Caller, body: ScheduleSave, now: datetime | None = None) -> DownloadSchedule:
    """Create a schedule (body without id) or change one (with id); raise on invalid input."""
    check_organization(caller, body.organization)
    now = now or utc_now()
    given = body.model_dump(exclude={"id", "organization"}, include=body.model_fields_set)
    if body.id is None:
        return await _create_schedule(caller, given, now)
    schedule = await get_schedule(caller, body.id)
    return await _update_schedule(caller, schedule, given, now)


async def _create_schedule(caller: Caller, given: dict[str, Any], now: datetime) -> DownloadSchedule:
    for name in REQUIRED_ON_CREATE:
        if given.get(name) is None:
            raise InvalidInput(f"{name} is required to create a schedule", field=name)
    values: dict[str, Any] = {
        "description": None, "end_time": None, "time_zone": DEFAULT_TIME_ZONE, "weekdays": None,
        "day_of_month": None, "cron_expression": None, "enabled": True,
    }
    # An explicit null means "not given": the default applies.
    values.update({name: value for name, value in given.items() if value is not None})

    rule = _build_rule(values)
    image_ids = await _check_images(caller, values["image_ids"])
    next_run = first_slot_from(rule, now, None) if values["enabled"] else None
    if values["enabled"] and next_run is None:
        raise _no_slot_left(rule)

    schedule = DownloadSchedule(
        organization=caller.organization,
        created_by=caller.api_key_id,
        creation_time=now,
        modified_time=now,
        next_run_time=next_run,
        **_document_fields(values, rule, image_ids),
    )
    await schedule.insert()
    await record_event(
        caller.organization, "schedule_created", caller.actor, schedule_id=str(schedule.id),
        message=f"schedule {schedule.name!r} created: {_describe(schedule)}",
    )
    return schedule


async def _update_schedule(
    caller: Caller, schedule: DownloadSchedule, given: dict[str, Any], now: datetime
) -> DownloadSchedule:
    values = _stored_values(schedule)
    if "frequency" in given and given["frequency"] != schedule.frequency:
        # Fields of the old frequency go, unless the request sets them (and is then rejected).
        for name in FREQUENCY_FIELDS:
            values[name] = None
    for name, value in given.items():
        if name in ("name", "image_ids", "frequency", "start_time", "time_zone", "enabled") and value is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
        values[name] = value

    rule = _build_rule(values)
    checked_image_ids = None
    if "image_ids" in given:
        checked_image_ids = await _check_images(caller, values["image_ids"])
    rule_changed = rule != rule_of(schedule)

    for _ in range(SAVE_ATTEMPTS):
        # Fields the request leaves out are read again on each attempt, because a toggle or an
        # image deletion may have changed them in the meantime.
        if "enabled" not in given:
            values["enabled"] = schedule.enabled
        enabling = values["enabled"] and not schedule.enabled
        image_ids = checked_image_ids if checked_image_ids is not None else list(schedule.image_ids)
        if values["enabled"] and not image_ids:
            raise InvalidInput(
                "the schedule names no image any more (its images were deleted): give image_ids",
                field="image_ids",
            )
        fields = _document_fields(values, rule, image_ids)
        if not values["enabled"]:
            next_run = None
        elif rule_changed or enabling:
            next_run = first_slot_from(rule, now, schedule.last_slot_time)
            if next_run is None:
                raise _no_slot_left(rule)
        else:
            next_run = schedule.next_run_time
        result = await DownloadSchedule.get_pymongo_collection().update_one(
            {"_id": schedule.id, "is_deleted": False, "revision": schedule.revision},
            {"$set": {**fields, "next_run_time": next_run, "modified_time": now}, "$inc": {"revision": 1}},
        )
        if result.matched_count == 1:
            break
        schedule = await get_schedule(caller, str(schedule.id))
    else:
        raise Conflict("the schedule kept changing while it was saved: try again", field="id")

    # start_time and end_time follow from the local times and the zone, which are compared.
    changed = sorted(
        name for name, value in fields.items()
        if name not in ("start_time", "end_time") and getattr(schedule, name) != value
    )
    await record_event(
        caller.organization, "schedule_updated", caller.actor, schedule_id=str(schedule.id),
        message=f"schedule {values['name']!r} changed", fields=changed,
    )
    return await _reload(schedule)


async def _reload(schedule: DownloadSchedule) -> DownloadSchedule:
    refreshed = await DownloadSchedule.get(schedule.id)
    assert refreshed is not None
    return refreshed


async def set_schedule_enabled(
    caller: Caller, schedule: DownloadSchedule, enabled: bool | None, now: datetime | None = None
) -> DownloadSchedule:
    """Enable or disable a schedule (`enabled` None: flip it). Enabling never runs past slots."""
    now = now or utc_now()
    target = not schedule.enabled if enabled is None else enabled
    if target == schedule.enabled:
        return schedule
    if target and not schedule.image_ids:
        raise Conflict(
            f"schedule {schedule.name!r} names no image any more (its images were deleted): "
            "save it with image_ids to enable it",
            field="enabled",
        )
    for _ in range(SAVE_ATTEMPTS):
        next_run = None
        if target:
            next_run = first_slot_from(rule_of(schedule), now, schedule.last_slot_time)
            if next_run is None:
                raise Conflict(
                    f"schedule {schedule.name!r} has no run left (its start_time or end_time has "
                    "passed): save it with a later start_time or end_time to enable it",
                    field="enabled",
                )
        result = await DownloadSchedule.get_pymongo_collection().update_one(
            {"_id": schedule.id, "is_deleted": False, "revision": schedule.revision},
            {"$set": {"enabled": target, "next_run_time": next_run, "modified_time": now}, "$inc": {"revision": 1}},
        )
        if result.matched_count == 1:
            break
        schedule = await get_schedule(caller, str(schedule.id))
    else:
        raise Conflict("the schedule kept changing while it was saved: try again", field="id")

    action = "schedule_enabled" if target else "schedule_disabled"
    next_text = "" if next_run is None else f"; next run {format_rfc3339(next_run)}"
    await record_event(
        caller.organization, action, caller.actor, schedule_id=str(schedule.id),
        message=f"schedule {schedule.name!r} {'enabled' if target else 'disabled'}{next_text}",
    )
    return await _reload(schedule)


async def delete_schedule(caller: Caller, schedule: DownloadSchedule) -> DownloadSchedule:
    """Soft-delete: the record stays for the audit trail and never runs again."""
    now = utc_now()
    result = await DownloadSchedule.get_pymongo_collection().update_one(
        {"_id": schedule.id, "is_deleted": False},
        {"$set": {"is_deleted": True, "enabled": False, "next_run_time": None, "modified_time": now},
         "$inc": {"revision": 1}},
    )
    if result.modified_count == 0:
        raise NotFound(f"schedule {schedule.id} not found (it was deleted)", field="id", location="query")
    await record_event(
        caller.organization, "schedule_deleted", caller.actor, schedule_id=str(schedule.id),
        message=f"schedule {schedule.name!r} deleted",
    )
    return await _reload(schedule)


async def remove_image_from_schedules(image: OsImage, actor: str) -> list[DownloadSchedule]:
    """Take a deleted image out of every schedule naming it; disable schedules left with none.

    Returns the schedules that were changed, as they were before.
    """
    collection = DownloadSchedule.get_pymongo_collection()
    schedules = await DownloadSchedule.find(
        {"organization": image.organization, "is_deleted": False, "image_ids": image.id}
    ).to_list()
    changed = []
    for schedule in schedules:
        now = utc_now()
        result = await collection.update_one(
            {"_id": schedule.id, "image_ids": image.id},
            {"$pull": {"image_ids": image.id}, "$set": {"modified_time": now}, "$inc": {"revision": 1}},
        )
        if result.modified_count == 0:
            continue
        changed.append(schedule)
        await record_event(
            image.organization, "schedule_image_removed", actor, image_record_id=image.id,
            img_id=image.img_id, schedule_id=str(schedule.id),
            message=f"image {image.img_id!r} removed from schedule {schedule.name!r} because the image was deleted",
        )
        emptied = await collection.update_one(
            {"_id": schedule.id, "image_ids": {"$size": 0}, "enabled": True},
            {"$set": {"enabled": False, "next_run_time": None, "modified_time": now}, "$inc": {"revision": 1}},
        )
        if emptied.modified_count == 1:
            await record_event(
                image.organization, "schedule_disabled", actor, schedule_id=str(schedule.id),
                message=f"schedule {schedule.name!r} disabled: its last image was deleted",
            )
    return changed


def _describe(schedule: DownloadSchedule) -> str:
    text = f"{schedule.frequency.value} from {schedule.start_local_time} {schedule.time_zone}"
    if schedule.end_local_time is not None:
        text += f" until {schedule.end_local_time}"
    if schedule.next_run_time is not None:
        text += f", next run {format_rfc3339(schedule.next_run_time)}"
    return text


def build_list_query(caller: Caller, filters: dict[str, Any], search: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"organization": caller.organization, "is_deleted": False}
    for name in ("name", "frequency", "time_zone", "enabled"):
        if filters.get(name) is not None:
            query[name] = filters[name]
    if filters.get("image_id") is not None:
        image_id = parse_object_id(filters["image_id"])
        if image_id is None:
            raise InvalidInput(
                f"image_id {filters['image_id']!r} is not a 24-hex id", field="image_id", location="query"
            )
        query["image_ids"] = image_id
    if search:
        pattern = {"$regex": re.escape(search), "$options": "i"}
        query["$or"] = [{name: pattern} for name in SEARCH_FIELDS]
    return query


async def list_schedules(
    query: dict[str, Any], *, page: int, items_per_page: int, sort: str | None, reverse: bool
) -> tuple[list[DownloadSchedule], int]:
    """Return one page of schedules and the total count, in a stable order (ties broken by id)."""
    if sort is not None and sort not in SORTABLE_FIELDS:
        raise InvalidInput(
            f"cannot sort by {sort!r}: use one of {', '.join(SORTABLE_FIELDS)}", field="sort", location="query"
        )
    direction = DESCENDING if reverse else ASCENDING
    sort_key = "_id" if sort in (None, "id") else sort
    order = [(sort_key, direction)]
    if sort_key != "_id":
        order.append(("_id", direction))
    total = await DownloadSchedule.find(query).count()
    schedules = (
        await DownloadSchedule.find(query)
        .sort(order)
        .skip((page - 1) * items_per_page)
        .limit(items_per_page)
        .to_list()
    )
    return schedules, total


async def job_states(schedules: list[DownloadSchedule]) -> dict[str, JobState]:
    """Return the current state of every job the schedules' recent runs queued, by job id."""
    job_ids = {
        PydanticObjectId(job.job_id)
        for schedule in schedules for run in schedule.recent_runs for job in run.jobs if job.job_id
    }
    if not job_ids:
        return {}
    documents = await DownloadJob.get_pymongo_collection().find(
        {"_id": {"$in": list(job_ids)}}, {"state": 1}
    ).to_list(None)
    return {str(document["_id"]): JobState(document["state"]) for document in documents}


async def values_in_use(caller: Caller, field: str) -> list[Any]:
    values = await DownloadSchedule.get_pymongo_collection().distinct(
        field, {"organization": caller.organization, "is_deleted": False}
    )
    return sorted(value for value in values if value is not None)


async def images_in_use(caller: Caller) -> list[ImageChoice]:
    image_ids = await values_in_use(caller, "image_ids")
    images = await OsImage.find({"_id": {"$in": image_ids}, "organization": caller.organization}).sort(
        [("img_id", 1), ("_id", 1)]
    ).to_list()
    return [ImageChoice(id=str(image.id), img_id=image.img_id) for image in images]
