"""Request and response bodies. Server-owned fields appear only in responses."""

from typing import Annotated, Any

from enum import StrEnum

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from app.models.documents import DownloadJob, FileStatus, JobState, OsImage
from app.timeutil import UtcDateTime
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

CLIENT_FIELDS = (
    "img_id", "organization", "vendor", "description", "ostype", "series", "model", "os_version",
    "image_type", "image_size", "min_dram", "min_flash", "md5_hash", "file_name", "file_path",
    "uploader_id", "uploaded_by", "uploaded_type", "is_checked",
)


class ImagePatch(BaseModel):
    """Client-owned image fields, all optional; unknown and server-owned fields are ignored."""

    model_config = ConfigDict(extra="ignore")

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

    img_id: ImageName
    organization: OrganizationName
    uploader_id: str | None = Field(default="2", max_length=64)
    is_checked: bool = False


_INTERNAL_IMAGE_FIELDS = {
    "id", "revision_id", "active_job_id", "deletion_key", "upload_offset", "upload_total",
    "upload_started_time", "upload_lease_until",
}


class ImagePublic(BaseModel):
    """An image record as the API returns it."""

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
    served_count: int = Field(description="GET requests of the file answered with content.")
    served_bytes: int = Field(description="Bytes of the file served, ranges included.")

    @classmethod
    def from_document(cls, image: OsImage) -> "ImagePublic":
        data = image.model_dump(exclude=_INTERNAL_IMAGE_FIELDS)
        return cls(id=str(image.id), **data)


class ImageSummary(BaseModel):
    """A compact image entry for pickers."""

    id: str
    img_id: str
    vendor: str | None
    ostype: str | None
    model: str | None
    os_version: str | None
    file_name: str | None
    file_status: FileStatus


class MultiDeleteRequest(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)


class MultiDeleteResult(BaseModel):
    deleted: list[str]
    not_found: list[str]


class AllowedFileTypes(BaseModel):
    allowed_file_types: list[str]


_NAMES_AN_IMAGE = {
    "anyOf": [
        {"required": ["id"], "properties": {"id": {"type": "string"}}},
        {"required": ["img_id"], "properties": {"img_id": {"type": "string"}}},
        {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
    ]
}


class TriggerRequest(BaseModel):
    """Names the images: `id`, `img_id` or a list `ids` of record ids."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_NAMES_AN_IMAGE)

    id: Annotated[str, StringConstraints(min_length=1)] | SkipJsonSchema[None] = None
    img_id: Annotated[str, StringConstraints(min_length=1, max_length=25)] | SkipJsonSchema[None] = None
    ids: Annotated[list[str], Field(min_length=1, max_length=500)] | SkipJsonSchema[None] = None
    organization: str | None = Field(default=None, max_length=25)


class JobStatus(BaseModel):
    """State of one download job."""

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
    jobs: list[JobStatus]


class DownloadOptions(BaseModel):
    """Defaults and choices for download jobs."""

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
    id: str
    time: UtcDateTime
    action: str
    actor: str
    image_record_id: str | None
    img_id: str | None
    job_id: str | None
    message: str
    details: dict[str, Any]


class UploadStatusRequest(BaseModel):
    """Names the image: `id` (record id) or `img_id`."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"anyOf": _NAMES_AN_IMAGE["anyOf"][:2]}
    )

    id: Annotated[str, StringConstraints(min_length=1)] | SkipJsonSchema[None] = None
    img_id: Annotated[str, StringConstraints(min_length=1, max_length=25)] | SkipJsonSchema[None] = None
    organization: str | None = Field(default=None, max_length=25)


class UploadStatus(BaseModel):
    """Upload state of one image."""

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

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    records: list[ImagePublic]


SortField = StrEnum("SortField", {name: name for name in sorted(ImagePublic.model_fields)})
"""Image fields a list can be sorted by."""
