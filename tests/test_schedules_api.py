"""The schedule endpoints: save, list, detail, toggle, delete, options, and their validation.

The API reads the wall clock, so schedules here start a few years ahead of it.
"""

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.timeutil import utc_now

BASE = "/ux/nccm/os-image"
YEAR = utc_now().year + 2  # a year that is in the future whenever the tests run


async def create_image(client: httpx.AsyncClient, img_id: str = "eos", **headers: str) -> str:
    body = {
        "img_id": img_id, "organization": "acme", "file_name": f"{img_id}.swi",
        "file_path": f"http://127.0.0.1:9/{img_id}.swi",
    }
    if headers:
        body["organization"] = "other"
    response = await client.post(f"{BASE}/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def schedule_body(image_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "sunday-release",
        "organization": "acme",
        "image_ids": [image_id],
        "frequency": "weekly",
        "weekdays": ["sun"],
        "start_time": f"{YEAR}-07-01T02:30",
        "time_zone": "Europe/Berlin",
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not ...}


async def save(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{BASE}/save-osimage-schedule-info/", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def image_id(acme: httpx.AsyncClient) -> str:
    return await create_image(acme)


async def test_create_returns_schedule(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(acme, schedule_body(image_id))
    assert len(schedule["id"]) == 24
    assert schedule["organization"] == "acme"
    assert schedule["image_ids"] == [image_id]
    assert schedule["frequency"] == "weekly"
    assert schedule["weekdays"] == ["sun"]
    assert schedule["enabled"] is True
    assert schedule["status"] == "scheduled"
    assert schedule["start_local_time"] == f"{YEAR}-07-01T02:30:00"
    assert schedule["start_time"] == f"{YEAR}-07-01T00:30:00.000Z"  # CEST is UTC+2
    first_sunday = next(
        day for day in (datetime(YEAR, 7, 1) + timedelta(days=n) for n in range(7)) if day.weekday() == 6
    )
    assert schedule["next_run_time"] == f"{first_sunday:%Y-%m-%d}T00:30:00.000Z"
    assert schedule["next_run_local_time"] == f"{first_sunday:%Y-%m-%d}T02:30:00+02:00"
    assert schedule["last_runs"] == []
    assert schedule["created_by"] is not None
    assert schedule["creation_time"].endswith("Z")


async def test_create_audited(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(acme, schedule_body(image_id))
    events = (await acme.get(f"{BASE}/os-job-audit/", params={"schedule_id": schedule["id"]})).json()
    assert [event["action"] for event in events] == ["schedule_created"]
    assert events[0]["schedule_id"] == schedule["id"]


async def test_naive_start_is_zone_wall_time(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(
        acme, schedule_body(image_id, frequency="daily", weekdays=..., time_zone="America/New_York",
                            start_time=f"{YEAR}-01-15T23:00")
    )
    assert schedule["start_local_time"] == f"{YEAR}-01-15T23:00:00"
    assert schedule["start_time"] == f"{YEAR}-01-16T04:00:00.000Z"


async def test_start_with_offset_is_instant(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(
        acme, schedule_body(image_id, frequency="daily", weekdays=..., start_time=f"{YEAR}-07-01T00:30:45Z")
    )
    assert schedule["start_local_time"] == f"{YEAR}-07-01T02:30:00"  # seconds dropped
    assert schedule["start_time"] == f"{YEAR}-07-01T00:30:00.000Z"


async def test_time_zone_defaults_to_utc(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(acme, schedule_body(image_id, time_zone=..., frequency="once", weekdays=...))
    assert schedule["time_zone"] == "UTC"
    assert schedule["next_run_time"] == f"{YEAR}-07-01T02:30:00.000Z"


async def test_update_keeps_omitted_fields(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id, description="before"))
    changed = await save(acme, {"id": created["id"], "name": "renamed"})
    assert changed["id"] == created["id"]
    assert changed["name"] == "renamed"
    assert changed["description"] == "before"
    assert changed["weekdays"] == ["sun"]
    assert changed["next_run_time"] == created["next_run_time"]
    events = (await acme.get(f"{BASE}/os-job-audit/", params={"schedule_id": created["id"]})).json()
    assert events[0]["action"] == "schedule_updated"
    assert events[0]["details"]["fields"] == ["name"]


async def test_update_changes_frequency(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    changed = await save(acme, {"id": created["id"], "frequency": "monthly", "day_of_month": 31})
    assert changed["frequency"] == "monthly"
    assert changed["weekdays"] is None
    assert changed["day_of_month"] == 31
    assert changed["next_run_time"] == f"{YEAR}-07-31T00:30:00.000Z"


async def test_update_can_disable(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    changed = await save(acme, {"id": created["id"], "enabled": False})
    assert changed["enabled"] is False
    assert changed["status"] == "disabled"
    assert changed["next_run_time"] is None


async def test_update_unknown_id_not_found(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    body = schedule_body(image_id, id="6b131b27d48c102a763756eb")
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json=body)
    assert response.status_code == 404


async def test_organization_mismatch_forbidden(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    response = await acme.post(
        f"{BASE}/save-osimage-schedule-info/", json=schedule_body(image_id, organization="globex")
    )
    assert response.status_code == 403
    assert "'globex'" in response.json()["detail"]
    assert (await acme.get(f"{BASE}/os-schedule-details/")).json() == []


async def test_other_organization_gets_404(acme, image_id, other_key) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(acme, schedule_body(image_id))
    other = {"Authorization": other_key}
    params = {"id": schedule["id"]}
    for path in ("os-schedule-detail", "os-schedule-toggle-state", "os-schedule-delete"):
        response = await acme.get(f"{BASE}/{path}/", params=params, headers=other)
        assert response.status_code == 404, path
    body = {"id": schedule["id"], "name": "taken over"}
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json=body, headers=other)
    assert response.status_code == 404
    listed = await acme.get(f"{BASE}/os-schedule-details/", headers=other)
    assert listed.json() == []
    assert (await acme.get(f"{BASE}/os-schedule-detail/", params=params)).json()["enabled"] is True


async def test_missing_key_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/os-schedule-details/")
    assert response.status_code == 401


def assert_invalid(response: httpx.Response, field: str, reason: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in error["loc"] for error in errors), errors
    assert any(reason in error["msg"] for error in errors), errors


async def post_invalid(acme: httpx.AsyncClient, body: dict[str, Any], field: str, reason: str) -> None:
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json=body)
    assert_invalid(response, field, reason)
    assert (await acme.get(f"{BASE}/os-schedule-details/")).json() == []


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "unknown IANA time zone"),
        ({"time_zone": "europe/berlin"}, "time_zone", "did you mean 'Europe/Berlin'"),
        ({"time_zone": "localtime"}, "time_zone", "unknown IANA time zone"),
        ({"frequency": "cron", "weekdays": ..., "cron_expression": "61 * * * *"}, "cron_expression", "invalid cron_expression"),
        ({"frequency": "cron", "weekdays": ..., "cron_expression": "0 0 * * * *"}, "cron_expression", "has 6 fields"),
        ({"frequency": "cron", "weekdays": ..., "cron_expression": "H 2 * * *"}, "cron_expression", "not supported"),
        ({"frequency": "cron", "weekdays": ...}, "cron_expression", "needs a cron_expression"),
        ({"frequency": "cron", "weekdays": ..., "cron_expression": "0 0 30 2 *"}, "cron_expression", "matches no date"),
        ({"weekdays": ["someday"]}, "weekdays", "unknown weekday"),
        ({"weekdays": []}, "weekdays", "at least 1"),
        ({"frequency": "daily"}, "weekdays", "applies only to frequency 'weekly'"),
        ({"day_of_month": 32, "frequency": "monthly", "weekdays": ...}, "day_of_month", "less than or equal to 31"),
        ({"day_of_month": 5}, "day_of_month", "applies only to frequency 'monthly'"),
        ({"cron_expression": "0 0 * * *"}, "cron_expression", "applies only to frequency 'cron'"),
        ({"frequency": "fortnightly"}, "frequency", "Input should be"),
        ({"image_ids": ["not-an-id"]}, "image_ids", "not an image record id"),
        ({"image_ids": []}, "image_ids", "at least 1"),
        ({"image_ids": ["6b131b27d48c102a763756eb"]}, "image_ids", "name no live image"),
        ({"end_time": f"{YEAR}-06-30T02:30"}, "end_time", "is before start_time"),
        ({"frequency": "monthly", "weekdays": ..., "day_of_month": 28, "end_time": f"{YEAR}-07-02T02:30"}, "end_time", "no run falls between"),
        ({"start_time": "next sunday"}, "start_time", "invalid date-time"),
        ({"start_time": "9999-01-01T00:00"}, "start_time", "between 1970 and 2999"),
        ({"frequency": "once", "weekdays": ..., "start_time": "2001-01-01T00:00"}, "start_time", "has passed"),
        ({"frequency": "daily", "weekdays": ..., "start_time": "2001-01-01T00:00", "end_time": "2001-02-01T00:00"}, "end_time", "has passed"),
        ({"name": ...}, "name", "name is required"),
        ({"name": "   "}, "name", "at least 1"),
        ({"image_ids": ...}, "image_ids", "image_ids is required"),
        ({"frequency": ...}, "frequency", "frequency is required"),
        ({"start_time": ...}, "start_time", "start_time is required"),
    ],
    ids=[
        "unknown-zone", "zone-case", "host-zone", "cron-out-of-range", "cron-six-fields",
        "cron-hashed", "cron-missing", "cron-never-matches", "weekday-unknown", "weekdays-empty",
        "weekdays-not-weekly", "day-of-month-too-big", "day-of-month-not-monthly",
        "cron-not-cron", "frequency-unknown", "image-id-malformed", "image-ids-empty",
        "image-id-unknown", "end-before-start", "end-before-first-run", "start-unparseable",
        "start-year-out-of-range", "once-in-past", "end-in-past", "name-missing", "name-blank",
        "image-ids-missing", "frequency-missing", "start-missing",
    ],
)
async def test_save_rejects_invalid_field(  # type: ignore[no-untyped-def]
    acme, image_id, overrides: dict[str, Any], field: str, reason: str
) -> None:
    await post_invalid(acme, schedule_body(image_id, **overrides), field, reason)


async def test_save_rejects_deleted_image(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    assert (await acme.delete(f"{BASE}/{image_id}/")).status_code == 204
    await post_invalid(acme, schedule_body(image_id), "image_ids", "name no live image")


async def test_save_rejects_foreign_image(acme, other_key) -> None:  # type: ignore[no-untyped-def]
    foreign = await create_image(acme, "theirs", Authorization=other_key)
    await post_invalid(acme, schedule_body(foreign), "image_ids", foreign)


async def test_update_rejects_null_name(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json={"id": created["id"], "name": None})
    assert_invalid(response, "name", "cannot be null")


async def test_update_rejects_end_before_start(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    body = {"id": created["id"], "end_time": f"{YEAR}-01-01T00:00"}
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json=body)
    assert_invalid(response, "end_time", "is before start_time")
    unchanged = (await acme.get(f"{BASE}/os-schedule-detail/", params={"id": created["id"]})).json()
    assert unchanged["end_time"] is None


async def test_list_pages_and_counts(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    for name in ("delta", "alpha", "charlie", "bravo"):
        await save(acme, schedule_body(image_id, name=name))
    response = await acme.get(f"{BASE}/os-schedule-details/", params={"items_per_page": 3, "sort": "name"})
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "4"
    assert [item["name"] for item in response.json()] == ["alpha", "bravo", "charlie"]
    response = await acme.get(f"{BASE}/os-schedule-details/", params={"page": 2, "items_per_page": 3, "sort": "name"})
    assert [item["name"] for item in response.json()] == ["delta"]
    response = await acme.get(f"{BASE}/os-schedule-details/", params={"sort": "name", "reverse": True})
    assert [item["name"] for item in response.json()] == ["delta", "charlie", "bravo", "alpha"]


async def test_list_filters(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    other_image = await create_image(acme, "junos")
    weekly = await save(acme, schedule_body(image_id, name="weekly-eos", description="Spine release"))
    daily = await save(acme, schedule_body(other_image, name="daily-junos", frequency="daily", weekdays=...))
    await save(acme, {"id": daily["id"], "enabled": False})

    async def names(**params: Any) -> list[str]:
        response = await acme.get(f"{BASE}/os-schedule-details/", params=params)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()]

    assert await names(name="weekly-eos") == ["weekly-eos"]
    assert await names(enabled="false") == ["daily-junos"]
    assert await names(enabled="true") == ["weekly-eos"]
    assert await names(frequency="daily") == ["daily-junos"]
    assert await names(image_id=image_id) == ["weekly-eos"]
    assert await names(time_zone="Europe/Berlin") == ["weekly-eos", "daily-junos"]
    assert await names(search="SPINE") == ["weekly-eos"]
    assert await names(search="(.*") == []
    assert weekly["id"] != daily["id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"image_id": "bogus"}, "image_id"),
        ({"sort": "revision"}, "sort"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"enabled": "maybe"}, "enabled"),
        ({"items_per_page": 501}, "items_per_page"),
        ({"page": 0}, "page"),
    ],
)
async def test_list_rejects_bad_query(acme, params: dict[str, Any], field: str) -> None:  # type: ignore[no-untyped-def]
    response = await acme.get(f"{BASE}/os-schedule-details/", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


async def test_detail_returns_schedule(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    response = await acme.get(f"{BASE}/os-schedule-detail", params={"id": created["id"]})
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("bad_id", ["123", "zzzzzzzzzzzzzzzzzzzzzzzz", "6b131b27d48c102a763756eb"])
async def test_detail_unknown_id_not_found(acme, bad_id: str) -> None:  # type: ignore[no-untyped-def]
    response = await acme.get(f"{BASE}/os-schedule-detail/", params={"id": bad_id})
    assert response.status_code == 404


async def test_detail_needs_id(acme) -> None:  # type: ignore[no-untyped-def]
    response = await acme.get(f"{BASE}/os-schedule-detail/")
    assert_invalid(response, "id", "Field required")


async def test_toggle_flips_state(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    params = {"id": created["id"]}
    disabled = (await acme.get(f"{BASE}/os-schedule-toggle-state/", params=params)).json()
    assert disabled["enabled"] is False
    assert disabled["next_run_time"] is None
    enabled = (await acme.get(f"{BASE}/os-schedule-toggle-state/", params=params)).json()
    assert enabled["enabled"] is True
    assert enabled["next_run_time"] == created["next_run_time"]
    events = (await acme.get(f"{BASE}/os-job-audit/", params={"schedule_id": created["id"]})).json()
    assert [event["action"] for event in events] == ["schedule_enabled", "schedule_disabled", "schedule_created"]


async def test_toggle_explicit_state(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    params = {"id": created["id"], "enabled": "false"}
    for _ in range(2):
        response = await acme.get(f"{BASE}/os-schedule-toggle-state/", params=params)
        assert response.status_code == 200
        assert response.json()["enabled"] is False
    params["enabled"] = "true"
    assert (await acme.get(f"{BASE}/os-schedule-toggle-state/", params=params)).json()["enabled"] is True


async def test_toggle_rejects_bad_enabled(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    response = await acme.get(f"{BASE}/os-schedule-toggle-state/", params={"id": created["id"], "enabled": "maybe"})
    assert_invalid(response, "enabled", "valid boolean")


async def test_toggle_finished_schedule_conflicts(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    body = schedule_body(image_id, frequency="once", weekdays=..., start_time="2001-01-01T00:00", enabled=False)
    created = await save(acme, body)
    assert created["status"] == "disabled"
    response = await acme.get(f"{BASE}/os-schedule-toggle-state/", params={"id": created["id"], "enabled": "true"})
    assert response.status_code == 409
    assert "no run left" in response.json()["detail"]


async def test_delete_schedule(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    params = {"id": created["id"]}
    response = await acme.get(f"{BASE}/os-schedule-delete/", params=params)
    assert response.status_code == 200
    assert response.json()["is_deleted"] is True
    assert response.json()["status"] == "deleted"
    assert response.json()["next_run_time"] is None
    assert (await acme.get(f"{BASE}/os-schedule-detail/", params=params)).status_code == 404
    assert (await acme.get(f"{BASE}/os-schedule-delete/", params=params)).status_code == 404
    assert (await acme.get(f"{BASE}/os-schedule-details/")).json() == []
    events = (await acme.get(f"{BASE}/os-job-audit/", params={"schedule_id": created["id"]})).json()
    assert events[0]["action"] == "schedule_deleted"


async def test_options_lists_choices(acme) -> None:  # type: ignore[no-untyped-def]
    response = await acme.get(f"{BASE}/os-schedule-options/")
    assert response.status_code == 200
    options = response.json()
    assert [item["value"] for item in options["frequencies"]] == ["once", "hourly", "daily", "weekly", "monthly", "cron"]
    assert {"value": "weekly", "fields": ["weekdays"]}.items() <= next(
        item for item in options["frequencies"] if item["value"] == "weekly"
    ).items()
    assert "Europe/Berlin" in options["time_zones"]
    assert "Australia/Lord_Howe" in options["time_zones"]
    assert "localtime" not in options["time_zones"]
    assert options["weekdays"][0] == {"value": "mon", "name": "Monday"}
    assert options["cron"]["format"] == "minute hour day-of-month month day-of-week"
    assert "30 2 * * 0" in options["cron"]["examples"]
    assert options["defaults"] == {"frequency": "daily", "time_zone": "UTC", "enabled": True}
    assert "wall-clock time" in options["time_input"]
    assert options["dispatch_interval_s"] == 60


async def test_search_options_lists_values(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    other_image = await create_image(acme, "junos")
    await save(acme, schedule_body(image_id, name="weekly-eos"))
    await save(acme, schedule_body(other_image, name="daily-junos", frequency="daily", weekdays=..., time_zone="UTC"))
    response = await acme.get(f"{BASE}/os-schedule-search-options/")
    assert response.status_code == 200
    options = response.json()
    fields = {field["name"]: field["values"] for field in options["fields"]}
    assert fields["name"] == ["daily-junos", "weekly-eos"]
    assert fields["frequency"] == ["daily", "weekly"]
    assert fields["time_zone"] == ["Europe/Berlin", "UTC"]
    assert fields["enabled"] == [True]
    assert sorted(fields["image_id"]) == sorted([image_id, other_image])
    assert {image["img_id"] for image in options["images"]} == {"eos", "junos"}
    assert "next_run_time" in options["sort_fields"]


async def test_search_options_of_empty_organization(acme) -> None:  # type: ignore[no-untyped-def]
    options = (await acme.get(f"{BASE}/os-schedule-search-options/")).json()
    assert all(field["values"] == [] for field in options["fields"])
    assert options["images"] == []


async def test_openapi_documents_time_input(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    fields = schema["components"]["schemas"]["ScheduleSave"]["properties"]
    assert "wall-clock time in the schedule's time_zone" in fields["start_time"]["description"]
    assert "wall-clock time in the schedule's time_zone" in fields["end_time"]["description"]


async def test_weekdays_sorted_and_deduplicated(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    schedule = await save(acme, schedule_body(image_id, weekdays=["Sunday", "mon", "SUN"]))
    assert schedule["weekdays"] == ["mon", "sun"]


async def test_start_timestamp_year_checked(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    # Pydantic reads a number this large as Unix milliseconds: 9999-12-31T23:59:59Z.
    await post_invalid(acme, schedule_body(image_id, start_time=253402300799000), "start_time", "between 1970 and 2999")


async def test_enable_without_images_conflicts(acme, image_id) -> None:  # type: ignore[no-untyped-def]
    created = await save(acme, schedule_body(image_id))
    assert (await acme.delete(f"{BASE}/{image_id}/")).status_code == 204
    detail = (await acme.get(f"{BASE}/os-schedule-detail/", params={"id": created["id"]})).json()
    assert detail["image_ids"] == []
    assert detail["status"] == "disabled"
    response = await acme.get(f"{BASE}/os-schedule-toggle-state/", params={"id": created["id"]})
    assert response.status_code == 409
    assert "names no image" in response.json()["detail"]
    response = await acme.post(f"{BASE}/save-osimage-schedule-info/", json={"id": created["id"], "enabled": True})
    assert_invalid(response, "image_ids", "names no image")
