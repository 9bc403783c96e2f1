"""Examples and read-only markers that the request and response schemas add to the OpenAPI document.

Swagger UI and ReDoc show the examples as sample bodies, and leave read-only fields out of
request samples. The values describe one Arista image, its download, its file and a weekly
schedule of it, plus a Cisco image that another service pushes, so the samples of different
endpoints fit together.

NOTE: FastAPI 0.165 leaves out every null value of an example when it builds the OpenAPI
document (get_openapi encodes it with exclude_none=True), so the published examples lack the
fields whose value here is None.
"""

import base64
from collections.abc import Callable, Collection
from typing import Any, Literal

IMAGE_RECORD_ID = "665f1c2e8b3a4d2f9c0e1a2b"
JOB_ID = "665f1c9a8b3a4d2f9c0e1a2c"
STORED_FILE_ID = "665f1d408b3a4d2f9c0e1a2d"
API_KEY_ID = "665f1b0f8b3a4d2f9c0e1a29"
MD5 = "9e107d9d372bb6826bd81d3542a419d6"
SHA256 = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
SIZE_BYTES = 1_073_741_824
SCHEDULE_ID = "665f1f7c8b3a4d2f9c0e1a31"
SCHEDULED_JOB_ID = "665f20b48b3a4d2f9c0e1a32"
CISCO_RECORD_ID = "665f21d08b3a4d2f9c0e1a33"

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
    "served_count": 2,
    "served_bytes": 2 * SIZE_BYTES,
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
    "enqueued": True,
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

# The running download of JOB_STATUS, as cancel-osdownload returns it.
CANCELLED_JOB_STATUS = {
    **JOB_STATUS,
    "state": "cancelled",
    "error_code": "cancelled",
    "error_message": "cancelled on request",
    "finished_time": "2026-01-31T16:00:14.052Z",
    "updated_time": "2026-01-31T16:00:14.052Z",
}

AUDIT_ENTRY = {
    "id": "665f1e118b3a4d2f9c0e1a2e",
    "time": "2026-01-31T16:02:56.596Z",
    "action": "download_succeeded",
    "actor": "worker",
    "image_record_id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "job_id": JOB_ID,
    "schedule_id": None,
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

# An image record that another service pushes to os-img-recve. The service creates it, because
# no live record of the organization has its img_id.
CISCO_IMAGE_WRITE = {
    "img_id": "iosxe-17.9",
    "organization": "acme",
    "vendor": "Cisco",
    "description": "IOS XE 17.9.4a for the Catalyst 9300 series",
    "ostype": "IOS-XE",
    "series": "Catalyst 9300",
    "model": "C9300-48P",
    "os_version": "17.9.4a",
    "image_type": "bin",
    "min_dram": 8192,
    "min_flash": 16384,
    "md5_hash": "63f1dae5fa62b78119dd64b87c5fb29d",
    "file_name": "cat9k_iosxe.17.09.04a.SPA.bin",
    "file_path": "https://downloads.example.net/iosxe/cat9k_iosxe.17.09.04a.SPA.bin",
    "uploaded_by": "inventory-sync",
    "uploaded_type": 3,
    "is_checked": False,
}

CISCO_IMAGE_PUBLIC = {
    "id": CISCO_RECORD_ID,
    "last_update_time": "2026-02-02T08:15:41.027Z",
    "image_id": None,
    "download_status_obj": None,
    "uploader_profile": API_KEY_ID,
    **CISCO_IMAGE_WRITE,
    "image_size": None,
    "creation_time": "2026-02-02T08:15:41.027Z",
    "modified_time": "2026-02-02T08:15:41.027Z",
    "uploader_id": "2",
    "is_deleted": False,
    "job_iteration_id": None,
    "job_id": None,
    "sha256_hash": None,
    "file_status": "none",
    "md5_verified": False,
    "served_count": 0,
    "served_bytes": 0,
}

# The push of both records: the Arista one equals the stored record, the Cisco one is new.
RECEIVE_RESULT = {
    "created": [CISCO_RECORD_ID],
    "updated": [],
    "unchanged": [IMAGE_RECORD_ID],
    "records": [IMAGE_PUBLIC, CISCO_IMAGE_PUBLIC],
}

# An upload of the Arista file that stopped halfway. The next piece starts at `offset`.
UPLOAD_STATUS_PARTIAL = {
    "id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "file_status": "uploading",
    "upload_in_progress": True,
    "bytes_received": 536_870_912,
    "offset": 536_870_912,
    "total_bytes": SIZE_BYTES,
    "complete": False,
    "md5_hash": None,
    "sha256_hash": None,
    "md5_verified": False,
    "started_time": "2026-01-31T15:58:40.315Z",
}

UPLOAD_STATUS_COMPLETE = {
    "id": IMAGE_RECORD_ID,
    "img_id": "eos-4.30",
    "file_status": "available",
    "upload_in_progress": False,
    "bytes_received": SIZE_BYTES,
    "offset": 0,
    "total_bytes": SIZE_BYTES,
    "complete": True,
    "md5_hash": MD5,
    "sha256_hash": SHA256,
    "md5_verified": True,
    "started_time": None,
}

# A .swi image is a ZIP archive, so its file starts with the ZIP local file header signature.
# The file examples show these bytes, because a whole image does not fit in a sample.
SWI_LEADING_BYTES = "PK\u0003\u0004"
SHA256_BASE64 = base64.b64encode(bytes.fromhex(SHA256)).decode()
FILE_HEADERS = {
    "ETag": f'"{SHA256}"',
    "Repr-Digest": f"sha-256=:{SHA256_BASE64}:",
    "Digest": f"SHA-256={SHA256_BASE64}",
    "X-Image-MD5": MD5,
    "Content-Disposition": 'attachment; filename="EOS-4.30.1F.swi"',
}
# The response to `Range: bytes=0-3`.
FILE_RANGE_HEADERS = {**FILE_HEADERS, "Content-Range": f"bytes 0-3/{SIZE_BYTES}"}

# A weekly schedule that downloads the Arista image every Sunday at 02:30 in Berlin.
SCHEDULE_SAVE = {
    "organization": "acme",
    "name": "EOS weekly refresh",
    "description": "Download EOS 4.30.1F again every Sunday night, before the 04:00 change window",
    "image_ids": [IMAGE_RECORD_ID],
    "frequency": "weekly",
    "start_time": "2026-02-01T02:30",
    "time_zone": "Europe/Berlin",
    "weekdays": ["sun"],
    "enabled": True,
}

# A change of that schedule: it runs on Wednesdays too, and keeps every field left out.
SCHEDULE_CHANGE = {"id": SCHEDULE_ID, "weekdays": ["wed", "sun"]}

# The schedule after its first run, which queued a new download of the image.
SCHEDULE_PUBLIC = {
    "id": SCHEDULE_ID,
    "organization": "acme",
    "name": SCHEDULE_SAVE["name"],
    "description": SCHEDULE_SAVE["description"],
    "image_ids": [IMAGE_RECORD_ID],
    "frequency": "weekly",
    "time_zone": "Europe/Berlin",
    "start_time": "2026-02-01T01:30:00.000Z",
    "start_local_time": "2026-02-01T02:30:00",
    "end_time": None,
    "end_local_time": None,
    "weekdays": ["sun"],
    "day_of_month": None,
    "cron_expression": None,
    "enabled": True,
    "status": "scheduled",
    "next_run_time": "2026-02-08T01:30:00.000Z",
    "next_run_local_time": "2026-02-08T02:30:00+01:00",
    "last_run_time": "2026-02-01T01:30:00.000Z",
    "last_runs": [
        {
            "slot_time": "2026-02-01T01:30:00.000Z",
            "dispatch_time": "2026-02-01T01:30:03.871Z",
            "outcome": "queued",
            "job_ids": [SCHEDULED_JOB_ID],
            "jobs": [
                {
                    "image_record_id": IMAGE_RECORD_ID,
                    "img_id": "eos-4.30",
                    "job_id": SCHEDULED_JOB_ID,
                    "reused": False,
                    "state": "succeeded",
                    "error": None,
                }
            ],
            "skipped_slot_count": 0,
        }
    ],
    "created_by": API_KEY_ID,
    "creation_time": "2026-01-31T16:10:27.503Z",
    "modified_time": "2026-01-31T16:10:27.503Z",
    "is_deleted": False,
}

DISABLED_SCHEDULE_PUBLIC = {
    **SCHEDULE_PUBLIC,
    "enabled": False,
    "status": "disabled",
    "next_run_time": None,
    "next_run_local_time": None,
    "modified_time": "2026-02-03T09:41:12.660Z",
}

DELETED_SCHEDULE_PUBLIC = {**DISABLED_SCHEDULE_PUBLIC, "status": "deleted", "is_deleted": True}

# The response of os-schedule-options, with only a few of the IANA time zone names.
SCHEDULE_OPTIONS = {
    "frequencies": [
        {"value": "once", "description": "Once, at start_time.", "fields": []},
        {
            "value": "hourly",
            "description": "Every hour at start_time's minute, from start_time on.",
            "fields": [],
        },
        {"value": "daily", "description": "Every day at start_time's time of day.", "fields": []},
        {
            "value": "weekly",
            "description": (
                "On the given weekdays at start_time's time of day; default: start_time's weekday."
            ),
            "fields": ["weekdays"],
        },
        {
            "value": "monthly",
            "description": (
                "On day_of_month at start_time's time of day; months without that day use their "
                "last day. Default day: start_time's."
            ),
            "fields": ["day_of_month"],
        },
        {
            "value": "cron",
            "description": "At the times cron_expression matches, from start_time on.",
            "fields": ["cron_expression"],
        },
    ],
    "time_zones": ["America/New_York", "Asia/Tokyo", "Europe/Berlin", "UTC"],
    "weekdays": [
        {"value": "mon", "name": "Monday"},
        {"value": "tue", "name": "Tuesday"},
        {"value": "wed", "name": "Wednesday"},
        {"value": "thu", "name": "Thursday"},
        {"value": "fri", "name": "Friday"},
        {"value": "sat", "name": "Saturday"},
        {"value": "sun", "name": "Sunday"},
    ],
    "cron": {
        "format": "minute hour day-of-month month day-of-week",
        "fields": [
            "minute: 0-59",
            "hour: 0-23",
            "day of month: 1-31 or L (last day)",
            "month: 1-12 or jan-dec",
            "day of week: 0-6 (0 is Sunday) or sun-sat, 5#2 for the second Friday",
        ],
        "aliases": ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"],
        "examples": {
            "30 2 * * 0": "Sundays at 02:30",
            "0 23 * * 1-5": "weekdays at 23:00",
            "*/15 * * * *": "every 15 minutes",
            "0 4 1,15 * *": "on the 1st and 15th at 04:00",
        },
        "notes": (
            "Each field takes lists (1,15), ranges (1-5) and steps (*/15). When both day of month "
            "and day of week are restricted, a day matching either runs. Times are wall-clock "
            "times in the schedule's time_zone."
        ),
    },
    "defaults": {"frequency": "daily", "time_zone": "UTC", "enabled": True},
    "time_input": (
        "A time without offset is a wall-clock time in the schedule's time_zone, so "
        "2026-03-29T02:30 means 02:30 there whatever the date's UTC offset. A time with Z or an "
        "offset is that instant, converted to the wall-clock time it shows in time_zone. Seconds "
        "are dropped: schedules run on whole minutes."
    ),
    "max_image_ids": 100,
    "max_recent_runs": 20,
    "dispatch_interval_s": 60,
}

# The search options of an organization whose only schedule is SCHEDULE_SAVE.
SCHEDULE_SEARCH_OPTIONS = {
    "fields": [
        {"name": "name", "type": "string", "values": [SCHEDULE_SAVE["name"]]},
        {"name": "enabled", "type": "boolean", "values": [True]},
        {"name": "frequency", "type": "string", "values": ["weekly"]},
        {"name": "time_zone", "type": "string", "values": ["Europe/Berlin"]},
        {"name": "image_id", "type": "string", "values": [IMAGE_RECORD_ID]},
        {"name": "search", "type": "string", "values": []},
    ],
    "images": [{"id": IMAGE_RECORD_ID, "img_id": "eos-4.30"}],
    "sort_fields": [
        "id", "name", "frequency", "enabled", "time_zone", "start_time", "next_run_time",
        "creation_time", "modified_time",
    ],
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
