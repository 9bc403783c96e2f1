"""UTC time helpers. MongoDB keeps milliseconds, so every stored time is cut to milliseconds."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema


def utc_now() -> datetime:
    return to_utc(datetime.now(UTC))


def to_utc(value: datetime) -> datetime:
    """Return `value` in UTC, cut to milliseconds; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_rfc3339(value: datetime) -> str:
    """Format as RFC 3339 in UTC with milliseconds and a `Z`, e.g. 2026-01-31T16:02:56.596Z."""
    return to_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_datetime(text: str, example: str) -> datetime:
    """Parse ISO 8601 text, `Z` included; a naive result stays naive. `example` goes in the error."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date-time: use {example}") from None


def _parse_utc(value: object) -> object:
    if isinstance(value, str):
        value = parse_iso_datetime(value, "RFC 3339, e.g. 2026-01-31T16:02:56.596Z")
    if isinstance(value, datetime):
        try:
            return to_utc(value)
        except OverflowError:
            # Year 1 with a positive offset, or year 9999 with a negative one, has no UTC time.
            raise ValueError(f"date-time {value.isoformat()} is out of range in UTC") from None
    return value


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_parse_utc),
    PlainSerializer(format_rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-01-31T16:02:56.596Z"}),
]
"""A date-time read with `Z`, an offset or naively as UTC, and written as RFC 3339 in UTC."""
