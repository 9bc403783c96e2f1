"""Request and response bodies. Server-owned fields appear only in responses."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    model_validator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import SkipJsonSchema

from app.models import openapi_examples as examples
from app.models.documents import (
    DownloadJob,
    DownloadSchedule,
    FileStatus,
    JobState,
    OsImage,
    ScheduleRun,
    ScheduleRunOutcome,
)
from app.models.openapi_examples import schema_extra
from app.scheduling import (
    MAX_YEAR,
    MIN_YEAR,
    ScheduleFrequency,
    check_cron_expression,
    format_local_time,
    parse_time_zone,
    parse_weekday,
)
from app.timeutil import UtcDateTime, parse_iso_datetime
from app.validation import check_file_name, check_source_url, normalise_md5

Md5Hex = Annotated[str, AfterValidator(normalise_md5)]
# Schema patterns tell clients the shape; the validators enforce it with messages that name the
# rule, which a failed pattern would not.
FILE_NAME_PATTERN = r"^(\.?[^./\\\x00-\x1f])+\.?$"
FileName = Annotated[
    str,
    AfterValidator(check_file_name),
    WithJsonSchema({"type": "string", "pattern": FILE_NAME_PATTERN, "maxLength": 255}),
]
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
SOURCE_URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(:{_PORT})?([/?#][^\s]*)?$"
SourceUrl = Annotated[
    str,
    AfterValidator(check_source_url),
    WithJsonSchema({"type": "string", "pattern": SOURCE_URL_PATTERN, "maxLength": 2048}),
]
OBJECT_ID_PATTERN = r"^[0-9a-fA-F]{24}$"
ShortText = Annotated[str, StringConstraints(max_length=255)]
ImageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=25)]
OrganizationName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=25)]
DecimalSize = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,20}$")]
NonNegativeMegabytes = Annotated[int, Field(ge=0, le=2**53)]
_OBJECT_ID = re.compile(OBJECT_ID_PATTERN)
MAX_SCHEDULE_IMAGES = 100

# Fields of ImagePublic that only the server sets. The OpenAPI schema marks them readOnly.
SERVER_OWNED_FIELDS = (
    "id", "last_update_time", "image_id", "download_status_obj", "uploader_profile",
    "modified_time", "is_deleted", "job_iteration_id", "job_id", "sha256_hash", "file_status",
    "md5_verified", "served_count", "served_bytes",
)
CLIENT_FIELDS = (
    "img_id", "organization", "vendor", "description", "ostype", "series", "model", "os_version",
    "image_type", "image_size", "min_dram", "min_flash", "md5_hash", "file_name", "file_path",
    "uploader_id", "uploaded_by", "uploaded_type", "is_checked",
)


class ImagePatch(BaseModel):
    """Client-owned image fields, all optional.

    Server-owned fields are ignored, so a record read from the API can be sent back as it is.
    Any other unknown field is rejected, so that a misspelt name such as `md5hash` cannot skip
    a check silently.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_extra(examples.IMAGE_PATCH, read_only=["modified_time"]),
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_server_owned_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if name not in SERVER_OWNED_FIELDS}
        return data

    # Leaving these out keeps them; null is not a value they can take.
    img_id: ImageName | SkipJsonSchema[None] = None
    organization: OrganizationName | SkipJsonSchema[None] = None
    vendor: ShortText | None = None
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    ostype: ShortText | None = None
    series: ShortText | None = None
    model: ShortText | None = None
    os_version: ShortText | None = None
    image_type: ShortText | None = None
    image_size: DecimalSize | None = Field(
        default=None, description="Expected size in bytes; replaced by the stored file's size."
    )
    min_dram: NonNegativeMegabytes | None = Field(default=None, description="Minimum DRAM in MB.")
    min_flash: NonNegativeMegabytes | None = Field(default=None, description="Minimum flash in MB.")
    md5_hash: Md5Hex | None = Field(
        default=None, description="Expected MD5, 32 hex characters; stored lowercase."
    )
    file_name: FileName | None = Field(
        default=None, description="Base name of the image file; its suffix must be allowed."
    )
    file_path: SourceUrl | None = Field(
        default=None, description="http:// or https:// URL the worker downloads the file from."
    )
    creation_time: UtcDateTime | None = Field(
        default=None, description="Taken on create only; a time without offset is read as UTC."
    )
    modified_time: UtcDateTime | None = Field(default=None, description="Ignored; set by the server.")
    uploader_id: str | None = Field(default=None, max_length=64)
    uploaded_by: ShortText | None = None
    uploaded_type: Annotated[int, Field(ge=1, le=3)] | None = Field(
        default=None, description="1 upload, 2 download from URL, 3 received from another service."
    )
    is_checked: bool | SkipJsonSchema[None] = None


class ImageWrite(ImagePatch):
    """Body of POST and PUT: img_id and organization are required, the rest optional."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.IMAGE_WRITE, read_only=["modified_time"])
    )

    img_id: ImageName
    organization: OrganizationName
    uploader_id: str | None = Field(default="2", max_length=64)
    is_checked: bool = False


_INTERNAL_IMAGE_FIELDS = {
    "id", "revision_id", "active_job_id", "deletion_key", "upload_offset", "upload_total",
    "upload_started_time", "upload_lease_until", "md5_declared",
}


class ImagePublic(BaseModel):
    """An image record as the API returns it."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.IMAGE_PUBLIC, read_only=SERVER_OWNED_FIELDS)
    )

    id: str
    last_update_time: UtcDateTime
    image_id: str | None
    download_status_obj: str | None
    uploader_profile: str | None
    img_id: str
    organization: str
    vendor: str | None
    description: str | None
    ostype: str | None
    series: str | None
    model: str | None
    os_version: str | None
    image_type: str | None
    image_size: str | None
    min_dram: int | None
    min_flash: int | None
    md5_hash: str | None
    file_name: str | None
    file_path: str | None
    creation_time: UtcDateTime
    modified_time: UtcDateTime
    uploader_id: str | None
    uploaded_by: str | None
    uploaded_type: int | None
    is_checked: bool
    is_deleted: bool
    job_iteration_id: str | None
    job_id: str | None
    sha256_hash: str | None = Field(description="SHA-256 of the stored file.")
    file_status: FileStatus
    md5_verified: bool = Field(description="True when the stored file matched a declared MD5.")
    served_count: int = Field(description="GET requests of the file served with content.")
    served_bytes: int = Field(description="Bytes of the file served, ranges included.")

    @classmethod
    def from_document(cls, image: OsImage) -> "ImagePublic":
        data = image.model_dump(exclude=_INTERNAL_IMAGE_FIELDS)
        return cls(id=str(image.id), **data)


class ImageSummary(BaseModel):
    """A compact image entry for pickers."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.IMAGE_SUMMARY, read_only=["id", "file_status"])
    )

    id: str
    img_id: str
    vendor: str | None
    ostype: str | None
    model: str | None
    os_version: str | None
    file_name: str | None
    file_status: FileStatus


class MultiDeleteRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=schema_extra({"ids": [examples.IMAGE_RECORD_ID, "665f1c2e8b3a4d2f9c0e1a3f"]})
    )

    ids: list[str] = Field(min_length=1, max_length=500)


class MultiDeleteResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=schema_extra(
            {"deleted": [examples.IMAGE_RECORD_ID], "not_found": ["665f1c2e8b3a4d2f9c0e1a3f"]},
            read_only="all",
        )
    )

    deleted: list[str]
    not_found: list[str]


class AllowedFileTypes(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=schema_extra(
            {"allowed_file_types": [".bin", ".swi", ".out", ".tgz", ".iso"]}, read_only="all"
        )
    )

    allowed_file_types: list[str]


_NAMES_AN_IMAGE = {
    "anyOf": [
        {"required": ["id"], "properties": {"id": {"type": "string"}}},
        {"required": ["img_id"], "properties": {"img_id": {"type": "string"}}},
        {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
    ]
}
_add_trigger_examples = schema_extra(
    {"img_id": "eos-4.30"}, {"id": examples.IMAGE_RECORD_ID},
    {"ids": [examples.IMAGE_RECORD_ID, "665f1c2e8b3a4d2f9c0e1a3f"]},
)


def _names_an_image_schema(schema: dict[str, Any]) -> None:
    _add_trigger_examples(schema)
    schema.update(_NAMES_AN_IMAGE)


class TriggerRequest(BaseModel):
    """Names the images: `id`, `img_id` or a list `ids` of record ids."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_names_an_image_schema)

    id: Annotated[str, StringConstraints(min_length=1)] | SkipJsonSchema[None] = None
    img_id: Annotated[str, StringConstraints(min_length=1, max_length=25)] | SkipJsonSchema[None] = None
    ids: Annotated[list[str], Field(min_length=1, max_length=500)] | SkipJsonSchema[None] = None
    organization: str | None = Field(default=None, max_length=25)


class JobStatus(BaseModel):
    """State of one download job."""

    model_config = ConfigDict(json_schema_extra=schema_extra(examples.JOB_STATUS, read_only="all"))

    job_id: str
    image_record_id: str
    img_id: str
    state: JobState
    attempt: int
    max_attempts: int
    bytes_done: int
    bytes_total: int | None
    percent: float | None
    rate_bytes_per_s: float | None
    md5_hash: str | None
    sha256_hash: str | None
    error_code: str | None
    error_message: str | None
    source_url: str
    created_time: UtcDateTime
    started_time: UtcDateTime | None
    finished_time: UtcDateTime | None
    updated_time: UtcDateTime
    next_attempt_time: UtcDateTime | None
    enqueued: bool = Field(
        description="False while the job waits for the queue (Redis) to be reachable again."
    )

    @classmethod
    def from_document(cls, job: DownloadJob) -> "JobStatus":
        percent = None
        if job.bytes_total:
            percent = round(min(100.0, 100.0 * job.bytes_done / job.bytes_total), 2)
        elif job.state == JobState.SUCCEEDED:
            percent = 100.0
        data = job.model_dump(exclude={"id", "revision_id", "organization", "image_record_id"})
        return cls(
            job_id=str(job.id), image_record_id=str(job.image_record_id), percent=percent, **data
        )


class TriggerResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=schema_extra({"jobs": [examples.QUEUED_JOB_STATUS]})
    )

    jobs: list[JobStatus]


class DownloadOptions(BaseModel):
    """Defaults and choices for download jobs."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.DOWNLOAD_OPTIONS, read_only="all")
    )

    protocols: list[str]
    hash_algorithms: list[str]
    max_attempts: int
    retry_base_delay_s: float
    retry_max_delay_s: float
    connect_timeout_s: float
    read_timeout_s: float
    max_redirects: int
    max_image_size_bytes: int
    allowed_file_types: list[str]
    job_states: list[str]
    vendors: list[str]
    ostypes: list[str]


class AuditEntry(BaseModel):
    model_config = ConfigDict(json_schema_extra=schema_extra(examples.AUDIT_ENTRY, read_only="all"))

    id: str
    time: UtcDateTime
    action: str
    actor: str
    image_record_id: str | None
    img_id: str | None
    job_id: str | None
    schedule_id: str | None
    message: str
    details: dict[str, Any]


_add_upload_status_examples = schema_extra({"img_id": "eos-4.30"}, {"id": examples.IMAGE_RECORD_ID})


def _names_one_image_schema(schema: dict[str, Any]) -> None:
    _add_upload_status_examples(schema)
    schema["anyOf"] = _NAMES_AN_IMAGE["anyOf"][:2]


class UploadStatusRequest(BaseModel):
    """Names the image: `id` (record id) or `img_id`."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_names_one_image_schema)

    id: Annotated[str, StringConstraints(min_length=1)] | SkipJsonSchema[None] = None
    img_id: Annotated[str, StringConstraints(min_length=1, max_length=25)] | SkipJsonSchema[None] = None
    organization: str | None = Field(default=None, max_length=25)


class UploadStatus(BaseModel):
    """Upload state of one image."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(
            examples.UPLOAD_STATUS_PARTIAL, examples.UPLOAD_STATUS_COMPLETE, read_only="all"
        )
    )

    id: str
    img_id: str
    file_status: FileStatus
    upload_in_progress: bool = Field(description="Bytes of an unfinished upload are kept.")
    bytes_received: int = Field(description="Bytes kept of the unfinished upload, or the stored file's size.")
    offset: int = Field(description="Where to resume: the START of the next Content-Range.")
    total_bytes: int | None = Field(description="The declared total of the upload, or the stored size.")
    complete: bool = Field(description="A verified file is stored and no upload is unfinished.")
    md5_hash: str | None = Field(description="MD5 of the stored file.")
    sha256_hash: str | None = Field(description="SHA-256 of the stored file.")
    md5_verified: bool = Field(description="The stored file matched a declared md5_hash.")
    started_time: UtcDateTime | None = Field(description="Start of the unfinished upload.")

    @classmethod
    def from_image(cls, image: OsImage, kept_bytes: int) -> "UploadStatus":
        in_progress = kept_bytes > 0 or image.upload_started_time is not None
        complete = image.file_status == FileStatus.AVAILABLE and not in_progress
        stored_size = int(image.image_size) if complete and image.image_size else None
        return cls(
            id=str(image.id),
            img_id=image.img_id,
            file_status=image.file_status,
            upload_in_progress=in_progress,
            bytes_received=kept_bytes if in_progress else (stored_size or 0),
            offset=kept_bytes,
            total_bytes=image.upload_total if in_progress else stored_size,
            complete=complete,
            md5_hash=image.md5_hash if complete else None,
            sha256_hash=image.sha256_hash if complete else None,
            md5_verified=image.md5_verified if complete else False,
            started_time=image.upload_started_time if in_progress else None,
        )


class ReceiveResult(BaseModel):
    """Outcome of pushing image records: each record, and what happened to it."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.RECEIVE_RESULT, read_only="all")
    )

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    records: list[ImagePublic]


SortField = StrEnum("SortField", {name: name for name in sorted(ImagePublic.model_fields)})
"""Image fields a list can be sorted by."""


def _parse_schedule_time(value: object) -> object:
    """Parse an ISO 8601 date-time, keeping a naive one naive (it is a wall time in time_zone)."""
    if isinstance(value, str):
        return parse_iso_datetime(
            value,
            "ISO 8601, e.g. 2026-03-29T02:30 for a wall-clock time in time_zone or "
            "2026-03-29T00:30:00Z for an instant",
        )
    return value


def _check_schedule_year(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


def _check_time_zone(value: str) -> str:
    parse_time_zone(value)
    return value


def _check_object_id(value: str) -> str:
    if not _OBJECT_ID.match(value):
        raise ValueError(f"{value!r} is not an image record id (24 hexadecimal characters)")
    return value.lower()


SCHEDULE_TIME_RULE = (
    "A time without offset is a wall-clock time in the schedule's time_zone, so "
    "2026-03-29T02:30 means 02:30 there whatever the date's UTC offset. A time with Z or an "
    "offset is that instant, converted to the wall-clock time it shows in time_zone. Seconds "
    "are dropped: schedules run on whole minutes."
)
ScheduleTime = Annotated[
    datetime,
    BeforeValidator(_parse_schedule_time),
    AfterValidator(_check_schedule_year),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-03-29T02:30:00"}),
]
TimeZoneName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_check_time_zone)]
ObjectIdText = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_object_id)]
Weekday = Annotated[str, StringConstraints(max_length=16), AfterValidator(parse_weekday)]
CronExpression = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_cron_expression)]
ScheduleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ScheduleSave(BaseModel):
    """Body of save-osimage-schedule-info: a new schedule without `id`, a change of one with it.

    A new schedule needs name, image_ids, frequency and start_time. A change keeps the stored
    value of every field it leaves out. Unknown and server-owned fields are ignored.
    """

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=schema_extra(examples.SCHEDULE_SAVE, examples.SCHEDULE_CHANGE),
    )

    id: str | None = Field(default=None, description="Id of the schedule to change; omit to create one.")
    organization: OrganizationName | None = Field(
        default=None, description="Optional; must be the API key's organization."
    )
    name: ScheduleName | None = None
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    image_ids: Annotated[list[ObjectIdText], Field(min_length=1, max_length=MAX_SCHEDULE_IMAGES)] | None = Field(
        default=None, description="Record ids (the `id` field) of live images of the organization."
    )
    frequency: ScheduleFrequency | None = Field(
        default=None,
        description=(
            "once: at start_time. hourly: every hour at start_time's minute. daily: every day at "
            "start_time's time of day. weekly: on `weekdays` at that time. monthly: on "
            "`day_of_month` at that time (the last day in months without that day). cron: at "
            "the times `cron_expression` matches. All in time_zone's wall-clock time."
        ),
    )
    start_time: ScheduleTime | None = Field(
        default=None, description="The first slot (once: the only one). " + SCHEDULE_TIME_RULE
    )
    end_time: ScheduleTime | None = Field(
        default=None, description="Optional; no slot after it runs. " + SCHEDULE_TIME_RULE
    )
    time_zone: TimeZoneName | None = Field(
        default=None, description="IANA time zone, e.g. Europe/Berlin; default UTC."
    )
    weekdays: Annotated[list[Weekday], Field(min_length=1, max_length=7)] | None = Field(
        default=None, description="weekly only: mon, tue, ... sun; default the weekday of start_time."
    )
    day_of_month: Annotated[int, Field(ge=1, le=31)] | None = Field(
        default=None, description="monthly only: 1-31; default the day of start_time."
    )
    cron_expression: CronExpression | None = Field(
        default=None,
        description="cron only: five fields, minute hour day-of-month month day-of-week, e.g. '30 2 * * 0'.",
    )
    enabled: bool | None = Field(default=None, description="Default true on create.")


class ScheduleStatus(StrEnum):
    SCHEDULED = "scheduled"  # enabled, with a next run
    DISABLED = "disabled"
    FINISHED = "finished"  # enabled, but no slot is left (a once schedule that ran, or past end_time)
    DELETED = "deleted"


class ScheduleRunJobPublic(BaseModel):
    image_record_id: str
    img_id: str | None
    job_id: str | None
    reused: bool = Field(description="True when a download already queued or running was reused.")
    state: JobState | None = Field(description="The job's current state; null when none was queued.")
    error: str | None = Field(description="Why no download was queued for this image.")


class ScheduleRunPublic(BaseModel):
    slot_time: UtcDateTime | None = Field(description="The slot that ran; null for an expired schedule.")
    dispatch_time: UtcDateTime
    outcome: ScheduleRunOutcome
    job_ids: list[str]
    jobs: list[ScheduleRunJobPublic]
    skipped_slot_count: int = Field(
        description=(
            "Due slots that did not run on their own: after downtime, the earlier slots this run "
            "covers; for an expired schedule, every slot that came due."
        )
    )

    @classmethod
    def from_run(cls, run: ScheduleRun, job_states: dict[str, JobState]) -> "ScheduleRunPublic":
        jobs = [
            ScheduleRunJobPublic(
                image_record_id=str(job.image_record_id), img_id=job.img_id, job_id=job.job_id,
                reused=job.reused, state=job_states.get(job.job_id or ""), error=job.error,
            )
            for job in run.jobs
        ]
        return cls(
            slot_time=run.slot_time, dispatch_time=run.dispatch_time, outcome=run.outcome,
            job_ids=[job.job_id for job in run.jobs if job.job_id], jobs=jobs,
            skipped_slot_count=run.skipped_slot_count,
        )


class SchedulePublic(BaseModel):
    """A download schedule as the API returns it."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.SCHEDULE_PUBLIC, read_only="all")
    )

    id: str
    organization: str
    name: str
    description: str | None
    image_ids: list[str]
    frequency: ScheduleFrequency
    time_zone: str
    start_time: UtcDateTime = Field(description="The UTC instant of start_local_time.")
    start_local_time: str = Field(description="Wall-clock start in time_zone, without offset.")
    end_time: UtcDateTime | None
    end_local_time: str | None
    weekdays: list[str] | None
    day_of_month: int | None
    cron_expression: str | None
    enabled: bool
    status: ScheduleStatus
    next_run_time: UtcDateTime | None = Field(description="The next slot, in UTC; null when none.")
    next_run_local_time: str | None = Field(
        description="The next slot as it reads in time_zone, with its offset."
    )
    last_run_time: UtcDateTime | None = Field(description="The latest slot that was dispatched.")
    last_runs: list[ScheduleRunPublic] = Field(description="The latest runs, newest first.")
    created_by: str | None
    creation_time: UtcDateTime
    modified_time: UtcDateTime
    is_deleted: bool

    @classmethod
    def from_document(
        cls, schedule: DownloadSchedule, job_states: dict[str, JobState]
    ) -> "SchedulePublic":
        if schedule.is_deleted:
            status = ScheduleStatus.DELETED
        elif not schedule.enabled:
            status = ScheduleStatus.DISABLED
        elif schedule.next_run_time is None:
            status = ScheduleStatus.FINISHED
        else:
            status = ScheduleStatus.SCHEDULED
        next_local = None
        if schedule.next_run_time is not None:
            next_local = format_local_time(schedule.next_run_time, parse_time_zone(schedule.time_zone))
        data = schedule.model_dump(
            exclude={"id", "revision_id", "image_ids", "recent_runs", "last_slot_time", "revision"}
        )
        return cls(
            id=str(schedule.id), image_ids=[str(image_id) for image_id in schedule.image_ids],
            status=status, next_run_local_time=next_local, last_run_time=schedule.last_slot_time,
            last_runs=[ScheduleRunPublic.from_run(run, job_states) for run in reversed(schedule.recent_runs)],
            **data,
        )


class FrequencyOption(BaseModel):
    value: ScheduleFrequency
    description: str
    fields: list[str] = Field(description="Fields this frequency uses besides start_time and end_time.")


class WeekdayOption(BaseModel):
    value: str
    name: str


class CronHelp(BaseModel):
    format: str
    fields: list[str]
    aliases: list[str]
    examples: dict[str, str]
    notes: str


class ScheduleDefaults(BaseModel):
    frequency: ScheduleFrequency
    time_zone: str
    enabled: bool


class ScheduleOptions(BaseModel):
    """Choices and defaults for schedule forms."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.SCHEDULE_OPTIONS, read_only="all")
    )

    frequencies: list[FrequencyOption]
    time_zones: list[str]
    weekdays: list[WeekdayOption]
    cron: CronHelp
    defaults: ScheduleDefaults
    time_input: str = Field(description="How start_time and end_time are read.")
    max_image_ids: int
    max_recent_runs: int
    dispatch_interval_s: int


class ScheduleSearchField(BaseModel):
    name: str = Field(description="The query parameter of os-schedule-details.")
    type: str
    values: list[Any] = Field(description="Values in use among the organization's schedules.")


class ImageChoice(BaseModel):
    id: str
    img_id: str


class ScheduleSearchOptions(BaseModel):
    """The fields os-schedule-details filters by, with the values in use."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.SCHEDULE_SEARCH_OPTIONS, read_only="all")
    )

    fields: list[ScheduleSearchField]
    images: list[ImageChoice] = Field(description="Images named by schedules, for the image_id filter.")
    sort_fields: list[str]
