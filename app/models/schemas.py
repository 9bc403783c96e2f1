"""Request and response bodies. Server-owned fields appear only in responses."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.models import openapi_examples as examples
from app.models.documents import DownloadJob, FileStatus, JobState, OsImage
from app.models.openapi_examples import schema_extra
from app.timeutil import UtcDateTime, format_rfc3339
from app.validation import check_file_name, check_source_url, normalise_md5

Md5Hex = Annotated[str, AfterValidator(normalise_md5)]
FileName = Annotated[str, AfterValidator(check_file_name)]
SourceUrl = Annotated[str, AfterValidator(check_source_url)]
ShortText = Annotated[str, StringConstraints(max_length=255)]
ImageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=25)]
OrganizationName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=25)]
DecimalSize = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,20}$")]
NonNegativeMegabytes = Annotated[int, Field(ge=0, le=2**53)]

# Fields of ImagePublic that only the server sets. The OpenAPI schema marks them readOnly.
SERVER_OWNED_FIELDS = (
    "id", "last_update_time", "image_id", "download_status_obj", "uploader_profile",
    "modified_time", "is_deleted", "job_iteration_id", "job_id", "sha256_hash", "file_status",
    "md5_verified",
)
CLIENT_FIELDS = (
    "img_id", "organization", "vendor", "description", "ostype", "series", "model", "os_version",
    "image_type", "image_size", "min_dram", "min_flash", "md5_hash", "file_name", "file_path",
    "uploader_id", "uploaded_by", "uploaded_type", "is_checked",
)


class ImagePatch(BaseModel):
    """Client-owned image fields, all optional; unknown and server-owned fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=schema_extra(examples.IMAGE_PATCH, read_only=["modified_time"]),
    )

    img_id: ImageName | None = None
    organization: OrganizationName | None = None
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
    is_checked: bool | None = None


class ImageWrite(ImagePatch):
    """Body of POST and PUT: img_id and organization are required, the rest optional."""

    model_config = ConfigDict(
        json_schema_extra=schema_extra(examples.IMAGE_WRITE, read_only=["modified_time"])
    )

    img_id: ImageName
    organization: OrganizationName
    uploader_id: str | None = Field(default="2", max_length=64)
    is_checked: bool = False


def _id_text(value: Any) -> str | None:
    return None if value is None else str(value)


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

    @classmethod
    def from_document(cls, image: OsImage) -> "ImagePublic":
        data = image.model_dump(exclude={"id", "revision_id", "active_job_id", "deletion_key"})
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


class TriggerRequest(BaseModel):
    """Names the images to download: `id`, `img_id` or a list `ids` of record ids."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=schema_extra(
            {"img_id": "eos-4.30"}, {"id": examples.IMAGE_RECORD_ID},
            {"ids": [examples.IMAGE_RECORD_ID, "665f1c2e8b3a4d2f9c0e1a3f"]},
        ),
    )

    id: str | None = None
    img_id: str | None = Field(default=None, max_length=25)
    ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
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
    message: str
    details: dict[str, Any]


def rfc3339_or_none(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)
