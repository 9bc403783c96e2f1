"""API keys: created once, stored as a SHA-256 digest, each bound to one organization."""

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader

from app.errors import Forbidden, Unauthorized
from app.models.documents import ApiKey
from app.timeutil import utc_now

KEY_PREFIX = "osi_"
# Keys carry 256 random bits, so a plain SHA-256 digest is enough: there is nothing to brute-force.
_KEY_RANDOM_BYTES = 32
_SHOWN_PREFIX_LENGTH = 10

authorization_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="The API key, as `Authorization: <key>` or `Authorization: Bearer <key>`.",
)

# OpenAPI description of the 401 response of every route that needs a key.
UNAUTHORIZED_RESPONSE = {
    401: {
        "description": "The API key is missing, unknown or revoked.",
        "content": {
            "application/json": {
                "example": {
                    "detail": "unknown or revoked API key: check the key or create a new one",
                    "code": "unauthorized",
                }
            }
        },
    }
}


@dataclass(frozen=True)
class Caller:
    """The sender of a request: its API key's organization and id."""

    organization: str
    api_key_id: str

    @property
    def actor(self) -> str:
        return f"apikey:{self.api_key_id}"


def digest_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(organization: str, name: str, key: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key for `organization`; return the record and the key text (shown only once)."""
    key_text = key if key is not None else KEY_PREFIX + secrets.token_urlsafe(_KEY_RANDOM_BYTES)
    record = ApiKey(
        organization=organization,
        name=name,
        key_digest=digest_key(key_text),
        key_prefix=key_text[:_SHOWN_PREFIX_LENGTH],
    )
    await record.insert()
    return record, key_text


async def revoke_api_key(key_id: str) -> ApiKey | None:
    from beanie import PydanticObjectId
    from bson.errors import InvalidId

    try:
        record = await ApiKey.get(PydanticObjectId(key_id))
    except InvalidId:
        return None
    if record is None:
        return None
    if record.revoked_time is None:
        record.revoked_time = utc_now()
        await record.save()
    return record


def _key_from_header(value: str) -> str:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    return value.strip()


async def get_caller(
    authorization: Annotated[str | None, Security(authorization_header)] = None,
) -> Caller:
    """Resolve the Authorization header to a caller, or raise 401."""
    if not authorization or not authorization.strip():
        raise Unauthorized(
            "missing API key: send it as 'Authorization: <key>' or 'Authorization: Bearer <key>'"
        )
    record = await ApiKey.find_one(ApiKey.key_digest == digest_key(_key_from_header(authorization)))
    if record is None or record.revoked_time is not None:
        raise Unauthorized("unknown or revoked API key: check the key or create a new one")
    return Caller(organization=record.organization, api_key_id=str(record.id))


CallerDep = Annotated[Caller, Depends(get_caller)]


def check_organization(caller: Caller, organization: str | None) -> None:
    """Raise 403 when a body names an organization other than the caller's."""
    if organization is not None and organization != caller.organization:
        raise Forbidden(
            f"organization {organization!r} in the body differs from the API key's organization "
            f"{caller.organization!r}: use the key's organization or a key of {organization!r}"
        )
