"""The append-only audit trail."""

import logging
from typing import Any

from beanie import PydanticObjectId

from app.models.documents import AuditEvent

logger = logging.getLogger(__name__)


async def record_event(
    organization: str,
    action: str,
    actor: str,
    *,
    image_record_id: PydanticObjectId | None = None,
    img_id: str | None = None,
    job_id: str | None = None,
    schedule_id: str | None = None,
    message: str = "",
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        organization=organization,
        action=action,
        actor=actor,
        image_record_id=image_record_id,
        img_id=img_id,
        job_id=job_id,
        schedule_id=schedule_id,
        message=message,
        details=details,
    )
    await event.insert()
    logger.info(
        "audit %s organization=%s image=%s job=%s schedule=%s %s", action, organization,
        image_record_id, job_id, schedule_id, message,
    )
    return event
