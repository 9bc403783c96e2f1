"""Masking of secrets before settings are shown: API keys, and credentials inside service URLs."""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from app.config import Settings

MASK = "****"
# A setting whose name contains one of these words is shown as MASK whatever its value.
SECRET_NAME_WORDS = ("key", "password", "secret", "token")
# URL query parameters that carry credentials, e.g. redis-py's `?password=` and MongoDB's
# `tlsCertificateKeyFilePassword=`; compared case-insensitively as substrings.
SECRET_QUERY_WORDS = ("password", "secret", "token")


def mask_url(url: str) -> str:
    """Replace the password in the userinfo and secret query values of `url` with MASK.

    Works for MongoDB's multi-host form (`mongodb://u:p@h1,h2/?replicaSet=rs`) too, because
    only the netloc's text before its last `@` is treated as userinfo.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hosts}"
    query = "&".join(_mask_query_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_query_pair(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    if equals and any(word in name.lower() for word in SECRET_QUERY_WORDS):
        return f"{name}={MASK}"
    return pair


def _is_secret_name(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_NAME_WORDS)


def _display_value(name: str, value: Any) -> Any:
    """Return `value` as settings output shows it: secrets masked, paths as text, None kept."""
    if value is None:
        return None
    if isinstance(value, SecretStr) or _is_secret_name(name):
        return MASK
    if name.endswith("_url") and isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Path):
        return str(value)
    return value


def masked_settings(settings: Settings) -> list[tuple[str, Any, bool]]:
    """Return (environment variable, masked value, set explicitly) for every setting, in field order."""
    rows = []
    for name in type(settings).model_fields:
        value = _display_value(name, getattr(settings, name))
        rows.append((name.upper(), value, name in settings.model_fields_set))
    return rows
