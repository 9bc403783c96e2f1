"""Image file locations on disk, and the moves that make a file count as stored.

Layout under the storage directory:
- `partial/<job id>.part`: a download being written; never served, removed on failure.
- `partial/upload-<image record id>.part`: an unfinished upload, kept for a resume.
- `objects/<image_id>`: a complete, verified file, named by the image record's `image_id`.
Both sit on one file system, so moving a partial file into place is an atomic rename.
"""

import asyncio
import os
from pathlib import Path


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.objects_dir = self.root / "objects"
        self.partial_dir = self.root / "partial"

    def ensure_directories(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(parents=True, exist_ok=True)

    def object_path(self, blob_id: str) -> Path:
        return self.objects_dir / blob_id

    def partial_path(self, job_id: str) -> Path:
        return self.partial_dir / f"{job_id}.part"

    def upload_path(self, image_record_id: str) -> Path:
        """Return the path of the image's unfinished upload; an image has at most one."""
        return self.partial_dir / f"upload-{image_record_id}.part"

    async def size_of(self, path: Path) -> int:
        """Return the file's size in bytes, or 0 when it does not exist."""
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return 0

    async def commit(self, partial: Path, blob_id: str) -> Path:
        """Move a finished, fsynced partial file to its object path and persist the rename."""
        target = self.object_path(blob_id)
        await asyncio.to_thread(_replace_durably, partial, target)
        return target

    async def remove(self, path: Path) -> None:
        await asyncio.to_thread(path.unlink, True)

    async def remove_object(self, blob_id: str | None) -> None:
        if blob_id:
            await self.remove(self.object_path(blob_id))


def _replace_durably(source: Path, target: Path) -> None:
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
