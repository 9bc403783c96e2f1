"""Uploads, upload status and file serving, with a real client against uvicorn on 127.0.0.1."""

import asyncio
import base64
import hashlib
import os
from urllib.parse import urlsplit

import httpx
import pytest
from beanie import PydanticObjectId

from app.models.documents import OsImage

BASE = "/ux/nccm/os-image"
PAYLOAD = os.urandom(1_500_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
async def http(live_server: str, acme_key: str):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server, headers={"Authorization": acme_key}) as client:
        yield client


async def new_image(http: httpx.AsyncClient, **fields: object) -> str:
    body = {"img_id": "upload", "organization": "acme", "file_name": "image.bin"}
    body.update(fields)
    response = await http.post(f"{BASE}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def upload_status(http: httpx.AsyncClient, image_id: str) -> dict:
    response = await http.post(f"{BASE}/file-upload-status/", json={"id": image_id})
    assert response.status_code == 200, response.text
    return response.json()


async def raw_request(live_server: str, head: str, body: bytes = b"", *, read: bool = True) -> bytes:
    """Send a hand-written HTTP/1.1 request; return the raw response (or b"" when not reading)."""
    address = urlsplit(live_server)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    await writer.drain()
    response = b""
    if read:
        response = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    await writer.wait_closed()
    return response


def partial_files(settings) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(path.name for path in (settings.storage_dir / "partial").iterdir())


async def test_put_stores_verified_file(http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, md5_hash=PAYLOAD_MD5)
    response = await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD)
    assert response.status_code == 201, response.text
    status = response.json()
    assert status["complete"] is True
    assert status["md5_hash"] == PAYLOAD_MD5
    assert status["sha256_hash"] == PAYLOAD_SHA256
    assert status["md5_verified"] is True
    assert status["bytes_received"] == len(PAYLOAD)

    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["file_status"] == "available"
    assert record["uploaded_type"] == 1
    assert record["image_size"] == str(len(PAYLOAD))
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == PAYLOAD
    assert partial_files(settings) == []
    events = (await http.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    assert [event["action"] for event in events][:2] == ["upload_completed", "upload_started"]


async def test_put_md5_mismatch_discards(http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, md5_hash="0" * 32)
    response = await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "md5_hash"]
    assert PAYLOAD_MD5 in error["msg"]
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["file_status"] == "none"
    assert record["image_id"] is None
    assert record["md5_hash"] == "0" * 32
    assert partial_files(settings) == []
    assert list((settings.storage_dir / "objects").iterdir()) == []


async def test_oversized_length_rejected_early(live_server, acme_key, http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    head = (
        f"PUT {BASE}/{image_id}/file/ HTTP/1.1\nHost: test\nAuthorization: {acme_key}\n"
        f"Content-Length: {settings.max_image_size_bytes + 1}\n"
    )
    response = await raw_request(live_server, head, b"x" * 10)
    assert response.startswith(b"HTTP/1.1 413")
    assert b"MAX_IMAGE_SIZE_BYTES" in response
    assert partial_files(settings) == []


async def test_content_range_pieces(http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, md5_hash=PAYLOAD_MD5)
    total = len(PAYLOAD)
    cuts = [0, 500_000, 1_000_000, total]
    for index, (start, end) in enumerate(zip(cuts, cuts[1:])):
        response = await http.put(
            f"{BASE}/{image_id}/file/", content=PAYLOAD[start:end],
            headers={"Content-Range": f"bytes {start}-{end - 1}/{total}"},
        )
        last = index == len(cuts) - 2
        assert response.status_code == (201 if last else 200), response.text
        assert response.json()["complete"] is last
        if not last:
            status = await upload_status(http, image_id)
            assert status["offset"] == end
            assert status["total_bytes"] == total
            assert status["upload_in_progress"] is True
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["md5_hash"] == PAYLOAD_MD5
    assert record["md5_verified"] is True
    events = (await http.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    actions = [event["action"] for event in reversed(events)]
    assert actions == ["image_created", "upload_started", "upload_resumed", "upload_resumed", "upload_completed"]


async def test_content_range_wrong_start(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    response = await http.put(
        f"{BASE}/{image_id}/file/", content=PAYLOAD[100:200],
        headers={"Content-Range": f"bytes 100-199/{len(PAYLOAD)}"},
    )
    assert response.status_code == 409
    assert "continues at byte 0" in response.json()["detail"]


@pytest.mark.parametrize(
    "header", ["bytes 0-99", "bytes=0-99/100", "bytes 50-10/100", "bytes 0-100/100", "items 0-1/2"]
)
async def test_content_range_invalid(http, header: str) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    response = await http.put(f"{BASE}/{image_id}/file/", content=b"x" * 100, headers={"Content-Range": header})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Content-Range"]


async def test_resume_after_cut_connection(live_server, acme_key, http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, md5_hash=PAYLOAD_MD5)
    sent = 700_000
    head = (
        f"PUT {BASE}/{image_id}/file/ HTTP/1.1\nHost: test\nAuthorization: {acme_key}\n"
        f"Content-Type: application/octet-stream\nContent-Length: {len(PAYLOAD)}\n"
    )
    await raw_request(live_server, head, PAYLOAD[:sent], read=False)

    status = None
    for _ in range(200):
        status = await upload_status(http, image_id)
        if status["offset"] == sent and not await _lease_held(image_id):
            break
        await asyncio.sleep(0.02)
    assert status is not None
    assert status["offset"] == sent
    assert status["complete"] is False
    assert status["upload_in_progress"] is True

    response = await http.put(
        f"{BASE}/{image_id}/file/", content=PAYLOAD[sent:],
        headers={"Content-Range": f"bytes {sent}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"},
    )
    assert response.status_code == 201, response.text
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["md5_hash"] == PAYLOAD_MD5
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == PAYLOAD
    events = (await http.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    assert "upload_interrupted" in [event["action"] for event in events]


async def _lease_held(image_id: str) -> bool:
    image = await OsImage.get(PydanticObjectId(image_id))
    return image is not None and image.upload_lease_until is not None


async def test_resume_rehashes_after_restart(http, settings) -> None:  # type: ignore[no-untyped-def]
    from app.services import uploads

    image_id = await new_image(http, md5_hash=PAYLOAD_MD5)
    half = len(PAYLOAD) // 2
    headers = {"Content-Range": f"bytes 0-{half - 1}/{len(PAYLOAD)}"}
    assert (await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD[:half], headers=headers)).status_code == 200
    uploads._HASH_STATES.clear()  # as after a restart, or with the next piece on another process
    headers = {"Content-Range": f"bytes {half}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"}
    response = await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD[half:], headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["sha256_hash"] == PAYLOAD_SHA256


async def test_stalled_upload_times_out(live_server, acme_key, http, settings) -> None:  # type: ignore[no-untyped-def]
    settings.upload_idle_timeout_s = 0.3
    image_id = await new_image(http)
    head = (
        f"PUT {BASE}/{image_id}/file/ HTTP/1.1\nHost: test\nAuthorization: {acme_key}\n"
        f"Content-Length: {len(PAYLOAD)}\n"
    )
    response = await raw_request(live_server, head, PAYLOAD[:1000])
    assert response.startswith(b"HTTP/1.1 408")
    status = await upload_status(http, image_id)
    assert status["offset"] == 1000


async def test_multipart_upload(http, settings) -> None:  # type: ignore[no-untyped-def]
    response = await http.post(f"{BASE}/", json={"img_id": "mp", "organization": "acme"})
    image_id = response.json()["id"]
    files = {"file": ("EOS 4.30 Räume.swi", PAYLOAD, "application/octet-stream")}
    response = await http.put(f"{BASE}/{image_id}/file/", files=files, data={"note": "ignored"})
    assert response.status_code == 201, response.text
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["file_name"] == "EOS 4.30 Räume.swi"
    assert record["md5_hash"] == PAYLOAD_MD5
    assert (settings.storage_dir / "objects" / record["image_id"]).read_bytes() == PAYLOAD
    assert partial_files(settings) == []


@pytest.mark.parametrize(
    ("part_name", "reason"),
    [
        ("../../etc/image.bin", "base name"),
        ("image.exe", "not allowed"),
        ("image", "not allowed"),
        ("..", "'..'"),
    ],
)
async def test_multipart_bad_file_name(http, settings, part_name: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    response = await http.post(f"{BASE}/", json={"img_id": "mp", "organization": "acme"})
    image_id = response.json()["id"]
    response = await http.put(f"{BASE}/{image_id}/file/", files={"file": (part_name, b"data")})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"][-1] == "file_name"
    assert reason in error["msg"]
    assert list((settings.storage_dir / "objects").iterdir()) == []


async def test_multipart_two_files_fails_cleanly(http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    # The first part is large, so the second arrives after the upload has started writing.
    files = [("file", ("a.bin", os.urandom(3_000_000))), ("file", ("b.bin", b"b" * 1000))]
    response = await http.put(f"{BASE}/{image_id}/file/", files=files)
    assert response.status_code == 422
    assert "exactly one file part" in response.json()["detail"][0]["msg"]
    assert partial_files(settings) == []
    events = (await http.get(f"{BASE}/os-job-audit/", params={"image_id": image_id})).json()
    assert [event["action"] for event in events][:2] == ["upload_failed", "upload_started"]
    status = await upload_status(http, image_id)
    assert status["upload_in_progress"] is False


async def test_multipart_without_file_part(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    body = b'--XyZ\r\nContent-Disposition: form-data; name="only"\r\n\r\na field\r\n--XyZ--\r\n'
    headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    response = await http.put(f"{BASE}/{image_id}/file/", content=body, headers=headers)
    assert response.status_code == 422
    assert "no file part" in response.json()["detail"][0]["msg"]


async def test_upload_blocked_by_download(http, source) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, file_path=source.url("/image.bin"))
    assert (await http.post(f"{BASE}/trigger-osdownload/", json={"id": image_id})).status_code == 202
    response = await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD)
    assert response.status_code == 409
    assert "download" in response.json()["detail"]


async def test_upload_status_by_img_id(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    response = await http.post(f"{BASE}/file-upload-status/", json={"img_id": "upload"})
    assert response.status_code == 200
    assert response.json()["id"] == image_id
    assert response.json()["complete"] is False
    assert response.json()["offset"] == 0
    missing = await http.post(f"{BASE}/file-upload-status/", json={"img_id": "nope"})
    assert missing.status_code == 404
    empty = await http.post(f"{BASE}/file-upload-status/", json={})
    assert empty.status_code == 422


async def stored_image(http: httpx.AsyncClient, file_name: str = "image.bin") -> str:
    image_id = await new_image(http, file_name=file_name)
    assert (await http.put(f"{BASE}/{image_id}/file/", content=PAYLOAD)).status_code == 201
    return image_id


async def test_get_file_with_headers(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http, "Räume v1.bin")
    response = await http.get(f"{BASE}/{image_id}/file/")
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["Content-Length"] == str(len(PAYLOAD))
    assert response.headers["ETag"] == f'"{PAYLOAD_SHA256}"'
    sha256_b64 = base64.b64encode(bytes.fromhex(PAYLOAD_SHA256)).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{sha256_b64}:"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "filename*=utf-8''R%C3%A4ume%20v1.bin" in response.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-99", 0, 100), ("bytes=1000-", 1000, len(PAYLOAD)), ("bytes=-500", len(PAYLOAD) - 500, len(PAYLOAD))],
)
async def test_get_file_range(http, range_header: str, start: int, end: int) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http)
    response = await http.get(f"{BASE}/{image_id}/file/", headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == PAYLOAD[start:end]
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(PAYLOAD)}"


async def test_get_file_bad_range(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http)
    response = await http.get(f"{BASE}/{image_id}/file/", headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"


async def test_get_file_if_none_match(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http)
    response = await http.get(f"{BASE}/{image_id}/file/", headers={"If-None-Match": f'"{PAYLOAD_SHA256}"'})
    assert response.status_code == 304
    assert response.content == b""
    other = await http.get(f"{BASE}/{image_id}/file/", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


async def test_head_file(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http)
    response = await http.head(f"{BASE}/{image_id}/file/")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(PAYLOAD))
    assert response.content == b""


async def test_get_file_not_available(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    response = await http.get(f"{BASE}/{image_id}/file/")
    assert response.status_code == 404
    assert "no verified file" in response.json()["detail"]


async def test_serving_audited_once_per_fetch(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await stored_image(http)
    await http.get(f"{BASE}/{image_id}/file/", headers={"Range": "bytes=0-999"})
    await http.get(f"{BASE}/{image_id}/file/", headers={"Range": "bytes=1000-1999"})
    await http.get(f"{BASE}/{image_id}/file/")
    served = (await http.get(f"{BASE}/os-job-audit/", params={"action": "file_served"})).json()
    assert len(served) == 2
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["served_count"] == 3
    assert record["served_bytes"] == 2000 + len(PAYLOAD)


async def test_receive_single_record(http) -> None:  # type: ignore[no-untyped-def]
    body = {"img_id": "pushed", "organization": "acme", "vendor": "Juniper", "file_name": "junos.tgz"}
    response = await http.post(f"{BASE}/os-img-recve/", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(result["created"]) == 1
    assert result["records"][0]["uploaded_type"] == 3

    again = (await http.post(f"{BASE}/os-img-recve/", json=body)).json()
    assert again["unchanged"] == result["created"]
    assert again["created"] == []

    changed = (await http.post(f"{BASE}/os-img-recve/", json={**body, "vendor": "Juniper Networks"})).json()
    assert changed["updated"] == result["created"]
    listed = (await http.get(f"{BASE}/", params={"img_id": "pushed"})).json()
    assert [item["vendor"] for item in listed] == ["Juniper Networks"]


async def test_receive_list_is_all_or_nothing(http) -> None:  # type: ignore[no-untyped-def]
    records = [
        {"img_id": "good", "organization": "acme"},
        {"img_id": "x" * 26, "organization": "acme"},
    ]
    response = await http.post(f"{BASE}/os-img-recve/", json=records)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-2:] == [1, "img_id"]
    assert (await http.get(f"{BASE}/")).json() == []


async def test_receive_bad_file_type_names_index(http) -> None:  # type: ignore[no-untyped-def]
    records = [
        {"img_id": "a", "organization": "acme", "file_name": "a.bin"},
        {"img_id": "b", "organization": "acme", "file_name": "b.exe"},
    ]
    response = await http.post(f"{BASE}/os-img-recve/", json=records)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1, "file_name"]
    assert (await http.get(f"{BASE}/")).json() == []


async def test_receive_duplicate_img_id(http) -> None:  # type: ignore[no-untyped-def]
    records = [{"img_id": "a", "organization": "acme"}, {"img_id": "a", "organization": "acme"}]
    response = await http.post(f"{BASE}/os-img-recve/", json=records)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1, "img_id"]


async def test_receive_other_organization(http) -> None:  # type: ignore[no-untyped-def]
    records = [{"img_id": "a", "organization": "acme"}, {"img_id": "b", "organization": "globex"}]
    response = await http.post(f"{BASE}/os-img-recve/", json=records)
    assert response.status_code == 403
    assert (await http.get(f"{BASE}/")).json() == []


async def test_undeclared_file_can_be_replaced(http, settings) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http)
    assert (await http.put(f"{BASE}/{image_id}/file", content=PAYLOAD)).status_code == 201
    other = os.urandom(1000)
    response = await http.put(f"{BASE}/{image_id}/file", content=other)
    assert response.status_code == 201, response.text
    record = (await http.get(f"{BASE}/{image_id}/")).json()
    assert record["md5_hash"] == hashlib.md5(other).hexdigest()
    assert record["md5_verified"] is False
    assert [path.name for path in (settings.storage_dir / "objects").iterdir()] == [record["image_id"]]


async def test_declared_file_replaced_after_clearing(http) -> None:  # type: ignore[no-untyped-def]
    image_id = await new_image(http, md5_hash=PAYLOAD_MD5)
    assert (await http.put(f"{BASE}/{image_id}/file", content=PAYLOAD)).status_code == 201
    other = os.urandom(1000)
    other_md5 = hashlib.md5(other).hexdigest()

    conflict = await http.patch(f"{BASE}/{image_id}/", json={"md5_hash": other_md5})
    assert conflict.status_code == 409
    assert '"md5_hash": null' in conflict.json()["detail"]
    assert (await http.put(f"{BASE}/{image_id}/file", content=other)).status_code == 422

    cleared = await http.patch(f"{BASE}/{image_id}/", json={"md5_hash": None})
    assert cleared.status_code == 200
    assert cleared.json()["md5_hash"] == PAYLOAD_MD5  # still the stored file's MD5
    assert cleared.json()["md5_verified"] is False
    response = await http.put(f"{BASE}/{image_id}/file", content=other)
    assert response.status_code == 201, response.text
    assert response.json()["md5_hash"] == other_md5

    declared = await http.patch(f"{BASE}/{image_id}/", json={"md5_hash": other_md5})
    assert declared.status_code == 200
    assert declared.json()["md5_verified"] is True
