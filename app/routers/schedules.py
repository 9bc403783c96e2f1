"""Download schedules: save, list, read, enable or disable, delete, and form options."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import CallerDep
from app.models import openapi_examples as examples
from app.models.documents import DownloadSchedule
from app.models.schemas import (
    MAX_SCHEDULE_IMAGES,
    SCHEDULE_TIME_RULE,
    CronHelp,
    FrequencyOption,
    ScheduleDefaults,
    ScheduleOptions,
    SchedulePublic,
    ScheduleSave,
    ScheduleSearchField,
    ScheduleSearchOptions,
    WeekdayOption,
)
from app.scheduling import DISPATCH_INTERVAL, WEEKDAY_NAMES, WEEKDAYS, ScheduleFrequency, time_zone_names
from app.services import schedules as schedule_service

router = APIRouter(tags=["schedules"])

ScheduleId = Annotated[str, Query(description="The schedule's id.", examples=[examples.SCHEDULE_ID])]
FilterText = Annotated[str | None, Query(max_length=255)]

FREQUENCY_HELP = {
    ScheduleFrequency.ONCE: ("Once, at start_time.", []),
    ScheduleFrequency.HOURLY: ("Every hour at start_time's minute, from start_time on.", []),
    ScheduleFrequency.DAILY: ("Every day at start_time's time of day.", []),
    ScheduleFrequency.WEEKLY: (
        "On the given weekdays at start_time's time of day; default: start_time's weekday.", ["weekdays"],
    ),
    ScheduleFrequency.MONTHLY: (
        "On day_of_month at start_time's time of day; months without that day use their last "
        "day. Default day: start_time's.", ["day_of_month"],
    ),
    ScheduleFrequency.CRON: ("At the times cron_expression matches, from start_time on.", ["cron_expression"]),
}
CRON_HELP = CronHelp(
    format="minute hour day-of-month month day-of-week",
    fields=[
        "minute: 0-59", "hour: 0-23", "day of month: 1-31 or L (last day)",
        "month: 1-12 or jan-dec", "day of week: 0-6 (0 is Sunday) or sun-sat, 5#2 for the second Friday",
    ],
    aliases=["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"],
    examples={
        "30 2 * * 0": "Sundays at 02:30",
        "0 23 * * 1-5": "weekdays at 23:00",
        "*/15 * * * *": "every 15 minutes",
        "0 4 1,15 * *": "on the 1st and 15th at 04:00",
    },
    notes=(
        "Each field takes lists (1,15), ranges (1-5) and steps (*/15). When both day of month "
        "and day of week are restricted, a day matching either runs. Times are wall-clock "
        "times in the schedule's time_zone."
    ),
)


async def _public(schedule: DownloadSchedule) -> SchedulePublic:
    states = await schedule_service.job_states([schedule])
    return SchedulePublic.from_document(schedule, states)


@router.post("/save-osimage-schedule-info/", response_model=SchedulePublic)
async def save_schedule(caller: CallerDep, body: ScheduleSave) -> SchedulePublic:
    """Create a schedule (no `id`) or change one (`id` given; fields left out keep their values).

    The response carries the next run time in UTC and, for a change, the latest runs.
    """
    schedule = await schedule_service.save_schedule(caller, body)
    return await _public(schedule)


@router.get("/os-schedule-details/", response_model=list[SchedulePublic])
async def read_schedules(
    caller: CallerDep,
    response: Response,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    items_per_page: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 25,
    sort: Annotated[str | None, Query(description="Field to sort by; default id.")] = None,
    reverse: Annotated[bool, Query(description="Sort in descending order.")] = False,
    name: Annotated[str | None, Query(max_length=100, description="Exact name.")] = None,
    enabled: bool | None = None,
    frequency: ScheduleFrequency | None = None,
    time_zone: FilterText = None,
    image_id: Annotated[str | None, Query(description="Schedules that name this image record id.")] = None,
    search: Annotated[
        str | None, Query(max_length=255, description="Case-insensitive text in name or description.")
    ] = None,
) -> list[SchedulePublic]:
    """Return one page of the organization's schedules; the total is in the X-Total-Count header."""
    filters = {
        "name": name, "enabled": enabled, "frequency": frequency.value if frequency else None,
        "time_zone": time_zone, "image_id": image_id,
    }
    query = schedule_service.build_list_query(caller, filters, search)
    schedules, total = await schedule_service.list_schedules(
        query, page=page, items_per_page=items_per_page, sort=sort, reverse=reverse
    )
    states = await schedule_service.job_states(schedules)
    response.headers["X-Total-Count"] = str(total)
    return [SchedulePublic.from_document(schedule, states) for schedule in schedules]


@router.get("/os-schedule-detail/", response_model=SchedulePublic)
async def read_schedule(caller: CallerDep, id: ScheduleId) -> SchedulePublic:
    """Return one schedule, with its next run time (UTC) and its latest runs."""
    schedule = await schedule_service.get_schedule(caller, id)
    return await _public(schedule)


@router.get(
    "/os-schedule-toggle-state/",
    response_model=SchedulePublic,
    responses={200: {"content": {"application/json": {"example": examples.DISABLED_SCHEDULE_PUBLIC}}}},
)
async def toggle_schedule(
    caller: CallerDep,
    id: ScheduleId,
    enabled: Annotated[
        bool | None, Query(description="true or false to set the state; omit to flip it.")
    ] = None,
) -> SchedulePublic:
    """Enable or disable a schedule. Enabling waits for the next slot; past slots do not run."""
    schedule = await schedule_service.get_schedule(caller, id)
    schedule = await schedule_service.set_schedule_enabled(caller, schedule, enabled)
    return await _public(schedule)


@router.get(
    "/os-schedule-delete/",
    response_model=SchedulePublic,
    responses={200: {"content": {"application/json": {"example": examples.DELETED_SCHEDULE_PUBLIC}}}},
)
async def delete_schedule(caller: CallerDep, id: ScheduleId) -> SchedulePublic:
    """Delete a schedule; it never runs again. Returns it as deleted. Queued downloads stay."""
    schedule = await schedule_service.get_schedule(caller, id)
    schedule = await schedule_service.delete_schedule(caller, schedule)
    return await _public(schedule)


@router.get("/os-schedule-options/", response_model=ScheduleOptions)
async def read_schedule_options(caller: CallerDep) -> ScheduleOptions:
    """Return frequencies, time zones, weekdays, cron help and defaults for schedule forms."""
    return ScheduleOptions(
        frequencies=[
            FrequencyOption(value=frequency, description=text, fields=fields)
            for frequency, (text, fields) in FREQUENCY_HELP.items()
        ],
        time_zones=list(time_zone_names()),
        weekdays=[WeekdayOption(value=short, name=full) for short, full in zip(WEEKDAYS, WEEKDAY_NAMES, strict=True)],
        cron=CRON_HELP,
        defaults=ScheduleDefaults(
            frequency=ScheduleFrequency.DAILY, time_zone=schedule_service.DEFAULT_TIME_ZONE, enabled=True
        ),
        time_input=SCHEDULE_TIME_RULE,
        max_image_ids=MAX_SCHEDULE_IMAGES,
        max_recent_runs=schedule_service.MAX_RECENT_RUNS,
        dispatch_interval_s=int(DISPATCH_INTERVAL.total_seconds()),
    )


@router.get("/os-schedule-search-options/", response_model=ScheduleSearchOptions)
async def read_schedule_search_options(caller: CallerDep) -> ScheduleSearchOptions:
    """Return the filters of os-schedule-details, each with the values the organization's schedules use."""
    images = await schedule_service.images_in_use(caller)
    fields = [
        ScheduleSearchField(name="name", type="string", values=await schedule_service.values_in_use(caller, "name")),
        ScheduleSearchField(name="enabled", type="boolean", values=await schedule_service.values_in_use(caller, "enabled")),
        ScheduleSearchField(name="frequency", type="string", values=await schedule_service.values_in_use(caller, "frequency")),
        ScheduleSearchField(name="time_zone", type="string", values=await schedule_service.values_in_use(caller, "time_zone")),
        ScheduleSearchField(name="image_id", type="string", values=[image.id for image in images]),
        ScheduleSearchField(name="search", type="string", values=[]),
    ]
    return ScheduleSearchOptions(
        fields=fields, images=images, sort_fields=list(schedule_service.SORTABLE_FIELDS)
    )
