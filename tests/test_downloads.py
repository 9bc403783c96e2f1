"""Triggering downloads and running the real worker against a misbehaving source on 127.0.0.1."""

import asyncio
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from beanie import PydanticObjectId

from app.config import Settings
from app.models.documents import DownloadJob, OsImage
from tests.source_server import (
    Route,
    cut_after,
    fail_then_serve,
    gzip_encoded,
    redirect_chain,
    stall_after,
)

BASE = "/ux/nccm/os-image"
PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


async def create_image(client: httpx.AsyncClient, url: str, **fields: object) -> str:
    body = {"img_id": "img", "organization": "acme", "file_name": "image.bin", "file_path": url}
    body.update(fields)
    response = await client.post(f"{BASE}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def trigger(client: httpx.AsyncClient, **body: object) -> dict:
    response = await client.post(f"{BASE}/trigger-osdownload/", json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def job_of(client: httpx.AsyncClient, image_id: str) -> dict:
    response = await client.get(f"{BASE}/os-images-status/", params={"image_ids": image_id})
    assert response.status_code == 200
    (job,) = response.json()
    return job


async def actions(client: httpx.AsyncClient, image_id: str) -> list[str]:
    events = (await client.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    return [event["action"] for event in reversed(events)]


def stored_files(settings: Settings) -> tuple[list[Path], list[Path]]:
    root = settings.storage_dir
    return sorted((root / "objects").iterdir()), sorted((root / "partial").iterdir())


async def download(client, source, run_worker, route: Route | dict, **fields) -> tuple[str, dict, dict]:  # type: ignore[no-untyped-def]
    """Serve `route` at /image.bin (or the given route table), download it, return id, job, record."""
    if isinstance(route, Route):
        source.routes["/image.bin"] = route
    else:
        source.routes.update(route)
    url = fields.pop("url", source.url("/image.bin"))
    image_id = await create_image(client, url, **fields)
    await trigger(client, id=image_id)
    await run_worker()
    record = (await client.get(f"{BASE}/{image_id}/")).json()
    return image_id, await job_of(client, image_id), record


async def test_download_stores_verified_file(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    image_id, job, record = await download(
        acme, source, run_worker, Route(body=PAYLOAD), md5_hash=PAYLOAD_MD5.upper()
    )
    assert job["state"] == "succeeded", job
    assert job["bytes_done"] == len(PAYLOAD)
    assert job["percent"] == 100.0
    assert record["file_status"] == "available"
    assert record["md5_hash"] == PAYLOAD_MD5
    assert record["md5_verified"] is True
    assert record["sha256_hash"] == PAYLOAD_SHA256
    assert record["image_size"] == str(len(PAYLOAD))
    assert record["uploaded_type"] == 2
    assert record["job_iteration_id"] == "1"

    objects, partials = stored_files(settings)
    assert [path.name for path in objects] == [record["image_id"]]
    assert objects[0].read_bytes() == PAYLOAD
    assert partials == []
    assert await actions(acme, image_id) == [
        "image_created", "download_queued", "download_started", "download_succeeded",
    ]
    (path, headers), = source.request_headers
    assert headers["Accept-Encoding"] == "identity"


async def test_download_without_declared_md5(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    _, job, record = await download(acme, source, run_worker, Route(body=PAYLOAD))
    assert job["state"] == "succeeded"
    assert record["md5_hash"] == PAYLOAD_MD5
    assert record["md5_verified"] is False


async def test_gzip_encoded_bin_is_decoded(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    _, job, record = await download(
        acme, source, run_worker, gzip_encoded(PAYLOAD), md5_hash=PAYLOAD_MD5
    )
    assert job["state"] == "succeeded", job
    assert record["md5_hash"] == PAYLOAD_MD5
    objects, _ = stored_files(settings)
    assert objects[0].read_bytes() == PAYLOAD


async def test_gzip_label_on_tgz_keeps_bytes(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    import gzip

    archive = gzip.compress(PAYLOAD)
    route = Route(body=archive, headers={"Content-Encoding": "gzip"})
    _, job, record = await download(
        acme, source, run_worker, route, file_name="junos.tgz",
        md5_hash=hashlib.md5(archive).hexdigest(),
    )
    assert job["state"] == "succeeded", job
    objects, _ = stored_files(settings)
    assert objects[0].read_bytes() == archive


async def test_redirect_chain_followed(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    routes = {"/final.bin": Route(body=PAYLOAD), **redirect_chain("/final.bin", 3, "/hop")}
    _, job, record = await download(
        acme, source, run_worker, routes, url=source.url("/hop/1"), md5_hash=PAYLOAD_MD5
    )
    assert job["state"] == "succeeded", job
    assert source.request_counts == {"/hop/1": 1, "/hop/2": 1, "/hop/3": 1, "/final.bin": 1}


async def test_redirect_loop_fails(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    routes = {"/loop": Route(status=302, headers={"Location": "/loop"})}
    _, job, record = await download(acme, source, run_worker, routes, url=source.url("/loop"))
    assert job["state"] == "failed"
    assert job["error_code"] == "too_many_redirects"
    assert record["file_status"] == "failed"


async def test_html_page_is_unexpected_content(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    route = Route(body=page, headers={"Content-Type": "text/html; charset=utf-8"})
    image_id, job, record = await download(acme, source, run_worker, route)
    assert job["state"] == "failed"
    assert job["error_code"] == "unexpected_content"
    assert "HTML" in job["error_message"]
    assert job["attempt"] == 1
    assert record["file_status"] == "failed"
    assert record["image_id"] is None
    assert stored_files(settings) == ([], [])
    assert (await actions(acme, image_id))[-1] == "download_failed"


async def test_html_sniffed_without_content_type(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    route = Route(body=b"\n  <html><head><title>404</title></head></html>")
    _, job, _ = await download(acme, source, run_worker, route)
    assert job["error_code"] == "unexpected_content"


async def test_wrong_md5_fails_and_keeps_nothing(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    image_id, job, record = await download(
        acme, source, run_worker, Route(body=PAYLOAD), md5_hash="0" * 32
    )
    assert job["state"] == "failed"
    assert job["error_code"] == "md5_mismatch"
    assert PAYLOAD_MD5 in job["error_message"]
    assert job["md5_hash"] == PAYLOAD_MD5
    assert job["bytes_done"] == len(PAYLOAD)
    assert record["file_status"] == "failed"
    assert record["md5_hash"] == "0" * 32
    assert record["image_id"] is None
    assert stored_files(settings) == ([], [])


async def test_sha256_as_md5_fails_in_worker(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    # A record can carry a bad md5_hash from before validation existed; the worker checks too.
    source.routes["/image.bin"] = Route(body=PAYLOAD)
    image_id = await create_image(acme, source.url("/image.bin"))
    await OsImage.get_pymongo_collection().update_one(
        {"_id": PydanticObjectId(image_id)}, {"$set": {"md5_hash": PAYLOAD_SHA256, "md5_declared": True}}
    )
    response = await acme.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})
    assert response.status_code == 422
    assert "SHA-256" in response.json()["detail"][0]["msg"]

    job = DownloadJob(
        organization="acme", image_record_id=PydanticObjectId(image_id), img_id="img",
        source_url=source.url("/image.bin"), file_name="image.bin", expected_md5=PAYLOAD_SHA256,
        max_attempts=3,
    )
    await job.insert()
    await OsImage.get_pymongo_collection().update_one(
        {"_id": PydanticObjectId(image_id)}, {"$set": {"active_job_id": str(job.id)}}
    )
    from app.workers.download import download_image

    ctx = {"settings": acme._transport.app.state.settings, "storage": acme._transport.app.state.storage,
           "http_client": httpx.AsyncClient()}
    assert await download_image(ctx, str(job.id)) == "failed"
    await ctx["http_client"].aclose()
    stored = await DownloadJob.get(job.id)
    assert stored is not None and stored.error_code == "invalid_md5"
    assert source.request_counts == {}


async def test_503_then_success_retries(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    image_id, job, record = await download(
        acme, source, run_worker, fail_then_serve(PAYLOAD, failures=1), md5_hash=PAYLOAD_MD5
    )
    assert job["state"] == "succeeded", job
    assert job["attempt"] == 2
    assert source.request_counts["/image.bin"] == 2
    assert await actions(acme, image_id) == [
        "image_created", "download_queued", "download_started", "download_retry_scheduled",
        "download_started", "download_succeeded",
    ]


async def test_persistent_503_fails_after_attempts(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    _, job, _ = await download(acme, source, run_worker, fail_then_serve(PAYLOAD, failures=99))
    assert job["state"] == "failed"
    assert job["error_code"] == "http_status"
    assert job["attempt"] == 3
    assert source.request_counts["/image.bin"] == 3


async def test_404_fails_without_retry(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    _, job, _ = await download(acme, source, run_worker, {}, url=source.url("/missing.bin"))
    assert job["state"] == "failed"
    assert job["error_code"] == "http_status"
    assert "404" in job["error_message"]
    assert source.request_counts["/missing.bin"] == 1


async def test_dropped_connection_is_truncated(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    _, job, _ = await download(acme, source, run_worker, cut_after(PAYLOAD, 100_000))
    assert job["state"] == "failed"
    assert job["error_code"] == "truncated"
    assert source.request_counts["/image.bin"] == 3
    assert stored_files(settings) == ([], [])


async def download_with(acme, source, run_worker, settings, route: Route, **changes) -> dict:  # type: ignore[no-untyped-def]
    """Download /image.bin with a worker whose settings differ from the API's by `changes`."""
    source.routes["/image.bin"] = route
    image_id = await create_image(acme, source.url("/image.bin"))
    await trigger(acme, id=image_id)
    await run_worker(settings.model_copy(update=changes))
    return await job_of(acme, image_id)


async def test_stalled_source_times_out(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    job = await download_with(
        acme, source, run_worker, settings, stall_after(PAYLOAD, 1000, stall_s=1.5),
        download_read_timeout_s=0.3,
    )
    assert job["state"] == "failed"
    assert job["error_code"] == "timeout"
    assert job["attempt"] == job["max_attempts"]


async def test_declared_length_over_limit(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    job = await download_with(
        acme, source, run_worker, settings, Route(body=PAYLOAD), max_image_size_bytes=1000
    )
    assert job["error_code"] == "too_large"


async def test_file_type_checked_at_run_time(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    job = await download_with(
        acme, source, run_worker, settings, Route(body=PAYLOAD), allowed_file_types=[".swi"]
    )
    assert job["error_code"] == "file_type_not_allowed"
    assert source.request_counts == {}


async def test_trigger_twice_gives_one_job(acme, source) -> None:  # type: ignore[no-untyped-def]
    image_id = await create_image(acme, source.url("/image.bin"))
    results = await asyncio.gather(*(trigger(acme, id=image_id) for _ in range(5)))
    job_ids = {result["jobs"][0]["job_id"] for result in results}
    assert len(job_ids) == 1
    assert await DownloadJob.find({"image_record_id": PydanticObjectId(image_id)}).count() == 1


async def test_trigger_by_img_id_and_ids(acme, source) -> None:  # type: ignore[no-untyped-def]
    first = await create_image(acme, source.url("/a.bin"), img_id="first")
    second = await create_image(acme, source.url("/b.bin"), img_id="second")
    by_name = await trigger(acme, img_id="first")
    assert by_name["jobs"][0]["image_record_id"] == first
    both = await trigger(acme, ids=[first, second])
    assert [job["image_record_id"] for job in both["jobs"]] == [first, second]
    assert both["jobs"][0]["job_id"] == by_name["jobs"][0]["job_id"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"id": "6b131b27d48c102a763756eb"}, 404), ({"img_id": "nope"}, 404),
     ({"id": "x", "organization": "globex"}, 403)],
)
async def test_trigger_rejects(acme, body: dict, status: int) -> None:  # type: ignore[no-untyped-def]
    response = await acme.post(f"{BASE}/trigger-osdownload/", json=body)
    assert response.status_code == status, response.text


async def test_trigger_needs_file_path(acme) -> None:  # type: ignore[no-untyped-def]
    response = await acme.post(f"{BASE}/", json={"img_id": "x", "organization": "acme"})
    image_id = response.json()["id"]
    response = await acme.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file_path"]


async def test_delete_cancels_queued_job(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    source.routes["/image.bin"] = Route(body=PAYLOAD)
    image_id = await create_image(acme, source.url("/image.bin"))
    job_id = (await trigger(acme, id=image_id))["jobs"][0]["job_id"]
    assert (await acme.delete(f"{BASE}/{image_id}/")).status_code == 204
    await run_worker()
    job = await DownloadJob.get(PydanticObjectId(job_id))
    assert job is not None and job.state == "cancelled"
    assert source.request_counts == {}
    assert stored_files(settings) == ([], [])


async def test_delete_removes_stored_file(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    image_id, job, record = await download(acme, source, run_worker, Route(body=PAYLOAD))
    assert stored_files(settings)[0]
    await acme.delete(f"{BASE}/{image_id}/")
    assert stored_files(settings) == ([], [])


async def test_redownload_replaces_file(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    image_id, _, first = await download(acme, source, run_worker, Route(body=PAYLOAD))
    job = (await trigger(acme, id=image_id))["jobs"][0]
    await run_worker()
    second = (await acme.get(f"{BASE}/{image_id}/")).json()
    assert second["image_id"] != first["image_id"]
    objects, _ = stored_files(settings)
    assert [path.name for path in objects] == [second["image_id"]]
    assert second["job_id"] == job["job_id"]


async def test_md5_change_on_stored_file_conflicts(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    image_id, _, _ = await download(acme, source, run_worker, Route(body=PAYLOAD))
    response = await acme.patch(f"{BASE}/{image_id}/", json={"md5_hash": "1" * 32})
    assert response.status_code == 409
    assert response.json()["field"] == "md5_hash"


async def test_status_filters_by_state(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    source.routes["/good.bin"] = Route(body=PAYLOAD)
    good = await create_image(acme, source.url("/good.bin"), img_id="good")
    bad = await create_image(acme, source.url("/bad.bin"), img_id="bad")
    await trigger(acme, ids=[good, bad])
    await run_worker()
    failed = (await acme.get(f"{BASE}/os-images-status/", params={"state": "failed"})).json()
    assert [job["image_record_id"] for job in failed] == [bad]
    both = await acme.get(f"{BASE}/os-images-status/", params={"image_ids": f"{good},{bad}"})
    assert both.headers["X-Total-Count"] == "2"


async def test_audit_filters(acme, source, run_worker) -> None:  # type: ignore[no-untyped-def]
    image_id, job, _ = await download(acme, source, run_worker, Route(body=PAYLOAD))
    by_action = (await acme.get(f"{BASE}/os-job-audit/", params={"action": "download_succeeded"})).json()
    assert [event["job_id"] for event in by_action] == [job["job_id"]]
    assert by_action[0]["details"]["md5"] == PAYLOAD_MD5
    by_job = (await acme.get(f"{BASE}/os-job-audit/", params={"job_id": job["job_id"]})).json()
    assert {event["action"] for event in by_job} == {"download_queued", "download_started", "download_succeeded"}
    future = (await acme.get(f"{BASE}/os-job-audit/", params={"since": "2999-01-01T00:00:00Z"})).json()
    assert future == []
    response = await acme.get(f"{BASE}/os-job-audit/", params={"image_id": "bogus"})
    assert response.status_code == 422


async def test_redownload_of_changed_source(acme, source, run_worker, settings) -> None:  # type: ignore[no-untyped-def]
    # Without a declared MD5, the first file's MD5 is a fact about that file, not a rule for the
    # next one: a vendor who replaces the file at the URL gets the new file stored.
    image_id, _, first = await download(acme, source, run_worker, Route(body=PAYLOAD))
    assert first["md5_verified"] is False
    newer = os.urandom(len(PAYLOAD))
    source.routes["/image.bin"] = Route(body=newer)
    await trigger(acme, id=image_id)
    await run_worker()
    job = await job_of(acme, image_id)
    record = (await acme.get(f"{BASE}/{image_id}/")).json()
    assert job["state"] == "succeeded", job
    assert record["md5_hash"] == hashlib.md5(newer).hexdigest()
