"""Read-only helpers for clients: allowed file types, download options, image picker list."""

from fastapi import APIRouter

from app.auth import CallerDep
from app.dependencies import SettingsDep
from app.models.documents import JobState, OsImage
from app.models.schemas import AllowedFileTypes, DownloadOptions, ImageSummary
from app.services.images import distinct_values

router = APIRouter(tags=["catalog"])


@router.get("/get-allowed-file-types/", response_model=AllowedFileTypes)
async def read_allowed_file_types(caller: CallerDep, settings: SettingsDep) -> AllowedFileTypes:
    """File suffixes accepted for upload, download and hashing (setting ALLOWED_FILE_TYPES)."""
    return AllowedFileTypes(allowed_file_types=settings.allowed_file_types)


@router.get("/options/", response_model=DownloadOptions)
async def read_download_options(caller: CallerDep, settings: SettingsDep) -> DownloadOptions:
    """Defaults and choices for download jobs, with the vendors and OS types in use."""
    return DownloadOptions(
        protocols=["http", "https"],
        hash_algorithms=["md5", "sha256"],
        max_attempts=settings.download_max_attempts,
        retry_base_delay_s=settings.download_retry_base_delay_s,
        retry_max_delay_s=settings.download_retry_max_delay_s,
        connect_timeout_s=settings.download_connect_timeout_s,
        read_timeout_s=settings.download_read_timeout_s,
        max_redirects=settings.download_max_redirects,
        max_image_size_bytes=settings.max_image_size_bytes,
        allowed_file_types=settings.allowed_file_types,
        job_states=[state.value for state in JobState],
        vendors=await distinct_values(caller, "vendor"),
        ostypes=await distinct_values(caller, "ostype"),
    )


@router.get("/os-images-objs/", response_model=list[ImageSummary])
async def read_image_summaries(caller: CallerDep) -> list[ImageSummary]:
    """Return all live images of the organization in a compact form, ordered by img_id."""
    images = await OsImage.find(
        {"organization": caller.organization, "is_deleted": False}
    ).sort([("img_id", 1), ("_id", 1)]).to_list()
    return [
        ImageSummary(id=str(image.id), **image.model_dump(include=set(ImageSummary.model_fields) - {"id"}))
        for image in images
    ]
