"""Stream one file from a source URL into storage, checking it as it arrives.

The checks, in order: status, Content-Encoding, Content-Type and first bytes (an HTML page is not
an image), declared length against the size limit, then bytes received against Content-Length,
against the expected size and, after fsync, the MD5 against the expected one. Any failure removes
the partial file; only a file that passed every check is handed back for the atomic rename.
"""

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from app.hashing import DigestingFileWriter, FileDigests
from app.metrics import count_download_bytes
from app.timeutil import utc_now
from app.validation import file_suffix

logger = logging.getLogger(__name__)

# Statuses worth another attempt: the source is overloaded or briefly broken.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Suffixes of files that are compressed already: a `Content-Encoding: gzip` on them is a server
# labelling the file's own format (a common misconfiguration), so the bytes are kept as sent.
COMPRESSED_SUFFIXES = frozenset({".gz", ".tgz", ".zip", ".xz", ".bz2"})
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")


class DownloadError(Exception):
    """A failed attempt; `retryable` says whether another attempt may succeed."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, retry_after_s: float | None = None,
        digests: FileDigests | None = None,
    ) -> None:
        super().__init__(message)
        self.digests = digests  # what was measured of a complete file that failed a check
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class DownloadCancelled(Exception):
    pass


@dataclass(frozen=True)
class FetchRequest:
    url: str
    partial_path: Path
    file_name: str
    expected_md5: str | None
    expected_size_bytes: int | None
    max_size_bytes: int
    chunk_bytes: int


ProgressCallback = Callable[[int, int | None], Awaitable[None]]


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - utc_now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _check_response(response: httpx.Response, request: FetchRequest) -> "zlib._Decompress | None":
    """Raise DownloadError for a response that cannot carry the file; return a decoder if needed."""
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        raise DownloadError(
            "http_status", f"source answered HTTP {status} for {response.url}",
            retryable=True, retry_after_s=_retry_after_seconds(response),
        )
    if status != 200:
        raise DownloadError(
            "http_status",
            f"source answered HTTP {status} for {response.url}: check file_path and the source",
        )

    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in ("text/html", "application/xhtml+xml"):
        raise DownloadError(
            "unexpected_content",
            f"source returned an HTML page ({content_type}) instead of {request.file_name}: "
            "file_path may point at a login or download page, not at the file itself",
        )

    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > request.max_size_bytes:
        raise DownloadError(
            "too_large",
            f"source declares {declared} bytes, above the limit of {request.max_size_bytes} "
            "bytes (MAX_IMAGE_SIZE_BYTES)",
        )

    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if file_suffix(request.file_name) in COMPRESSED_SUFFIXES:
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise DownloadError(
        "unexpected_content",
        f"source sent Content-Encoding {encoding!r} although the request asked for identity",
    )


def _looks_like_html(first_bytes: bytes) -> bool:
    return first_bytes.lstrip()[:32].lower().startswith(_HTML_STARTS)


async def fetch_to_file(
    client: httpx.AsyncClient,
    request: FetchRequest,
    on_progress: ProgressCallback,
) -> FileDigests:
    """Download `request.url` into `request.partial_path` and return its verified size and digests."""
    writer = DigestingFileWriter(request.partial_path)
    received_bytes = 0
    declared_bytes: int | None = None
    try:
        await writer.open()
        async with client.stream("GET", request.url, headers={"Accept-Encoding": "identity"}) as response:
            decoder = _check_response(response, request)
            length_header = response.headers.get("Content-Length")
            declared_bytes = int(length_header) if length_header and length_header.isdigit() else None
            total_for_progress = declared_bytes if decoder is None else None

            buffer = bytearray()
            sniffed = False
            async for data in response.aiter_raw():
                received_bytes += len(data)
                count_download_bytes(len(data))
                if not sniffed:
                    sniffed = True
                    if decoder is None and _looks_like_html(data):
                        raise DownloadError(
                            "unexpected_content",
                            f"source returned an HTML page instead of {request.file_name}",
                        )
                buffer += data
                if len(buffer) >= request.chunk_bytes:
                    await _write(writer, decoder, bytes(buffer), request)
                    buffer.clear()
                    await on_progress(received_bytes, total_for_progress)
            await _write(writer, decoder, bytes(buffer), request, final=True)

        if declared_bytes is not None and received_bytes < declared_bytes:
            raise DownloadError(
                "truncated",
                f"connection ended after {received_bytes} of {declared_bytes} bytes",
                retryable=True,
            )
        digests = await writer.finish()
    except httpx.TimeoutException as exc:
        await writer.discard()
        raise DownloadError(
            "timeout", f"source stalled after {received_bytes} bytes: {type(exc).__name__}",
            retryable=True,
        ) from exc
    except httpx.TooManyRedirects as exc:
        await writer.discard()
        raise DownloadError("too_many_redirects", f"too many redirects from {request.url}") from exc
    except httpx.UnsupportedProtocol as exc:
        await writer.discard()
        raise DownloadError(
            "http_status", f"a redirect led to an unsupported URL: {exc}"
        ) from exc
    except (httpx.TransportError, httpx.DecodingError) as exc:
        await writer.discard()
        code = "truncated" if received_bytes and declared_bytes else "connection_error"
        raise DownloadError(
            code, f"connection failed after {received_bytes} bytes: {exc or type(exc).__name__}",
            retryable=True,
        ) from exc
    except OSError as exc:
        await writer.discard()
        raise DownloadError("storage_error", f"cannot write {request.partial_path}: {exc}") from exc
    except BaseException:
        await writer.discard()
        raise

    try:
        _check_digests(digests, request)
    except DownloadError:
        await writer.discard()
        raise
    return digests


async def _write(
    writer: DigestingFileWriter, decoder: "zlib._Decompress | None", data: bytes,
    request: FetchRequest, *, final: bool = False,
) -> None:
    if decoder is not None:
        try:
            data = await asyncio.to_thread(decoder.decompress, data)
            if final:
                data += decoder.flush()
        except zlib.error as exc:
            raise DownloadError(
                "unexpected_content", f"source sent a Content-Encoding body that does not decode: {exc}"
            ) from exc
    if writer.size_bytes + len(data) > request.max_size_bytes:
        raise DownloadError(
            "too_large", f"file exceeds the limit of {request.max_size_bytes} bytes (MAX_IMAGE_SIZE_BYTES)"
        )
    if data:
        await writer.write(data)


def _check_digests(digests: FileDigests, request: FetchRequest) -> None:
    expected_size = request.expected_size_bytes
    if expected_size is not None and digests.size_bytes != expected_size:
        shorter = digests.size_bytes < expected_size
        raise DownloadError(
            "truncated" if shorter else "size_mismatch",
            f"file has {digests.size_bytes} bytes but image_size says {expected_size}",
            retryable=shorter, digests=digests,
        )
    if request.expected_md5 is not None and digests.md5 != request.expected_md5:
        raise DownloadError(
            "md5_mismatch",
            f"MD5 of the downloaded file is {digests.md5}, expected {request.expected_md5}: "
            "the file was discarded; check md5_hash against the vendor's published value",
            digests=digests,
        )


class ProgressReporter:
    """Calls `publish(bytes_done, bytes_total, rate)` at most once per `interval_s`."""

    def __init__(
        self, interval_s: float, publish: Callable[[int, int | None, float], Awaitable[None]]
    ) -> None:
        self._interval_s = interval_s
        self._publish = publish
        self._last_time = time.monotonic()
        self._last_bytes = 0

    async def __call__(self, bytes_done: int, bytes_total: int | None) -> None:
        now = time.monotonic()
        elapsed = now - self._last_time
        if elapsed < self._interval_s:
            return
        rate = (bytes_done - self._last_bytes) / elapsed
        self._last_time, self._last_bytes = now, bytes_done
        await self._publish(bytes_done, bytes_total, rate)
