"""Stream one file from a source URL into storage, checking it as it arrives.

The checks, in order: status, Content-Encoding, Content-Type and first bytes (an HTML page is not
an image), declared length against the size limit, then bytes received against Content-Length,
against the expected size and, after fsync, the MD5 against the expected one. Any failure removes
the partial file; only a file that passed every check is handed back for the atomic rename.
"""

import asyncio
import errno
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from app.hashing import DigestingFileWriter, FileDigests, hash_file_prefix
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
FLUSH_INTERVAL_S = 1.0


class DownloadError(Exception):
    """A failed attempt. `retryable` is true when another attempt may succeed."""

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


def _check_response(
    response: httpx.Response, request: FetchRequest, *, partial: bool = False
) -> "zlib._Decompress | None":
    """Raise DownloadError for a response that cannot carry the file; return a decoder if needed."""
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        raise DownloadError(
            "http_status", f"source responded HTTP {status} for {response.url}",
            retryable=True, retry_after_s=_retry_after_seconds(response),
        )
    if status != (206 if partial else 200):
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


@dataclass(frozen=True)
class SourceValidators:
    """Validators of the entity at the source, so that a later attempt can request the rest of it."""

    etag: str | None
    last_modified: str | None
    total_bytes: int | None

    @property
    def if_range(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified (weak ETags are not allowed)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass(frozen=True)
class FetchResult:
    digests: FileDigests
    resumed_from_bytes: int  # bytes kept from an earlier attempt; 0 when fetched from the start


ValidatorsCallback = Callable[[SourceValidators], Awaitable[None]]
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _StartOver(Exception):
    """The source did not honour the range request; fetch the whole file instead."""


def _validators_of(response: httpx.Response) -> SourceValidators:
    total = None
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            total = int(match.group(3))
    else:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
    return SourceValidators(response.headers.get("ETag"), response.headers.get("Last-Modified"), total)


def _check_resumed_range(response: httpx.Response, kept_bytes: int, known: SourceValidators) -> None:
    """Raise _StartOver unless a 206 continues exactly at `kept_bytes` of the same entity."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != kept_bytes:
        raise _StartOver(f"the source responded to the range with {response.headers.get('Content-Range')!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    if known.total_bytes is not None and total != known.total_bytes:
        raise _StartOver(f"the source's size changed from {known.total_bytes} to {total}")
    etag = response.headers.get("ETag")
    if known.etag and etag and etag != known.etag:
        raise _StartOver("the source's ETag changed")


async def fetch_to_file(
    client: httpx.AsyncClient,
    request: FetchRequest,
    on_progress: ProgressCallback,
    *,
    validators: SourceValidators | None = None,
    on_validators: ValidatorsCallback | None = None,
) -> FetchResult:
    """Download `request.url` into `request.partial_path` and return its verified size and digests.

    When the partial file contains bytes from an earlier attempt and `validators` identify the entity
    those bytes belong to, only the rest is requested (`Range` with `If-Range`), and the kept bytes are
    hashed again first. A source that ignores or mis-answers the range gets a fresh request for the
    whole file. After a retryable failure the partial file is kept for the next attempt when the
    source sent validators; otherwise, and after any other failure, it is removed.
    """
    kept_bytes = await asyncio.to_thread(_file_size, request.partial_path)
    if kept_bytes and validators is not None and validators.if_range:
        try:
            return await _fetch_once(client, request, on_progress, on_validators, kept_bytes, validators)
        except _StartOver as exc:
            logger.info("resume of %s not possible, fetching the whole file: %s", request.url, exc)
    return await _fetch_once(client, request, on_progress, on_validators, 0, None)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _fetch_once(  # noqa: PLR0912, PLR0915 - one attempt, read top to bottom
    client: httpx.AsyncClient,
    request: FetchRequest,
    on_progress: ProgressCallback,
    on_validators: ValidatorsCallback | None,
    kept_bytes: int,
    known: SourceValidators | None,
) -> FetchResult:
    headers = {"Accept-Encoding": "identity"}
    if known is not None:
        headers["Range"] = f"bytes={kept_bytes}-"
        headers["If-Range"] = known.if_range or ""
    writer: DigestingFileWriter | None = None
    keep_partial = False
    # Received bytes not yet handed to the writer; kept too when an attempt ends early.
    parts: list[bytes] = []
    start = 0
    received_bytes = 0
    declared_bytes: int | None = None
    try:
        async with client.stream("GET", request.url, headers=headers) as response:
            if known is not None and response.status_code == 416:
                raise _StartOver("the source responded to the range with 416")
            if known is not None and response.status_code == 206:
                _check_resumed_range(response, kept_bytes, known)
                start = kept_bytes
            decoder = _check_response(response, request, partial=start > 0)
            found = _validators_of(response)
            if on_validators is not None:
                await on_validators(found)
            # Bytes that a decoder changed cannot be continued with a range of the encoded entity.
            keep_partial = decoder is None and found.if_range is not None

            resume_state = await hash_file_prefix(request.partial_path, start) if start else None
            writer = DigestingFileWriter(request.partial_path, resume_state)
            await writer.open()

            length_header = response.headers.get("Content-Length")
            declared_bytes = int(length_header) if length_header and length_header.isdigit() else None
            total_for_progress = found.total_bytes if decoder is None else None
            # Reads come in pieces of up to 256 KiB; they are joined into chunks of chunk_bytes,
            # once each, before the hashing threads get them.
            pending_bytes = 0
            last_flush = time.monotonic()
            sniffed = start > 0
            async for data in response.aiter_raw():
                received_bytes += len(data)
                if not sniffed:
                    sniffed = True
                    if decoder is None and _looks_like_html(data):
                        raise DownloadError(
                            "unexpected_content",
                            f"source returned an HTML page instead of {request.file_name}",
                        )
                parts.append(data)
                pending_bytes += len(data)
                now = time.monotonic()
                # A full chunk goes to the writer at once. On a slow link, whatever arrived goes
                # every FLUSH_INTERVAL_S, so the partial file (kept for a resume) keeps growing.
                if pending_bytes >= request.chunk_bytes or now - last_flush >= FLUSH_INTERVAL_S:
                    await _write(writer, decoder, b"".join(parts), request)
                    count_download_bytes(pending_bytes)
                    parts.clear()
                    pending_bytes = 0
                    last_flush = now
                await on_progress(start + received_bytes, total_for_progress)
            await _write(writer, decoder, b"".join(parts), request, final=True)
            count_download_bytes(pending_bytes)

        if declared_bytes is not None and received_bytes < declared_bytes:
            raise DownloadError(
                "truncated",
                f"connection ended after {start + received_bytes} of {start + declared_bytes} bytes",
                retryable=True,
            )
        digests = await writer.finish()
    except _StartOver:
        await _remove_partial(request, writer)
        raise
    except httpx.TimeoutException as exc:
        await _end_attempt(request, writer, keep_partial, parts)
        raise DownloadError(
            "timeout", f"source stalled after {start + received_bytes} bytes: {type(exc).__name__}",
            retryable=True,
        ) from exc
    except httpx.TooManyRedirects as exc:
        await _remove_partial(request, writer)
        raise DownloadError("too_many_redirects", f"too many redirects from {request.url}") from exc
    except httpx.UnsupportedProtocol as exc:
        await _remove_partial(request, writer)
        raise DownloadError("http_status", f"a redirect led to an unsupported URL: {exc}") from exc
    except (httpx.TransportError, httpx.DecodingError) as exc:
        await _end_attempt(request, writer, keep_partial, parts)
        code = "truncated" if received_bytes and declared_bytes else "connection_error"
        raise DownloadError(
            code,
            f"connection failed after {start + received_bytes} bytes: {exc or type(exc).__name__}",
            retryable=True,
        ) from exc
    except DownloadError as exc:
        await _end_attempt(request, writer, keep_partial and exc.retryable)
        raise
    except OSError as exc:
        await _remove_partial(request, writer)
        code = "storage_full" if exc.errno == errno.ENOSPC else "storage_error"
        raise DownloadError(code, f"cannot write {request.partial_path.name}: {exc.strerror or exc}") from exc
    except DownloadCancelled:
        await _remove_partial(request, writer)
        raise
    except Exception:
        # A failure outside the transfer (the database, for one): the next attempt may resume.
        await _end_attempt(request, writer, keep_partial, parts)
        raise
    except BaseException:
        # Cancellation: the job was cancelled or the worker is stopping.
        await _remove_partial(request, writer)
        raise

    try:
        _check_digests(digests, request)
    except DownloadError:
        await _remove_partial(request, writer)
        raise
    return FetchResult(digests, start)


async def _end_attempt(
    request: FetchRequest, writer: DigestingFileWriter | None, keep: bool, pending: list[bytes] = ()  # type: ignore[assignment]
) -> None:
    """Keep the partial file, with the `pending` bytes, for a resume if possible; else remove it.

    Writing the pending bytes spares the next attempt asking the source for them again.
    """
    if keep and writer is not None:
        try:
            if pending:
                await writer.write(b"".join(pending))
            await writer.close()
            return
        except OSError as exc:
            logger.warning("cannot keep partial file %s: %s", request.partial_path.name, exc)
    await _remove_partial(request, writer)


async def _remove_partial(request: FetchRequest, writer: DigestingFileWriter | None) -> None:
    if writer is not None:
        await writer.discard()
    else:
        await asyncio.to_thread(request.partial_path.unlink, True)


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
