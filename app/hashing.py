"""Write a stream of chunks to a file while computing its MD5 and SHA-256, off the event loop.

Each chunk goes to two threads at once: one writes it and updates the MD5, the other updates the
SHA-256 (hashlib releases the GIL on large buffers, so both run in parallel with the event loop).
Only one chunk is in flight: `write` waits for the previous chunk before it hands over the next,
which bounds memory to about two chunks however large the file is, and keeps the order.
"""

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class HashState:
    """Digests of the first `size_bytes` of a file, to continue hashing where they stop."""

    size_bytes: int
    md5: "hashlib._Hash"
    sha256: "hashlib._Hash"


async def hash_file_prefix(path: Path, size_bytes: int, chunk_bytes: int = 1024 * 1024) -> HashState:
    """Hash the first `size_bytes` of `path` in a thread."""

    def run() -> HashState:
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        remaining = size_bytes
        with open(path, "rb") as file:
            while remaining > 0:
                chunk = file.read(min(chunk_bytes, remaining))
                if not chunk:
                    raise OSError(f"{path} has fewer than {size_bytes} bytes")
                md5.update(chunk)
                sha256.update(chunk)
                remaining -= len(chunk)
        return HashState(size_bytes, md5, sha256)

    return await asyncio.to_thread(run)


@dataclass(frozen=True)
class FileDigests:
    size_bytes: int
    md5: str
    sha256: str


class DigestingFileWriter:
    """Writes chunks to `path` and hashes them. With `resume`, appends to the bytes already there."""

    def __init__(self, path: Path, resume: "HashState | None" = None) -> None:
        self.path = path
        self.size_bytes = 0 if resume is None else resume.size_bytes
        self._resume = resume is not None
        self._file: BinaryIO | None = None
        self._md5 = hashlib.md5(usedforsecurity=False) if resume is None else resume.md5.copy()
        self._sha256 = hashlib.sha256() if resume is None else resume.sha256.copy()
        self._in_flight: asyncio.Future[list[None]] | None = None

    async def open(self) -> None:
        self._file = await asyncio.to_thread(self._open)

    def _open(self) -> BinaryIO:
        if not self._resume:
            return open(self.path, "wb")
        file = open(self.path, "r+b")
        # Anything past the resume point is from a write that was never acknowledged.
        file.truncate(self.size_bytes)
        file.seek(self.size_bytes)
        return file

    def hash_state(self) -> "HashState":
        """Return a copy of the digests so far; call only between writes, e.g. after `close`."""
        return HashState(self.size_bytes, self._md5.copy(), self._sha256.copy())

    async def close(self) -> None:
        """Flush, fsync and close, keeping the file for a later resume."""
        await self._wait_in_flight()
        await asyncio.to_thread(self._sync_and_close)

    async def write(self, chunk: bytes) -> None:
        await self._wait_in_flight()
        loop = asyncio.get_running_loop()
        self._in_flight = asyncio.gather(
            loop.run_in_executor(None, self._write_and_md5, chunk),
            loop.run_in_executor(None, self._sha256.update, chunk),
        )
        self.size_bytes += len(chunk)

    async def finish(self) -> FileDigests:
        """Flush and fsync the file, close it, and return its size and digests."""
        await self._wait_in_flight()
        await asyncio.to_thread(self._sync_and_close)
        return FileDigests(self.size_bytes, self._md5.hexdigest(), self._sha256.hexdigest())

    async def discard(self) -> None:
        """Close and delete the file; safe to call after an error or a cancellation."""
        if self._in_flight is not None:
            # Let a running write finish before the file is closed under it.
            await asyncio.gather(self._in_flight, return_exceptions=True)
            self._in_flight = None
        await asyncio.to_thread(self._close_and_unlink)

    async def _wait_in_flight(self) -> None:
        if self._in_flight is not None:
            # Shielded: a cancelled job must not drop track of threads still using the file.
            await asyncio.shield(self._in_flight)
            self._in_flight = None

    def _write_and_md5(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._md5.update(chunk)

    def _sync_and_close(self) -> None:
        assert self._file is not None
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def _close_and_unlink(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)
