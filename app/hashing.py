"""Write a stream of chunks to a file while computing its MD5 and SHA-256, off the event loop.

Each chunk goes to three single-thread executors at once: one writes it, one updates the MD5 and
one the SHA-256. hashlib releases the GIL on large buffers, so the three run in parallel with each
other and with the event loop, and each executor keeps the chunks in order. At most
MAX_CHUNKS_IN_FLIGHT chunks are handed over and not yet done: `write` waits for the oldest before
it hands over another, which bounds memory however large the file is.
"""

import asyncio
import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Enough to keep the three threads busy while the event loop receives the next chunk.
MAX_CHUNKS_IN_FLIGHT = 4
# The writer thread flushes dirty pages to disk every this many bytes, in parallel with the
# receiving and hashing, so the fsync before verification finds little left to write.
SYNC_EVERY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class HashState:
    """Digests of the first `size_bytes` of a file, to continue hashing where they stop."""

    size_bytes: int
    md5: "hashlib._Hash"
    sha256: "hashlib._Hash"


async def hash_file_prefix(path: Path, size_bytes: int, chunk_bytes: int = 1024 * 1024) -> HashState:
    """Hash the first `size_bytes` of `path`, reading in one thread and hashing in two more."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    md5_thread = ThreadPoolExecutor(1, thread_name_prefix="md5")
    sha256_thread = ThreadPoolExecutor(1, thread_name_prefix="sha256")
    loop = asyncio.get_running_loop()
    in_flight: deque[asyncio.Future[list[None]]] = deque()
    try:
        with open(path, "rb") as file:
            remaining = size_bytes
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(chunk_bytes, remaining))
                if not chunk:
                    raise OSError(f"{path} has fewer than {size_bytes} bytes")
                if len(in_flight) >= MAX_CHUNKS_IN_FLIGHT:
                    await in_flight.popleft()
                in_flight.append(asyncio.gather(
                    loop.run_in_executor(md5_thread, md5.update, chunk),
                    loop.run_in_executor(sha256_thread, sha256.update, chunk),
                ))
                remaining -= len(chunk)
        while in_flight:
            await in_flight.popleft()
    finally:
        md5_thread.shutdown(wait=False)
        sha256_thread.shutdown(wait=False)
    return HashState(size_bytes, md5, sha256)


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
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="file-write")
        self._md5_thread = ThreadPoolExecutor(1, thread_name_prefix="md5")
        self._sha256_thread = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._in_flight: deque[asyncio.Future[list[None]]] = deque()
        self._unsynced_bytes = 0

    async def open(self) -> None:
        self._file = await self._run(self._writer, self._open)

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

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        while len(self._in_flight) >= MAX_CHUNKS_IN_FLIGHT:
            await self._wait_oldest()
        assert self._file is not None
        loop = asyncio.get_running_loop()
        self._in_flight.append(asyncio.gather(
            loop.run_in_executor(self._writer, self._write_chunk, chunk),
            loop.run_in_executor(self._md5_thread, self._md5.update, chunk),
            loop.run_in_executor(self._sha256_thread, self._sha256.update, chunk),
        ))
        self.size_bytes += len(chunk)

    async def close(self) -> None:
        """Flush, fsync and close, keeping the file for a later resume."""
        try:
            await self._wait_all()
            await self._run(self._writer, self._sync_and_close)
        finally:
            self._shutdown()

    async def finish(self) -> FileDigests:
        """Flush and fsync the file, close it, and return its size and digests."""
        await self.close()
        return FileDigests(self.size_bytes, self._md5.hexdigest(), self._sha256.hexdigest())

    async def discard(self) -> None:
        """Close and delete the file; safe to call after an error or a cancellation."""
        # Let running writes finish before the file is closed under them.
        while self._in_flight:
            await asyncio.gather(self._in_flight.popleft(), return_exceptions=True)
        try:
            await asyncio.to_thread(self._close_and_unlink)
        finally:
            self._shutdown()

    async def _wait_oldest(self) -> None:
        # Shielded: a cancelled job must not drop track of threads still using the file.
        await asyncio.shield(self._in_flight[0])
        self._in_flight.popleft()

    async def _wait_all(self) -> None:
        while self._in_flight:
            await self._wait_oldest()

    @staticmethod
    async def _run(executor: ThreadPoolExecutor, function, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    def _shutdown(self) -> None:
        for executor in (self._writer, self._md5_thread, self._sha256_thread):
            executor.shutdown(wait=False)

    def _write_chunk(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._unsynced_bytes += len(chunk)
        if self._unsynced_bytes >= SYNC_EVERY_BYTES:
            self._file.flush()
            os.fdatasync(self._file.fileno())
            self._unsynced_bytes = 0

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
