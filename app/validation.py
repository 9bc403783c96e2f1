"""Checks on client-given values that both the API schemas and the worker apply."""

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

MD5_PATTERN = re.compile(r"^[0-9a-fA-F]{32}$")
SHA256_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_URL_LENGTH = 2048
MAX_FILE_NAME_LENGTH = 255


def normalise_md5(value: str) -> str:
    """Return the MD5 in lowercase, or raise ValueError saying what is wrong with it."""
    text = value.strip()
    if MD5_PATTERN.match(text):
        return text.lower()
    if SHA256_PATTERN.match(text):
        raise ValueError(
            "md5_hash has 64 hexadecimal characters, which is a SHA-256 digest, not an MD5: "
            "give the image's MD5 (32 hexadecimal characters)"
        )
    if len(text) == 32:
        raise ValueError("md5_hash must be hexadecimal: only 0-9 and a-f (or A-F) are allowed")
    raise ValueError(f"md5_hash must be 32 hexadecimal characters; got {len(text)} characters")


def check_file_name(value: str) -> str:
    """Return the name unchanged if it is a plain base name, or raise ValueError."""
    if not value or not value.strip():
        raise ValueError("file_name is empty: give the image's base name, e.g. ios-xe-17.9.4.bin")
    if len(value) > MAX_FILE_NAME_LENGTH:
        raise ValueError(f"file_name is longer than {MAX_FILE_NAME_LENGTH} characters")
    if "\x00" in value or any(ord(char) < 32 for char in value):
        raise ValueError("file_name contains a control character (NUL, newline, ...)")
    if "/" in value or "\\" in value:
        raise ValueError("file_name must be a base name without '/' or '\\'")
    if value == "." or ".." in value:
        raise ValueError("file_name must not be '.' or contain '..'")
    return value


def file_suffix(file_name: str) -> str:
    """Return the last suffix in lowercase ('.bin'), or '' when the name has none."""
    return PurePosixPath(file_name).suffix.lower()


def check_allowed_suffix(file_name: str, allowed: list[str]) -> None:
    suffix = file_suffix(file_name)
    if suffix not in allowed:
        shown = suffix or "no suffix"
        raise ValueError(
            f"file type {shown!r} of {file_name!r} is not allowed; allowed: {', '.join(allowed)}"
        )


def check_source_url(value: str) -> str:
    """Return the URL stripped of surrounding spaces if it is an absolute http(s) URL."""
    text = value.strip()
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"file_path is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() for char in text):
        raise ValueError("file_path must not contain spaces; percent-encode them as %20")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise ValueError(f"file_path is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("file_path must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("file_path has no host name")
    return text


def file_name_from_url(url: str) -> str | None:
    """Return the last path segment of a URL, or None when it has none."""
    name = PurePosixPath(urlsplit(url).path).name
    return name or None
