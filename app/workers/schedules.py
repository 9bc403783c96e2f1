"""The schedule dispatcher as the worker calls it: each minute, or as a job enqueued by name."""

import logging
from datetime import datetime
from typing import Any

from app.config import Settings
from app.services.dispatch import dispatch_due_schedules
from app.timeutil import to_utc, utc_now

logger = logging.getLogger(__name__)


async def dispatch_schedules(ctx: dict[str, Any], now: datetime | None = None) -> int:
    """Queue the downloads of every schedule due at `now` (default: the clock).

    Returns the number of runs this call claimed. Tests pass `now` to drive the clock.
    """
    settings: Settings = ctx["settings"]
    results = await dispatch_due_schedules(settings, ctx["redis"], to_utc(now) if now else utc_now())
    if results:
        logger.info("schedule dispatcher claimed %d runs", len(results))
    return len(results)
