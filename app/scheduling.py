"""Slot arithmetic for download schedules, in each schedule's own IANA time zone.

A schedule's rule yields wall-clock times ("slots") in its zone, and `wall_time_to_utc` turns each
slot into one UTC instant:

- a wall time that a spring-forward change skips resolves to the first valid instant after it,
  which is the instant of the change (02:30 on the day Berlin jumps from 02:00 to 03:00 runs at
  03:00 CEST);
- a wall time that a fall-back change repeats resolves to its first occurrence only;
- slots that resolve to the same instant run once, because the next slot is always the first one
  whose instant is later than the previous slot's.

Nothing here reads the clock or the host's time zone: callers pass `now` and the zone.
"""

import calendar
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Due slots that a dispatch scans when it catches up after downtime. A minute-by-minute cron
# schedule reaches it after about a week; beyond it the count of skipped slots is a lower bound.
MAX_SKIPPED_SLOT_SCAN = 10_000
# How often the worker runs the dispatcher (app.workers.settings), and so the precision of slots.
DISPATCH_INTERVAL = timedelta(minutes=1)
# The slot at a schedule's end_time may be dispatched up to this much later and still counts as
# on time. Later than that the schedule has expired.
EXPIRY_GRACE = DISPATCH_INTERVAL
# Years a start or end time may have: keeps the slot arithmetic far from datetime's year 9999.
MIN_YEAR, MAX_YEAR = 1970, 2999

# Zones that depend on the host: `localtime` is a link to the host's own zone file.
_HOST_ZONES = frozenset({"localtime", "posixrules"})
# croniter's extensions that make a schedule non-deterministic: H (hashed) and R (random).
_RANDOM_CRON_FIELD = re.compile(r"(^|[,/\-(])[HR]($|[,/\-(])", re.IGNORECASE)


class ScheduleFrequency(StrEnum):
    ONCE = "once"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CRON = "cron"


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """Return the IANA zone names that schedules accept, sorted."""
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones() - _HOST_ZONES))


def parse_time_zone(name: str) -> ZoneInfo:
    """Return the zone named `name`, or raise ValueError naming a close match if there is one."""
    if name in time_zone_names():
        return ZoneInfo(name)
    folded = name.strip().casefold()
    matches = [zone for zone in time_zone_names() if zone.casefold() == folded]
    hint = f": did you mean {matches[0]!r}?" if matches else ", e.g. Europe/Berlin or UTC"
    raise ValueError(f"unknown IANA time zone {name!r}{hint}")


def parse_weekday(value: str) -> str:
    """Return the three-letter name ("mon") of a weekday given as "mon", "Monday", "MON", ..."""
    text = value.strip().lower()
    for short, full in zip(WEEKDAYS, WEEKDAY_NAMES, strict=True):
        if text in (short, full.lower()):
            return short
    raise ValueError(f"unknown weekday {value!r}: use one of {', '.join(WEEKDAYS)}")


def check_cron_expression(expression: str) -> str:
    """Return the expression with single spaces, or raise ValueError saying what is wrong.

    Accepted: the five standard fields (minute, hour, day of month, month, day of week) with
    croniter's syntax (names, ranges, steps, L and #), or an alias such as @daily.
    """
    text = " ".join(expression.split())
    fields = text.split(" ")
    if not text.startswith("@") and len(fields) != 5:
        raise ValueError(
            f"cron_expression {expression!r} has {len(fields)} fields: give the five fields "
            "minute hour day-of-month month day-of-week, e.g. '30 2 * * 0'"
        )
    if any(_RANDOM_CRON_FIELD.search(field) for field in fields):
        raise ValueError(f"cron_expression {expression!r}: hashed (H) and random (R) values are not supported")
    try:
        croniter(text, datetime(2000, 1, 1))
    except CroniterError as exc:
        raise ValueError(f"invalid cron_expression {expression!r}: {exc}") from None
    return text


def utc_to_wall_time(instant: datetime, zone: ZoneInfo) -> datetime:
    """Return the naive wall-clock time that `instant` shows in `zone`."""
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def wall_time_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant at which the naive wall time `wall` occurs in `zone`.

    A repeated wall time (fall-back) gives its first occurrence. A skipped one (spring-forward)
    gives the instant of the change, the first valid instant after it.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if utc_to_wall_time(first, zone) == wall:
        return first  # the time exists, and fold=0 picks the first occurrence of a repeated one
    # Skipped: fold=0 and fold=1 apply the offsets from either side of the change, so the change
    # lies between the two instants they give. tzdata changes fall on whole seconds, so a binary
    # search over seconds finds its exact instant: the first second with the later offset.
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low = math.floor(min(first, second).timestamp())
    high = math.ceil(max(first, second).timestamp())
    later_offset = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == later_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class ScheduleRule:
    """When a schedule runs: wall-clock times in `zone`, from `start` up to `end` inclusive."""

    frequency: ScheduleFrequency
    zone: ZoneInfo
    start: datetime  # naive wall time in `zone`, whole minutes
    end: datetime | None = None  # naive wall time in `zone`
    weekdays: tuple[int, ...] = ()  # 0 is Monday; empty: the weekday of `start`
    day_of_month: int | None = None  # 1-31; None: the day of `start`
    cron_expression: str | None = None

    @property
    def end_instant(self) -> datetime | None:
        return None if self.end is None else wall_time_to_utc(self.end, self.zone)


def _every(start: datetime, step: timedelta, begin: datetime) -> Iterator[datetime]:
    count = 0 if begin <= start else math.ceil((begin - start) / step)
    while True:
        yield start + count * step
        count += 1


def _weekly(rule: ScheduleRule, begin: datetime) -> Iterator[datetime]:
    weekdays = set(rule.weekdays) or {rule.start.weekday()}
    day = max(begin, rule.start).replace(
        hour=rule.start.hour, minute=rule.start.minute, second=0, microsecond=0
    )
    while True:
        if day.weekday() in weekdays and day >= begin and day >= rule.start:
            yield day
        day += timedelta(days=1)


def _monthly(rule: ScheduleRule, begin: datetime) -> Iterator[datetime]:
    # A day of month that a month lacks (31 in April, 30 in February) means its last day.
    target_day = rule.day_of_month or rule.start.day
    lower = max(begin, rule.start)
    year, month = lower.year, lower.month
    while True:
        day = min(target_day, calendar.monthrange(year, month)[1])
        slot = datetime(year, month, day, rule.start.hour, rule.start.minute)
        if slot >= lower:
            yield slot
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _cron(rule: ScheduleRule, begin: datetime) -> Iterator[datetime]:
    # croniter works on naive datetimes as plain calendar arithmetic, so the slots are wall times
    # and no DST handling of croniter's is involved. get_next() is strictly after its base time.
    base = max(begin, rule.start) - timedelta(seconds=1)
    iterator = croniter(rule.cron_expression or "", base)
    while True:
        try:
            yield iterator.get_next(datetime)
        except CroniterBadDateError:
            return  # the expression matches no later date (e.g. 30 February)


def wall_slots(rule: ScheduleRule, begin: datetime) -> Iterator[datetime]:
    """Yield the rule's wall-clock slots at or after the naive wall time `begin`, in order.

    The slots are not bounded by `rule.end`; callers stop at the end instant.
    """
    if rule.frequency == ScheduleFrequency.ONCE:
        if rule.start >= begin:
            yield rule.start
        return
    if rule.frequency == ScheduleFrequency.HOURLY:
        yield from _every(rule.start, timedelta(hours=1), begin)
    elif rule.frequency == ScheduleFrequency.DAILY:
        yield from _every(rule.start, timedelta(days=1), begin)
    elif rule.frequency == ScheduleFrequency.WEEKLY:
        yield from _weekly(rule, begin)
    elif rule.frequency == ScheduleFrequency.MONTHLY:
        yield from _monthly(rule, begin)
    else:
        yield from _cron(rule, begin)


def iter_slots(rule: ScheduleRule, after: datetime, *, inclusive: bool = False) -> Iterator[datetime]:
    """Yield the UTC instants of the rule's slots later than `after` (or equal, if `inclusive`).

    The instants rise strictly: slots that resolve to the same instant yield it once. The
    iteration ends at the rule's end, or never when it has none.
    """
    end = rule.end_instant
    # Any slot before the wall time of an instant just before `after` resolves to an instant
    # before `after` (resolution never goes backwards), so the scan can start there.
    begin = utc_to_wall_time(after - timedelta(microseconds=1), rule.zone)
    previous: datetime | None = None
    for wall in wall_slots(rule, begin):
        instant = wall_time_to_utc(wall, rule.zone)
        if end is not None and instant > end:
            return
        if instant < after or (instant == after and not inclusive):
            continue
        if previous is not None and instant <= previous:
            continue
        previous = instant
        yield instant


def next_slot(rule: ScheduleRule, after: datetime, *, inclusive: bool = False) -> datetime | None:
    """Return the UTC instant of the first slot later than `after` (or equal, if `inclusive`).

    None when the schedule has no such slot before its end.
    """
    return next(iter_slots(rule, after, inclusive=inclusive), None)


@dataclass(frozen=True)
class DispatchPlan:
    """The work of one dispatch of a due schedule, computed from its rule and `now`."""

    run_slot: datetime | None  # the slot that runs now; None when the schedule has expired
    skipped_slots: list[datetime]  # due slots that do not run, oldest first
    skipped_count_is_lower_bound: bool  # True when the scan stopped at MAX_SKIPPED_SLOT_SCAN
    next_slot: datetime | None  # the first slot after `now`, or None when none is left


def plan_dispatch(rule: ScheduleRule, due_slot: datetime, now: datetime) -> DispatchPlan:
    """Plan the dispatch at `now` of a schedule whose slot `due_slot` is due (`due_slot` <= `now`).

    All due slots up to `now` collapse into one run, for the latest of them; the earlier ones are
    skipped and listed. A schedule whose end passed more than EXPIRY_GRACE before `now` has
    expired: nothing runs, every due slot is skipped and no slot follows.
    """
    due = [due_slot]
    scan_capped = False
    for slot in iter_slots(rule, due_slot):
        if slot > now:
            break
        if len(due) >= MAX_SKIPPED_SLOT_SCAN:
            scan_capped = True
            break
        due.append(slot)

    end = rule.end_instant
    if end is not None and now >= end + EXPIRY_GRACE:
        return DispatchPlan(None, due, scan_capped, None)
    return DispatchPlan(due[-1], due[:-1], scan_capped, next_slot(rule, now))


def format_wall_time(wall: datetime) -> str:
    """Format a naive wall time as ISO 8601 without offset, e.g. 2026-03-29T02:30:00."""
    return wall.isoformat(timespec="seconds")


def format_local_time(instant: datetime, zone: ZoneInfo) -> str:
    """Format `instant` as it reads in `zone`, with its offset, e.g. 2026-03-29T03:00:00+02:00."""
    return instant.astimezone(zone).isoformat(timespec="seconds")
