"""The schedule dispatcher, driven by an injected clock against the real Redis queue.

Schedules are saved through the service with the same injected clock, because the API reads
the wall clock. Everything else goes through the API or the arq cron function itself.
"""

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from beanie import PydanticObjectId

from app.auth import Caller
from app.config import Settings
from app.models.documents import DownloadJob, DownloadSchedule
from app.models.schemas import ScheduleSave
from app.services import jobs as job_service
from app.services import schedules as schedule_service
from app.services.dispatch import dispatch_schedule
from app.workers.schedules import dispatch_schedules
from tests.conftest import REDIS_URL

BASE = "/ux/nccm/os-image"
MINUTE = timedelta(minutes=1)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def caller(acme_key: str) -> Caller:
    return Caller(organization="acme", api_key_id="tests")


@pytest.fixture
def ctx(settings: Settings, queue: ArqRedis) -> dict[str, Any]:
    """The arq context the worker hands the cron job."""
    return {"settings": settings, "redis": queue}


@pytest.fixture
def triggers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record (image id, actor) of every call of trigger_download, which still runs as usual."""
    calls: list[tuple[str, str]] = []
    original = job_service.trigger_download

    async def recording_trigger(image, actor, settings, pool):  # type: ignore[no-untyped-def]
        calls.append((str(image.id), actor))
        return await original(image, actor, settings, pool)

    monkeypatch.setattr(job_service, "trigger_download", recording_trigger)
    return calls


async def create_image(client: httpx.AsyncClient, img_id: str = "eos") -> str:
    body = {
        "img_id": img_id, "organization": "acme", "file_name": f"{img_id}.swi",
        "file_path": f"http://127.0.0.1:9/{img_id}.swi",
    }
    response = await client.post(f"{BASE}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def save(caller: Caller, now: datetime, **fields: Any) -> DownloadSchedule:
    body = {"name": "nightly", "frequency": "daily", "time_zone": "UTC", **fields}
    return await schedule_service.save_schedule(caller, ScheduleSave(**body), now=now)


async def fire_times(ctx: dict[str, Any], start: datetime, end: datetime) -> list[datetime]:
    """Run the dispatcher at every minute from `start` to `end` inclusive; return when it fired."""
    fired = []
    now = start
    while now <= end:
        if await dispatch_schedules(ctx, now=now):
            fired.append(now)
        now += MINUTE
    return fired


async def stored(schedule: DownloadSchedule) -> DownloadSchedule:
    reloaded = await DownloadSchedule.get(schedule.id)
    assert reloaded is not None
    return reloaded


async def audit(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get(f"{BASE}/os-job-audit/", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_berlin_spring_forward_runs_at_0300(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    await save(
        caller, utc(2026, 3, 27, 12, 0), image_ids=[image_id], time_zone="Europe/Berlin",
        start_time="2026-03-01T02:30",
    )
    fired = await fire_times(ctx, utc(2026, 3, 27, 23, 0), utc(2026, 3, 30, 3, 0))
    assert fired == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 is skipped: 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


async def test_berlin_fall_back_runs_once(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(
        caller, utc(2026, 10, 24, 12, 0), image_ids=[image_id], time_zone="Europe/Berlin",
        frequency="cron", cron_expression="30 2 * * 0", start_time="2026-10-01T00:00",
    )
    fired = await fire_times(ctx, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert fired == [utc(2026, 10, 25, 0, 30)]  # 02:30 CEST; the repeated 02:30 CET does not run
    assert (await stored(schedule)).next_run_time == utc(2026, 11, 1, 1, 30)


async def test_new_york_hourly_spring_forward(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    await save(
        caller, utc(2026, 3, 8, 5, 30), image_ids=[image_id], time_zone="America/New_York",
        frequency="hourly", start_time="2026-03-07T00:00",
    )
    fired = await fire_times(ctx, utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 8, 30))
    # 01:00 EST, then 02:00 (skipped) and 03:00 EDT share one instant and run once, then 04:00.
    assert fired == [utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0)]


async def test_new_york_hourly_fall_back(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    await save(
        caller, utc(2026, 11, 1, 4, 0), image_ids=[image_id], time_zone="America/New_York",
        frequency="hourly", start_time="2026-10-31T00:30",
    )
    fired = await fire_times(ctx, utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 8, 0))
    # 00:30 EDT, 01:30 EDT, then 02:30 EST: the repeated 01:30 EST (06:30Z) does not run.
    assert fired == [utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 30)]


async def test_lord_howe_half_hour_shift(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    await save(
        caller, utc(2026, 10, 2, 0, 0), image_ids=[image_id], time_zone="Australia/Lord_Howe",
        start_time="2026-10-01T02:15",
    )
    fired = await fire_times(ctx, utc(2026, 10, 2, 15, 0), utc(2026, 10, 4, 16, 0))
    assert fired == [
        utc(2026, 10, 2, 15, 45),  # 02:15 +10:30
        utc(2026, 10, 3, 15, 30),  # 02:15 is skipped: 02:30 +11:00
        utc(2026, 10, 4, 15, 15),  # 02:15 +11:00
    ]


async def test_host_time_zone_changes_nothing(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"  # UTC+05:45
    time.tzset()
    try:
        image_id = await create_image(acme)
        await save(
            caller, utc(2026, 3, 28, 12, 0), image_ids=[image_id], time_zone="Europe/Berlin",
            start_time="2026-03-01T02:30",
        )
        fired = await fire_times(ctx, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 0))
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert fired == [utc(2026, 3, 29, 1, 0)]


async def test_run_queues_jobs_and_audits(acme, caller, ctx, queue, settings) -> None:  # type: ignore[no-untyped-def]
    first = await create_image(acme, "eos")
    second = await create_image(acme, "junos")
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[first, second], start_time="2026-06-01T02:00")

    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 1, 59)) == 0
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1

    jobs = await DownloadJob.find({"triggered_by": f"schedule:{schedule.id}"}).to_list()
    job_ids = sorted(str(job.id) for job in jobs)
    assert len(job_ids) == 2
    assert await queue.zcard(settings.queue_name) == 2

    fired = await audit(acme, schedule_id=str(schedule.id), action="schedule_fired")
    assert len(fired) == 1
    assert sorted(fired[0]["details"]["job_ids"]) == job_ids
    assert fired[0]["details"]["slot_time"] == "2026-06-01T02:00:00.000Z"
    assert fired[0]["schedule_id"] == str(schedule.id)

    detail = (await acme.get(f"{BASE}/os-schedule-detail/", params={"id": str(schedule.id)})).json()
    assert detail["next_run_time"] == "2026-06-02T02:00:00.000Z"
    assert detail["last_run_time"] == "2026-06-01T02:00:00.000Z"
    (run,) = detail["last_runs"]
    assert run["slot_time"] == "2026-06-01T02:00:00.000Z"
    assert run["outcome"] == "queued"
    assert sorted(run["job_ids"]) == job_ids
    assert [job["state"] for job in run["jobs"]] == ["queued", "queued"]


async def test_running_job_is_reused(acme, caller, ctx, queue, settings, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    manual = await acme.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})
    manual_job = manual.json()["jobs"][0]["job_id"]
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")

    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1

    assert await DownloadJob.find({"image_record_id": PydanticObjectId(image_id)}).count() == 1
    assert await queue.zcard(settings.queue_name) == 1
    run = (await stored(schedule)).recent_runs[-1]
    assert run.jobs[0].job_id == manual_job
    assert run.jobs[0].reused is True
    assert triggers[-1] == (image_id, f"schedule:{schedule.id}")
    assert len(triggers) == 2  # the manual trigger, then the schedule's


async def test_two_dispatchers_claim_each_slot_once(acme, caller, settings, triggers) -> None:  # type: ignore[no-untyped-def]
    image_ids = [await create_image(acme, f"img-{index}") for index in range(4)]
    schedules = [
        await save(caller, utc(2026, 6, 1, 0, 0), name=f"s{index}", image_ids=[image_id], start_time="2026-06-01T02:00")
        for index, image_id in enumerate(image_ids)
    ]
    pools = [
        await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=settings.queue_name)
        for _ in range(2)
    ]
    try:
        for now in (utc(2026, 6, 1, 2, 0), utc(2026, 6, 2, 2, 0)):
            claimed = await asyncio.gather(
                *(dispatch_schedules({"settings": settings, "redis": pool}, now=now) for pool in pools)
            )
            assert sum(claimed) == len(schedules)
        queued = await pools[0].zcard(settings.queue_name)
    finally:
        for pool in pools:
            await pool.aclose()

    # Each schedule fired once per day; the second day reused the still-queued first job.
    assert sorted(triggers) == sorted(
        (image_id, f"schedule:{schedule.id}") for image_id, schedule in zip(image_ids, schedules) for _ in range(2)
    )
    assert queued == len(schedules)
    for schedule in schedules:
        runs = (await stored(schedule)).recent_runs
        assert [run.slot_time for run in runs] == [utc(2026, 6, 1, 2, 0), utc(2026, 6, 2, 2, 0)]


async def test_stale_copies_claim_once(acme, caller, settings, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")
    copies = [await stored(schedule) for _ in range(3)]  # three dispatchers that read it at once
    pools = [
        await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=settings.queue_name)
        for _ in copies
    ]
    try:
        results = await asyncio.gather(
            *(dispatch_schedule(copy, settings, pool, utc(2026, 6, 1, 2, 0)) for copy, pool in zip(copies, pools))
        )
    finally:
        for pool in pools:
            await pool.aclose()
    assert sum(result is not None for result in results) == 1
    assert len(triggers) == 1


async def test_downtime_runs_once_and_audits_skips(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(
        caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], frequency="hourly",
        start_time="2026-06-01T02:15",
    )
    # The service is down from 02:00 to 07:40: slots 02:15 ... 07:15 are due at once.
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 7, 40)) == 1
    assert len(triggers) == 1

    reloaded = await stored(schedule)
    assert reloaded.next_run_time == utc(2026, 6, 1, 8, 15)
    (run,) = reloaded.recent_runs
    assert run.slot_time == utc(2026, 6, 1, 7, 15)
    assert run.skipped_slot_count == 5

    (skipped,) = await audit(acme, schedule_id=str(schedule.id), action="schedule_slots_skipped")
    assert skipped["details"]["skipped_slots"] == [f"2026-06-01T0{hour}:15:00.000Z" for hour in range(2, 7)]
    assert skipped["details"]["skipped_slot_count"] == 5

    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 7, 41)) == 0
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 8, 15)) == 1
    assert len(triggers) == 2


async def test_disabled_schedule_never_fires(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")
    await schedule_service.set_schedule_enabled(caller, schedule, False, now=utc(2026, 6, 1, 1, 0))
    assert await fire_times(ctx, utc(2026, 6, 1, 1, 58), utc(2026, 6, 1, 2, 2)) == []

    # Enabling later does not run the slot that passed while disabled.
    reloaded = await stored(schedule)
    await schedule_service.set_schedule_enabled(caller, reloaded, True, now=utc(2026, 6, 1, 3, 0))
    assert (await stored(schedule)).next_run_time == utc(2026, 6, 2, 2, 0)
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 3, 1)) == 0
    assert triggers == []


async def test_deleted_schedule_never_fires(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")
    response = await acme.get(f"{BASE}/os-schedule-delete/", params={"id": str(schedule.id)})
    assert response.status_code == 200
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 0
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 9, 2, 0)) == 0
    assert triggers == []


async def test_expired_schedule_never_fires(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(
        caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00",
        end_time="2026-06-03T02:00",
    )
    # Down from before the first slot until after the end: nothing runs, the slots are audited.
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 4, 0, 0)) == 1
    assert triggers == []
    reloaded = await stored(schedule)
    assert reloaded.next_run_time is None
    assert reloaded.recent_runs[-1].outcome == "expired"
    (skipped,) = await audit(acme, schedule_id=str(schedule.id), action="schedule_slots_skipped")
    assert skipped["details"]["skipped_slot_count"] == 3
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 5, 2, 0)) == 0
    detail = (await acme.get(f"{BASE}/os-schedule-detail/", params={"id": str(schedule.id)})).json()
    assert detail["status"] == "finished"


async def test_last_slot_at_end_time_runs(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    await save(
        caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00",
        end_time="2026-06-02T02:00",
    )
    fired = await fire_times(ctx, utc(2026, 6, 1, 1, 59), utc(2026, 6, 1, 2, 1))
    fired += await fire_times(ctx, utc(2026, 6, 2, 1, 59), utc(2026, 6, 2, 2, 1))
    assert fired == [utc(2026, 6, 1, 2, 0), utc(2026, 6, 2, 2, 0)]
    assert len(triggers) == 2


async def test_once_schedule_fires_once(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(
        caller, utc(2026, 6, 1, 12, 0), image_ids=[image_id], frequency="once",
        time_zone="Europe/Berlin", start_time="2026-06-01T23:00",
    )
    fired = await fire_times(ctx, utc(2026, 6, 1, 20, 58), utc(2026, 6, 1, 21, 2))
    assert fired == [utc(2026, 6, 1, 21, 0)]
    assert (await stored(schedule)).next_run_time is None
    assert len(triggers) == 1


async def test_save_after_claim_keeps_slot_claimed(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1
    # Changing the rule in the same minute must not bring the claimed 02:00 slot back.
    body = ScheduleSave(id=str(schedule.id), start_time="2026-05-01T02:00")
    await schedule_service.save_schedule(caller, body, now=utc(2026, 6, 1, 2, 0, 30))
    assert (await stored(schedule)).next_run_time == utc(2026, 6, 2, 2, 0)
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 1)) == 0
    assert len(triggers) == 1


async def test_deleted_image_leaves_schedules(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    kept = await create_image(acme, "kept")
    gone = await create_image(acme, "gone")
    shared = await save(caller, utc(2026, 6, 1, 0, 0), name="shared", image_ids=[kept, gone], start_time="2026-06-01T02:00")
    alone = await save(caller, utc(2026, 6, 1, 0, 0), name="alone", image_ids=[gone], start_time="2026-06-01T02:00")

    assert (await acme.delete(f"{BASE}/{gone}/")).status_code == 204

    assert (await stored(shared)).image_ids == [PydanticObjectId(kept)]
    emptied = await stored(alone)
    assert emptied.image_ids == []
    assert emptied.enabled is False
    removed = await audit(acme, image_id=gone, action="schedule_image_removed")
    assert sorted(event["schedule_id"] for event in removed) == sorted([str(shared.id), str(alone.id)])
    (disabled,) = await audit(acme, schedule_id=str(alone.id), action="schedule_disabled")
    assert "last image was deleted" in disabled["message"]

    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1
    assert triggers == [(kept, f"schedule:{shared.id}")]


async def test_unqueueable_image_is_reported(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    good = await create_image(acme, "good")
    response = await acme.post(f"{BASE}/", json={"img_id": "nourl", "organization": "acme"})
    no_url = response.json()["id"]
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[good, no_url], start_time="2026-06-01T02:00")

    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1

    run = (await stored(schedule)).recent_runs[-1]
    assert run.outcome == "partial"
    assert run.jobs[0].job_id is not None
    assert run.jobs[1].job_id is None
    assert "file_path" in (run.jobs[1].error or "")
    (fired,) = await audit(acme, schedule_id=str(schedule.id), action="schedule_fired")
    assert fired["details"]["outcome"] == "partial"
    assert no_url in fired["details"]["errors"]


async def test_recent_runs_are_capped(acme, caller, ctx) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(
        caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], frequency="hourly", start_time="2026-06-01T00:00"
    )
    for hour in range(schedule_service.MAX_RECENT_RUNS + 3):
        assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 0, 0) + timedelta(hours=hour)) == 1
    runs = (await stored(schedule)).recent_runs
    assert len(runs) == schedule_service.MAX_RECENT_RUNS
    assert runs[-1].slot_time == utc(2026, 6, 1, schedule_service.MAX_RECENT_RUNS + 2, 0)


async def test_minute_task_dispatches(acme, caller, ctx, triggers, settings) -> None:  # type: ignore[no-untyped-def]
    from app.workers.periodic import run_minute_tasks, seconds_until_next_minute

    assert seconds_until_next_minute(utc(2026, 6, 1, 2, 0)) == 60.0
    assert seconds_until_next_minute(utc(2026, 6, 1, 2, 0).replace(second=45)) == 15.0

    image_id = await create_image(acme)
    now = datetime.now(UTC)
    await save(caller, now, image_ids=[image_id], frequency="once", start_time=now.replace(tzinfo=None))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        # The first wait passes at once; the second ends the loop.
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_minute_tasks(ctx, sleep=sleep)
    assert len(triggers) == 1
    assert 0 < waits[0] <= 60


async def test_worker_runs_dispatch_job(acme, caller, settings, run_worker) -> None:  # type: ignore[no-untyped-def]
    # A once schedule for the current minute is due at once. The worker runs the dispatch job
    # when it is enqueued by name, with the worker's context, then the download.
    image_id = await create_image(acme)
    now = datetime.now(UTC)
    schedule = await save(
        caller, now, image_ids=[image_id], frequency="once", start_time=now.replace(tzinfo=None),
    )
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=settings.queue_name)
    try:
        await pool.enqueue_job("dispatch_schedules", _queue_name=settings.queue_name)
    finally:
        await pool.aclose()
    await run_worker()

    (run,) = (await stored(schedule)).recent_runs
    assert run.outcome == "queued"
    job = await DownloadJob.get(PydanticObjectId(run.jobs[0].job_id))
    assert job is not None
    assert job.triggered_by == f"schedule:{schedule.id}"
    assert job.state == "failed"  # nothing listens on 127.0.0.1:9, but the worker ran the job


async def test_save_racing_claim_keeps_claim(acme, caller, ctx, triggers) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme)
    schedule = await save(caller, utc(2026, 6, 1, 0, 0), image_ids=[image_id], start_time="2026-06-01T02:00")
    read_by_save = await stored(schedule)  # the save reads the schedule ...
    assert await dispatch_schedules(ctx, now=utc(2026, 6, 1, 2, 0)) == 1  # ... a dispatcher claims ...
    await schedule_service.set_schedule_enabled(caller, await stored(schedule), False, now=utc(2026, 6, 1, 2, 0))

    # ... and the save writes: its compare-and-set fails once and it retries on a fresh read.
    changed = await schedule_service._update_schedule(caller, read_by_save, {"name": "renamed"}, utc(2026, 6, 1, 2, 0))

    assert changed.name == "renamed"
    assert changed.enabled is False  # the concurrent disable is kept
    assert changed.next_run_time is None
    assert changed.last_slot_time == utc(2026, 6, 1, 2, 0)
    assert len(triggers) == 1
