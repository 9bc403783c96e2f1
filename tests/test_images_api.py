"""The image catalog endpoints: create, read, list, change, delete, and their validation."""

import httpx
import pytest

BASE = "/ux/nccm/os-image"


def image_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "img_id": "c9300-17.9.4",
        "organization": "acme",
        "vendor": "Cisco",
        "ostype": "IOS-XE",
        "model": "C9300",
        "os_version": "17.9.4",
        "file_name": "cat9k_iosxe.17.09.04.SPA.bin",
        "file_path": "http://127.0.0.1:9/cat9k_iosxe.17.09.04.SPA.bin",
        "min_dram": 8192,
        "min_flash": 16384,
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, **overrides: object) -> dict[str, object]:
    response = await client.post(f"{BASE}/", json=image_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_record(acme: httpx.AsyncClient) -> None:
    record = await create(acme, md5_hash="D41D8CD98F00B204E9800998ECF8427E")
    assert len(record["id"]) == 24
    assert record["img_id"] == "c9300-17.9.4"
    assert record["md5_hash"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert record["uploader_id"] == "2"
    assert record["file_status"] == "none"
    assert record["is_deleted"] is False
    assert record["creation_time"].endswith("Z")
    assert record["uploader_profile"] is not None


async def test_create_ignores_server_fields(acme: httpx.AsyncClient) -> None:
    record = await create(
        acme, is_deleted=True, image_id="forged", sha256_hash="0" * 64, job_id="x",
        download_status_obj="y", file_status="available", md5_verified=True,
    )
    assert record["is_deleted"] is False
    assert record["image_id"] is None
    assert record["sha256_hash"] is None
    assert record["job_id"] is None
    assert record["download_status_obj"] is None
    assert record["file_status"] == "none"
    assert record["md5_verified"] is False


async def test_create_rejects_unknown_field(acme: httpx.AsyncClient) -> None:
    response = await acme.post(f"{BASE}/", json=image_body(md5hash="d41d8cd98f00b204e9800998ecf8427e"))
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "md5hash"]
    assert error["type"] == "extra_forbidden"


async def test_record_round_trips_through_put(acme: httpx.AsyncClient) -> None:
    record = await create(acme)
    response = await acme.put(f"{BASE}/{record['id']}/", json={**record, "description": "changed"})
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "changed"


async def test_naive_time_is_utc(acme: httpx.AsyncClient) -> None:
    record = await create(acme, creation_time="2025-08-31T16:02:56.596")
    assert record["creation_time"] == "2025-08-31T16:02:56.596Z"
    record = await create(acme, img_id="other", creation_time="2025-08-31T18:02:56.596+02:00")
    assert record["creation_time"] == "2025-08-31T16:02:56.596Z"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("img_id", "x" * 26, "at most 25"),
        ("img_id", "", "at least 1"),
        ("organization", "a" * 26, "at most 25"),
        ("min_dram", -1, "greater than or equal to 0"),
        ("min_flash", "lots", "valid integer"),
        ("md5_hash", "abc", "32 hexadecimal"),
        ("md5_hash", "a" * 64, "SHA-256"),
        ("md5_hash", "g" * 32, "only 0-9 and a-f"),
        ("file_name", "dir/image.bin", "base name"),
        ("file_name", "..\\image.bin", "base name"),
        ("file_name", "image\x00.bin", "control character"),
        ("file_name", "..", "'..'"),
        ("file_name", "a..b.bin", "'..'"),
        ("file_path", "ftp://example.net/image.bin", "http://"),
        ("file_path", "not a url", "spaces"),
        ("file_path", "http:///image.bin", "no host"),
        ("creation_time", "yesterday", "RFC 3339"),
        ("creation_time", "0001-01-01T05:41:23.0+11:45", "out of range"),
        ("uploaded_type", 7, "less than or equal to 3"),
        ("image_size", "12 MB", "pattern"),
    ],
)
async def test_create_rejects_invalid_field(
    acme: httpx.AsyncClient, field: str, value: object, reason: str
) -> None:
    response = await acme.post(f"{BASE}/", json=image_body(**{field: value}))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == field for error in errors), errors
    assert any(reason in error["msg"] for error in errors), errors
    assert not any(error["msg"].startswith("Value error") for error in errors), errors
    listed = await acme.get(f"{BASE}/")
    assert listed.json() == []


async def test_create_requires_img_id(acme: httpx.AsyncClient) -> None:
    body = image_body()
    del body["img_id"]
    response = await acme.post(f"{BASE}/", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "img_id"]


async def test_create_rejects_file_type(acme: httpx.AsyncClient) -> None:
    response = await acme.post(f"{BASE}/", json=image_body(file_name="notes.exe"))
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "file_name"]
    assert "'.exe'" in error["msg"]
    assert ".bin" in error["msg"]


async def test_file_type_is_case_insensitive(acme: httpx.AsyncClient) -> None:
    record = await create(acme, file_name="EOS-4.30.1F.SWI")
    assert record["file_name"] == "EOS-4.30.1F.SWI"


async def test_file_name_keeps_spaces_and_unicode(acme: httpx.AsyncClient) -> None:
    record = await create(acme, file_name="Räume und Zeit v2.bin")
    assert record["file_name"] == "Räume und Zeit v2.bin"


async def test_duplicate_img_id_conflicts(acme: httpx.AsyncClient) -> None:
    first = await create(acme)
    response = await acme.post(f"{BASE}/", json=image_body())
    assert response.status_code == 409
    assert response.json()["field"] == "img_id"

    assert (await acme.delete(f"{BASE}/{first['id']}/")).status_code == 204
    again = await create(acme)
    assert again["id"] != first["id"]


async def test_organization_mismatch_forbidden(acme: httpx.AsyncClient) -> None:
    response = await acme.post(f"{BASE}/", json=image_body(organization="globex"))
    assert response.status_code == 403
    assert "'globex'" in response.json()["detail"]
    assert "'acme'" in response.json()["detail"]


async def test_missing_key_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/")
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]


async def test_unknown_key_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/", headers={"Authorization": "osi_not-a-key"})
    assert response.status_code == 401


async def test_bearer_key_accepted(client: httpx.AsyncClient, acme_key: str) -> None:
    response = await client.get(f"{BASE}/", headers={"Authorization": f"Bearer {acme_key}"})
    assert response.status_code == 200


async def test_revoked_key_unauthorized(client: httpx.AsyncClient, app: object) -> None:
    from app.auth import create_api_key, revoke_api_key

    record, key = await create_api_key("acme", "short-lived")
    await revoke_api_key(str(record.id))
    response = await client.get(f"{BASE}/", headers={"Authorization": key})
    assert response.status_code == 401


async def test_other_organization_sees_nothing(
    acme: httpx.AsyncClient, other_key: str
) -> None:
    record = await create(acme)
    other = {"Authorization": other_key}
    assert (await acme.get(f"{BASE}/{record['id']}/", headers=other)).status_code == 404
    assert (await acme.get(f"{BASE}/", headers=other)).json() == []
    body = image_body(organization="other")
    assert (await acme.put(f"{BASE}/{record['id']}/", json=body, headers=other)).status_code == 404
    assert (await acme.delete(f"{BASE}/{record['id']}/", headers=other)).status_code == 404
    assert (await acme.get(f"{BASE}/{record['id']}/")).status_code == 200


async def test_malformed_id_not_found(acme: httpx.AsyncClient) -> None:
    for bad in ("123", "zzzzzzzzzzzzzzzzzzzzzzzz", "6b131b27d48c102a763756eb"):
        assert (await acme.get(f"{BASE}/{bad}/")).status_code == 404


async def test_list_pages_and_sorts(acme: httpx.AsyncClient) -> None:
    for index, vendor in enumerate(["Cisco", "Arista", "Juniper", "Arista", "Fortinet"]):
        await create(acme, img_id=f"img-{index}", vendor=vendor)

    response = await acme.get(f"{BASE}/", params={"page": 1, "items_per_page": 2, "sort": "vendor"})
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "5"
    assert [item["vendor"] for item in response.json()] == ["Arista", "Arista"]
    arista_ids = [item["img_id"] for item in response.json()]
    assert arista_ids == ["img-1", "img-3"]

    response = await acme.get(f"{BASE}/", params={"page": 3, "items_per_page": 2, "sort": "vendor"})
    assert [item["vendor"] for item in response.json()] == ["Juniper"]

    response = await acme.get(f"{BASE}/", params={"items_per_page": 10, "sort": "vendor", "reverse": True})
    assert [item["vendor"] for item in response.json()] == ["Juniper", "Fortinet", "Cisco", "Arista", "Arista"]
    assert [item["img_id"] for item in response.json()][-2:] == ["img-3", "img-1"]


async def test_list_filters_and_search(acme: httpx.AsyncClient) -> None:
    await create(acme, img_id="eos", vendor="Arista", description="Spine release")
    await create(acme, img_id="junos", vendor="Juniper", description="Edge")

    response = await acme.get(f"{BASE}/", params={"vendor": "Arista"})
    assert [item["img_id"] for item in response.json()] == ["eos"]
    response = await acme.get(f"{BASE}/", params={"search": "SPINE"})
    assert [item["img_id"] for item in response.json()] == ["eos"]
    response = await acme.get(f"{BASE}/", params={"search": "(.*"})
    assert response.json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "password"}, "sort"),
        ({"items_per_page": 501}, "items_per_page"),
        ({"items_per_page": 0}, "items_per_page"),
        ({"page": 0}, "page"),
        ({"reverse": "sideways"}, "reverse"),
    ],
)
async def test_list_rejects_bad_query(acme: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await acme.get(f"{BASE}/", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


async def test_put_replaces_client_fields(acme: httpx.AsyncClient) -> None:
    record = await create(acme, description="old")
    body = image_body(img_id="renamed", vendor="Cisco Systems")
    response = await acme.put(f"{BASE}/{record['id']}/", json=body)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["img_id"] == "renamed"
    assert changed["vendor"] == "Cisco Systems"
    assert changed["description"] is None
    assert changed["creation_time"] == record["creation_time"]


async def test_patch_changes_given_fields(acme: httpx.AsyncClient) -> None:
    record = await create(acme, description="old")
    response = await acme.patch(f"{BASE}/{record['id']}/", json={"description": "new", "min_dram": None})
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "new"
    assert response.json()["min_dram"] is None
    assert response.json()["vendor"] == "Cisco"


async def test_put_rename_conflict(acme: httpx.AsyncClient) -> None:
    await create(acme, img_id="first")
    second = await create(acme, img_id="second")
    response = await acme.put(f"{BASE}/{second['id']}/", json=image_body(img_id="first"))
    assert response.status_code == 409


async def test_path_without_trailing_slash(acme: httpx.AsyncClient) -> None:
    response = await acme.post(BASE, json=image_body())
    assert response.status_code == 201
    record_id = response.json()["id"]
    assert (await acme.get(f"{BASE}/{record_id}")).status_code == 200
    assert (await acme.get(f"{BASE}/get-allowed-file-types")).status_code == 200


async def test_delete_is_soft(acme: httpx.AsyncClient) -> None:
    record = await create(acme)
    assert (await acme.delete(f"{BASE}/{record['id']}/")).status_code == 204
    assert (await acme.get(f"{BASE}/{record['id']}/")).status_code == 404
    assert (await acme.get(f"{BASE}/")).json() == []
    assert (await acme.delete(f"{BASE}/{record['id']}/")).status_code == 404

    from app.models.documents import OsImage
    from beanie import PydanticObjectId

    stored = await OsImage.get(PydanticObjectId(record["id"]))
    assert stored is not None and stored.is_deleted

    audit = (await acme.get(f"{BASE}/os-job-audit/", params={"image_id": record["id"]})).json()
    assert [event["action"] for event in audit] == ["image_deleted", "image_created"]


async def test_multidelete_reports_each(acme: httpx.AsyncClient, other_key: str) -> None:
    first = await create(acme, img_id="one")
    second = await create(acme, img_id="two")
    foreign = (await acme.post(
        f"{BASE}/", json=image_body(organization="other"), headers={"Authorization": other_key}
    )).json()
    response = await acme.post(
        f"{BASE}/multidelete/", json={"ids": [first["id"], "bogus", second["id"], foreign["id"]]}
    )
    assert response.status_code == 200
    assert response.json() == {"deleted": [first["id"], second["id"]], "not_found": ["bogus", foreign["id"]]}
    assert (await acme.get(f"{BASE}/")).json() == []


async def test_multidelete_needs_ids(acme: httpx.AsyncClient) -> None:
    response = await acme.post(f"{BASE}/multidelete/", json={"ids": []})
    assert response.status_code == 422


async def test_allowed_file_types(acme: httpx.AsyncClient) -> None:
    response = await acme.get(f"{BASE}/get-allowed-file-types/")
    assert response.status_code == 200
    types = response.json()["allowed_file_types"]
    for suffix in (".bin", ".swi", ".tgz"):
        assert suffix in types


async def test_options_lists_vendors(acme: httpx.AsyncClient) -> None:
    await create(acme, img_id="a", vendor="Cisco", ostype="IOS-XE")
    await create(acme, img_id="b", vendor="Arista", ostype="EOS")
    options = (await acme.get(f"{BASE}/options/")).json()
    assert options["vendors"] == ["Arista", "Cisco"]
    assert options["ostypes"] == ["EOS", "IOS-XE"]
    assert options["hash_algorithms"] == ["md5", "sha256"]
    assert options["max_attempts"] == 3


async def test_image_objs_lists_live_images(acme: httpx.AsyncClient) -> None:
    keep = await create(acme, img_id="keep")
    gone = await create(acme, img_id="gone")
    await acme.delete(f"{BASE}/{gone['id']}/")
    objs = (await acme.get(f"{BASE}/os-images-objs/")).json()
    assert [obj["id"] for obj in objs] == [keep["id"]]
    assert objs[0]["img_id"] == "keep"
