"""Slot arithmetic in the schedule's zone: daylight-saving gaps and folds, cron, downtime."""

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.scheduling import (
    ScheduleFrequency,
    ScheduleRule,
    check_cron_expression,
    format_local_time,
    next_slot,
    parse_time_zone,
    parse_weekday,
    plan_dispatch,
    wall_time_to_utc,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def slots(rule: ScheduleRule, after: datetime, count: int) -> list[datetime]:
    found: list[datetime] = []
    cursor = after
    for _ in range(count):
        following = next_slot(rule, cursor)
        if following is None:
            break
        found.append(following)
        cursor = following
    return found


@pytest.fixture
def host_zone() -> Iterator[None]:
    """Set the process's TZ to a zone far from UTC, to show that nothing reads it."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        # Berlin jumps from 02:00 CET to 03:00 CEST: 02:30 runs at 03:00 CEST.
        (BERLIN, datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 0)),
        # Berlin repeats 02:00-03:00: 02:30 is its first occurrence, in CEST.
        (BERLIN, datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30)),
        (NEW_YORK, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30)),
        # Lord Howe Island shifts by 30 minutes: 02:00 jumps to 02:30 ...
        (LORD_HOWE, datetime(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 30)),
        # ... and 02:00 falls back to 01:30, repeating 01:30-02:00.
        (LORD_HOWE, datetime(2026, 4, 5, 1, 45), utc(2026, 4, 4, 14, 45)),
        (BERLIN, datetime(2026, 7, 1, 12, 0), utc(2026, 7, 1, 10, 0)),
    ],
)
def test_wall_time_to_utc(zone: ZoneInfo, wall: datetime, expected: datetime) -> None:
    assert wall_time_to_utc(wall, zone) == expected


def test_wall_time_ignores_host_zone(host_zone: None) -> None:
    assert wall_time_to_utc(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    rule = ScheduleRule(ScheduleFrequency.DAILY, BERLIN, datetime(2026, 3, 1, 2, 30))
    assert slots(rule, utc(2026, 3, 28, 0, 0), 2) == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0)]


def test_daily_across_berlin_spring_forward() -> None:
    rule = ScheduleRule(ScheduleFrequency.DAILY, BERLIN, datetime(2026, 3, 1, 2, 30))
    found = slots(rule, utc(2026, 3, 27, 12, 0), 4)
    assert found == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_daily_across_berlin_fall_back() -> None:
    rule = ScheduleRule(ScheduleFrequency.DAILY, BERLIN, datetime(2026, 10, 1, 2, 30))
    found = slots(rule, utc(2026, 10, 24, 12, 0), 2)
    assert found == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_hourly_across_new_york_spring_forward() -> None:
    # 02:00 does not exist and resolves to 03:00 EDT, the same instant as the 03:00 slot: one run.
    rule = ScheduleRule(ScheduleFrequency.HOURLY, NEW_YORK, datetime(2026, 3, 7, 0, 0))
    found = slots(rule, utc(2026, 3, 8, 5, 30), 3)
    assert [format_local_time(instant, NEW_YORK) for instant in found] == [
        "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00",
    ]


def test_hourly_across_new_york_fall_back() -> None:
    # 01:30 happens twice; only its first occurrence (EDT) runs.
    rule = ScheduleRule(ScheduleFrequency.HOURLY, NEW_YORK, datetime(2026, 10, 31, 0, 30))
    found = slots(rule, utc(2026, 11, 1, 4, 0), 3)
    assert [format_local_time(instant, NEW_YORK) for instant in found] == [
        "2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:30:00-05:00",
    ]


def test_daily_across_lord_howe_half_hour_shifts() -> None:
    rule = ScheduleRule(ScheduleFrequency.DAILY, LORD_HOWE, datetime(2026, 4, 1, 2, 15))
    spring = slots(rule, utc(2026, 10, 2, 12, 0), 2)
    assert [format_local_time(instant, LORD_HOWE) for instant in spring] == [
        "2026-10-03T02:15:00+10:30", "2026-10-04T02:30:00+11:00",
    ]
    repeated = ScheduleRule(ScheduleFrequency.DAILY, LORD_HOWE, datetime(2026, 4, 1, 1, 45))
    fall = slots(repeated, utc(2026, 4, 4, 0, 0), 2)
    assert [format_local_time(instant, LORD_HOWE) for instant in fall] == [
        "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30",
    ]


def test_cron_sunday_0230_in_berlin() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.CRON, BERLIN, datetime(2026, 1, 1), cron_expression="30 2 * * 0"
    )
    found = slots(rule, utc(2026, 3, 20, 0, 0), 3)
    assert found == [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 4, 5, 0, 30)]


def test_cron_every_minute_skips_repeated_hour() -> None:
    rule = ScheduleRule(ScheduleFrequency.CRON, BERLIN, datetime(2026, 10, 1), cron_expression="* 2 * * *")
    found = slots(rule, utc(2026, 10, 25, 0, 58), 3)
    assert found == [utc(2026, 10, 25, 0, 59), utc(2026, 10, 26, 1, 0), utc(2026, 10, 26, 1, 1)]


def test_weekly_on_given_weekdays() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.WEEKLY, NEW_YORK, datetime(2026, 3, 2, 2, 30), weekdays=(0, 6)
    )
    found = slots(rule, utc(2026, 3, 5, 0, 0), 3)
    assert [format_local_time(instant, NEW_YORK) for instant in found] == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-15T02:30:00-04:00",
    ]


def test_weekly_defaults_to_start_weekday() -> None:
    rule = ScheduleRule(ScheduleFrequency.WEEKLY, BERLIN, datetime(2026, 6, 3, 9, 0))  # Wednesday
    assert slots(rule, utc(2026, 6, 1, 0, 0), 2) == [utc(2026, 6, 3, 7, 0), utc(2026, 6, 10, 7, 0)]


def test_monthly_day_31_uses_last_day() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.MONTHLY, BERLIN, datetime(2026, 1, 31, 4, 0), day_of_month=31
    )
    found = slots(rule, utc(2026, 1, 1, 0, 0), 4)
    assert found == [
        utc(2026, 1, 31, 3, 0), utc(2026, 2, 28, 3, 0), utc(2026, 3, 31, 2, 0), utc(2026, 4, 30, 2, 0),
    ]


def test_once_runs_once() -> None:
    rule = ScheduleRule(ScheduleFrequency.ONCE, BERLIN, datetime(2026, 12, 1, 23, 0))
    assert slots(rule, utc(2026, 11, 1, 0, 0), 3) == [utc(2026, 12, 1, 22, 0)]


def test_end_bounds_slots() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.DAILY, BERLIN, datetime(2026, 6, 1, 2, 0), end=datetime(2026, 6, 3, 2, 0)
    )
    assert slots(rule, utc(2026, 5, 1, 0, 0), 5) == [
        utc(2026, 6, 1, 0, 0), utc(2026, 6, 2, 0, 0), utc(2026, 6, 3, 0, 0),
    ]


def test_next_slot_inclusive() -> None:
    rule = ScheduleRule(ScheduleFrequency.DAILY, BERLIN, datetime(2026, 3, 1, 2, 30))
    assert next_slot(rule, utc(2026, 3, 29, 1, 0), inclusive=True) == utc(2026, 3, 29, 1, 0)
    assert next_slot(rule, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 30, 0, 30)


def test_plan_collapses_downtime() -> None:
    rule = ScheduleRule(ScheduleFrequency.HOURLY, BERLIN, datetime(2026, 6, 1, 0, 15))
    plan = plan_dispatch(rule, utc(2026, 6, 1, 2, 15), utc(2026, 6, 1, 7, 40))
    assert plan.run_slot == utc(2026, 6, 1, 7, 15)
    assert plan.skipped_slots == [utc(2026, 6, 1, hour, 15) for hour in range(2, 7)]
    assert plan.skipped_count_is_lower_bound is False
    assert plan.next_slot == utc(2026, 6, 1, 8, 15)


def test_plan_on_time_skips_nothing() -> None:
    rule = ScheduleRule(ScheduleFrequency.HOURLY, BERLIN, datetime(2026, 6, 1, 0, 15))
    plan = plan_dispatch(rule, utc(2026, 6, 1, 2, 15), utc(2026, 6, 1, 2, 15, 0))
    assert plan.run_slot == utc(2026, 6, 1, 2, 15)
    assert plan.skipped_slots == []
    assert plan.next_slot == utc(2026, 6, 1, 3, 15)


def test_plan_expired_runs_nothing() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.DAILY, BERLIN, datetime(2026, 6, 1, 2, 0), end=datetime(2026, 6, 3, 2, 0)
    )
    plan = plan_dispatch(rule, utc(2026, 6, 2, 0, 0), utc(2026, 6, 5, 0, 0))
    assert plan.run_slot is None
    assert plan.skipped_slots == [utc(2026, 6, 2, 0, 0), utc(2026, 6, 3, 0, 0)]
    assert plan.next_slot is None


def test_plan_end_slot_within_grace_runs() -> None:
    rule = ScheduleRule(
        ScheduleFrequency.DAILY, BERLIN, datetime(2026, 6, 1, 2, 0), end=datetime(2026, 6, 3, 2, 0)
    )
    plan = plan_dispatch(rule, utc(2026, 6, 3, 0, 0), utc(2026, 6, 3, 0, 0, 30))
    assert plan.run_slot == utc(2026, 6, 3, 0, 0)
    assert plan.next_slot is None


def test_time_zone_names() -> None:
    assert parse_time_zone("Europe/Berlin") == BERLIN
    with pytest.raises(ValueError, match="did you mean 'Europe/Berlin'"):
        parse_time_zone("europe/berlin")
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        parse_time_zone("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="unknown IANA time zone 'localtime'"):
        parse_time_zone("localtime")


def test_weekday_names() -> None:
    assert parse_weekday("MON") == "mon"
    assert parse_weekday("Sunday") == "sun"
    with pytest.raises(ValueError, match="unknown weekday"):
        parse_weekday("mo")


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * * *", "has 4 fields"),
        ("0 * * * * *", "has 6 fields"),
        ("61 * * * *", "invalid cron_expression"),
        ("H 2 * * *", "hashed (H) and random (R)"),
        ("0 R * * *", "hashed (H) and random (R)"),
        ("every day", "has 2 fields"),
    ],
)
def test_cron_expression_rejected(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_cron_expression(expression)


def test_cron_expression_normalised() -> None:
    assert check_cron_expression("  30  2 * *   sun ") == "30 2 * * sun"
    assert check_cron_expression("@daily") == "@daily"


def test_slot_scan_is_bounded_for_long_downtime() -> None:
    rule = ScheduleRule(ScheduleFrequency.CRON, BERLIN, datetime(2026, 1, 1), cron_expression="* * * * *")
    start = utc(2026, 1, 1, 0, 0)
    plan = plan_dispatch(rule, start, start + timedelta(days=80))
    assert plan.skipped_count_is_lower_bound is True
    assert plan.next_slot == start + timedelta(days=80, minutes=1)
