"""Examples and read-only markers that the request and response schemas add to the OpenAPI document.

Swagger UI and ReDoc show the examples as sample bodies, and leave read-only fields out of
request samples. The values describe one Arista image and its download, so the samples of
different endpoints fit together.
"""

from collections.abc import Callable, Collection
from typing import Any, Literal

IMAGE_RECORD_ID = "665f1c2e8b3a4d2f9c0e1a2b"
JOB_ID = "665f1c9a8b3a4d2f9c0e1a2c"
STORED_FILE_ID = "665f1d408b3a4d2f9c0e1a2d"
API_KEY_ID = "665f1b0f8b3a4d2f9c0e1a29"
MD5 = "9e107d9d372bb6826bd81d3542a419d6"
SHA256 = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
SIZE_BYTES = 1_073_741_824

IMAGE_WRITE = {
    "img_id": "eos-4.30",
    "organization": "acme",
    "vendor": "Arista",
    "description": "EOS 4.30.1F for the 7050X3 series",
    "ostype": "EOS",
    "series": "7050X3",
    "model": "DCS-7050SX3-48YC8",
    "os_version": "4.30.1F",
    "image_type": "swi",
    "min_dram": 8192,
    "min_flash": 4096,
    "md5_hash": MD5,
    "file_name": "EOS-4.30.1F.swi",
    "file_path": "https://downloads.example.net/eos/EOS-4.30.1F.swi",
    "uploaded_by": "netops",
    "uploaded_type": 2,
    "is_checked": False,
}

IMAGE_PATCH = {"description": "EOS 4.30.1F, approved for production", "is_checked": True}

IMAGE_PUBLIC = {
    "id": IMAGE_RECORD_ID,
    "last_update_time": "2026-01-31T16:02:56.596Z",
    "image_id": STORED_FILE_ID,
    "download_status_obj": JOB_ID,
    "uploader_profile": API_KEY_ID,
    **IMAGE_WRITE,
    "image_size": str(SIZE_BYTES),
    "creation_time": "2026-01-31T15:58:02.118Z",
    "modified_time": "2026-01-31T15:58:02.118Z",
    "uploader_id": "2",
    "is_deleted": False,
    "job_iteration_id": "1",
    "job_id": JOB_ID,
    "sha256_hash": SHA256,
    "file_status": "available",
    "md5_verified": True,
}

IMAGE_SUMMARY = {
    "id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "vendor": "Arista",
    "ostype": "EOS",
    "model": "DCS-7050SX3-48YC8",
    "os_version": "4.30.1F",
    "file_name": "EOS-4.30.1F.swi",
    "file_status": "available",
}

JOB_STATUS = {
    "job_id": JOB_ID,
    "image_record_id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "state": "running",
    "attempt": 1,
    "max_attempts": 5,
    "bytes_done": 536_870_912,
    "bytes_total": SIZE_BYTES,
    "percent": 50.0,
    "rate_bytes_per_s": 41_943_040.0,
    "md5_hash": None,
    "sha256_hash": None,
    "error_code": None,
    "error_message": None,
    "source_url": "https://downloads.example.net/eos/EOS-4.30.1F.swi",
    "created_time": "2026-01-31T16:00:00.000Z",
    "started_time": "2026-01-31T16:00:00.412Z",
    "finished_time": None,
    "updated_time": "2026-01-31T16:00:13.201Z",
    "next_attempt_time": None,
}

QUEUED_JOB_STATUS = {
    **JOB_STATUS,
    "state": "queued",
    "attempt": 0,
    "bytes_done": 0,
    "bytes_total": None,
    "percent": None,
    "rate_bytes_per_s": None,
    "started_time": None,
    "updated_time": "2026-01-31T16:00:00.000Z",
}

AUDIT_ENTRY = {
    "id": "665f1e118b3a4d2f9c0e1a2e",
    "time": "2026-01-31T16:02:56.596Z",
    "action": "download_succeeded",
    "actor": "worker",
    "image_record_id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "job_id": JOB_ID,
    "message": f"{SIZE_BYTES} bytes stored, MD5 {MD5} matches the declared value",
    "details": {"size_bytes": SIZE_BYTES, "md5": MD5, "sha256": SHA256, "seconds": 176.4},
}

DOWNLOAD_OPTIONS = {
    "protocols": ["http", "https"],
    "hash_algorithms": ["md5", "sha256"],
    "max_attempts": 5,
    "retry_base_delay_s": 2.0,
    "retry_max_delay_s": 300.0,
    "connect_timeout_s": 10.0,
    "read_timeout_s": 60.0,
    "max_redirects": 5,
    "max_image_size_bytes": 17_179_869_184,
    "allowed_file_types": [".bin", ".swi", ".tgz", ".out"],
    "job_states": ["queued", "running", "succeeded", "failed", "cancelled"],
    "vendors": ["Arista", "Cisco"],
    "ostypes": ["EOS", "IOS-XE"],
}

SchemaUpdate = Callable[[dict[str, Any]], None]


def schema_extra(
    *examples: dict[str, Any], read_only: Collection[str] | Literal["all"] = ()
) -> SchemaUpdate:
    """Return a `json_schema_extra` function that adds `examples` and marks fields readOnly.

    `read_only="all"` marks every field, for schemas that only responses use and whose values
    the server alone sets.
    """

    def update(schema: dict[str, Any]) -> None:
        properties = schema.get("properties", {})
        names = properties if read_only == "all" else read_only
        for name in names:
            properties[name]["readOnly"] = True
        if examples:
            schema["examples"] = list(examples)

    return update
