"""MongoDB documents. Request and response shapes live in `schemas`, never here."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from beanie import Document, PydanticObjectId
from pydantic import AfterValidator, BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from app.scheduling import ScheduleFrequency
from app.timeutil import to_utc, utc_now

# A stored time, always UTC-aware when loaded: mongomock hands back naive datetimes, while
# PyMongo with tz_aware=True hands back aware ones, and the dispatcher compares them with `now`.
StoredTime = Annotated[datetime, AfterValidator(to_utc)]


class FileStatus(StrEnum):
    NONE = "none"
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"
    AVAILABLE = "available"
    FAILED = "failed"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)


class UploadedType:
    """Values of `uploaded_type`: how the image's file reached the service."""

    UPLOAD = 1
    DOWNLOAD = 2
    RECEIVED = 3


class OsImage(Document):
    """One catalog entry; the field names are the published API's."""

    img_id: str
    organization: str
    vendor: str | None = None
    description: str | None = None
    ostype: str | None = None
    series: str | None = None
    model: str | None = None
    os_version: str | None = None
    image_type: str | None = None
    image_size: str | None = None
    min_dram: int | None = None
    min_flash: int | None = None
    md5_hash: str | None = None
    file_name: str | None = None
    file_path: str | None = None
    creation_time: datetime = Field(default_factory=utc_now)
    modified_time: datetime = Field(default_factory=utc_now)
    last_update_time: datetime = Field(default_factory=utc_now)
    uploader_id: str | None = "2"
    uploaded_by: str | None = None
    uploaded_type: int | None = None
    is_checked: bool = False
    is_deleted: bool = False

    # Server-owned.
    image_id: str | None = None  # id of the stored file; the file is storage/objects/<image_id>
    download_status_obj: str | None = None  # id of the latest download job
    uploader_profile: str | None = None  # id of the API key that created the record
    job_id: str | None = None
    job_iteration_id: str | None = None
    sha256_hash: str | None = None
    file_status: FileStatus = FileStatus.NONE
    md5_verified: bool = False  # the stored file matched an MD5 the client declared
    # True when md5_hash came from the client, so the next file must match it; False when the
    # service filled md5_hash in from a stored file, which a new file may then replace.
    md5_declared: bool = False

    # An unfinished upload: bytes kept in storage/partial/upload-<id>.part, and the total size the
    # client declared in Content-Range (None for a plain PUT, whose end is the end of the body).
    upload_offset: int = 0
    upload_total: int | None = None
    upload_started_time: datetime | None = None
    # Held while one request writes the upload; a lease that expired belongs to a dead request.
    upload_lease_until: datetime | None = None
    served_count: int = 0  # GET requests of the file served with content
    served_bytes: int = 0

    # The job that is queued or running for this image, or None. Set and cleared only with a
    # compare-and-set update, which is what keeps two triggers from starting two jobs.
    active_job_id: str | None = None
    # None while the record is live, its own id once deleted: part of the unique index, so img_id
    # is unique among live records while deleted ones keep theirs. A partial index would state this
    # more directly, but mongomock ignores partialFilterExpression.
    deletion_key: str | None = None

    class Settings:
        name = "os_images"
        indexes = [
            IndexModel(
                [("organization", ASCENDING), ("img_id", ASCENDING), ("deletion_key", ASCENDING)],
                unique=True,
                name="img_id_unique_per_organization",
            ),
            IndexModel([("organization", ASCENDING), ("is_deleted", ASCENDING), ("_id", ASCENDING)]),
        ]


def expected_md5(image: "OsImage") -> str | None:
    """The MD5 a new file of the image must have, or None when the client declared none."""
    return image.md5_hash if image.md5_declared else None


class ApiKey(Document):
    """An API key, stored only as the SHA-256 of the key text."""

    organization: str
    name: str
    key_digest: str
    key_prefix: str  # the first characters of the key, to tell keys apart in listings
    created_time: datetime = Field(default_factory=utc_now)
    revoked_time: datetime | None = None

    class Settings:
        name = "api_keys"
        indexes = [IndexModel([("key_digest", ASCENDING)], unique=True)]


class DownloadJob(Document):
    """One download of an image's file from its source URL, across all its attempts."""

    organization: str
    image_record_id: PydanticObjectId
    img_id: str
    state: JobState = JobState.QUEUED
    source_url: str
    file_name: str | None = None
    expected_md5: str | None = None
    expected_size_bytes: int | None = None
    attempt: int = 0
    max_attempts: int
    bytes_done: int = 0
    bytes_total: int | None = None
    rate_bytes_per_s: float | None = None
    md5_hash: str | None = None
    sha256_hash: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    triggered_by: str | None = None
    created_time: datetime = Field(default_factory=utc_now)
    started_time: datetime | None = None
    finished_time: datetime | None = None
    updated_time: datetime = Field(default_factory=utc_now)
    next_attempt_time: datetime | None = None
    # False while the job waits to be put on the queue (Redis was unreachable when it was made).
    enqueued: bool = True
    # Validators of the source's entity, from the last response: a later attempt requests the
    # rest of the same entity with Range and If-Range.
    source_etag: str | None = None
    source_last_modified: str | None = None
    source_size_bytes: int | None = None

    class Settings:
        name = "download_jobs"
        indexes = [
            IndexModel([("organization", ASCENDING), ("image_record_id", ASCENDING)]),
            IndexModel([("organization", ASCENDING), ("state", ASCENDING)]),
        ]


class AuditEvent(Document):
    """One entry of the append-only audit trail."""

    organization: str
    time: datetime = Field(default_factory=utc_now)
    action: str
    actor: str  # "apikey:<id>", "worker" or "cli"
    image_record_id: PydanticObjectId | None = None
    img_id: str | None = None
    job_id: str | None = None
    schedule_id: str | None = None
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "audit_events"
        indexes = [
            IndexModel([("organization", ASCENDING), ("time", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("organization", ASCENDING), ("image_record_id", ASCENDING)]),
            IndexModel([("organization", ASCENDING), ("job_id", ASCENDING)]),
            IndexModel([("organization", ASCENDING), ("schedule_id", ASCENDING)]),
        ]


class ScheduleRunOutcome(StrEnum):
    QUEUED = "queued"  # every image has a download queued or running
    PARTIAL = "partial"  # some images could not be queued
    FAILED = "failed"  # no image could be queued
    EXPIRED = "expired"  # due slots skipped because the schedule's end_time had passed


class ScheduleRunJob(BaseModel):
    """The download one run asked for one image."""

    image_record_id: PydanticObjectId
    img_id: str | None = None
    job_id: str | None = None  # None when the download could not be queued
    reused: bool = False  # the image's queued or running job was reused
    error: str | None = None


class ScheduleRun(BaseModel):
    """One dispatch of a schedule."""

    slot_time: StoredTime | None  # the slot that ran; None for an expired schedule
    dispatch_time: StoredTime
    outcome: ScheduleRunOutcome
    jobs: list[ScheduleRunJob] = Field(default_factory=list)
    skipped_slot_count: int = 0  # earlier due slots folded into this run (or not run at all)


class DownloadSchedule(Document):
    """A rule that queues downloads of some of an organization's images at wall-clock times."""

    organization: str
    name: str
    description: str | None = None
    image_ids: list[PydanticObjectId]
    frequency: ScheduleFrequency
    time_zone: str  # IANA name
    # Wall-clock times in time_zone, ISO 8601 without offset ("2026-03-29T02:30:00"). They are the
    # rule; start_time and end_time are their UTC instants, kept for display and queries.
    start_local_time: str
    end_local_time: str | None = None
    start_time: StoredTime
    end_time: StoredTime | None = None
    weekdays: list[str] | None = None  # "mon" ... "sun"; weekly only
    day_of_month: int | None = None  # 1-31; monthly only
    cron_expression: str | None = None  # cron only
    enabled: bool = True
    created_by: str | None = None  # id of the API key that created the schedule
    creation_time: StoredTime = Field(default_factory=utc_now)
    modified_time: StoredTime = Field(default_factory=utc_now)
    is_deleted: bool = False

    # Server-owned. next_run_time is the slot the dispatcher waits for: None when disabled,
    # deleted, or when no slot is left. last_slot_time is the latest slot that was claimed.
    next_run_time: StoredTime | None = None
    last_slot_time: StoredTime | None = None
    recent_runs: list[ScheduleRun] = Field(default_factory=list)  # oldest first, capped
    # Incremented by every change of the fields above or of the rule. Claims and saves are
    # compare-and-set updates on it, so a slot is claimed once however many dispatchers run.
    revision: int = 0

    class Settings:
        name = "download_schedules"
        indexes = [
            IndexModel([("enabled", ASCENDING), ("is_deleted", ASCENDING), ("next_run_time", ASCENDING)]),
            IndexModel([("organization", ASCENDING), ("is_deleted", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("organization", ASCENDING), ("image_ids", ASCENDING)]),
        ]


DOCUMENT_MODELS = [OsImage, ApiKey, DownloadJob, AuditEvent, DownloadSchedule]
