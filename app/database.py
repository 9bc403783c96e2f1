"""Connects Beanie to MongoDB, or to an in-memory database for the local run and the tests."""

import logging
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from app.config import Settings
from app.models.documents import DOCUMENT_MODELS

logger = logging.getLogger(__name__)

SERVER_SELECTION_TIMEOUT_MS = 5000


class DatabaseUnreachable(RuntimeError):
    pass


async def connect_database(settings: Settings) -> Any:
    """Initialise Beanie on the configured MongoDB (checked with a ping) or on memory; return the db."""
    if settings.mongodb_url is None:
        try:
            from app.memory_db import create_memory_database
        except ImportError as exc:
            raise DatabaseUnreachable(
                f"MONGODB_URL is not set and the in-memory catalog is not installed ({exc}): "
                "set MONGODB_URL, or install it with pip install 'os-image-service[local]'"
            ) from exc
        database = create_memory_database(settings.mongodb_database)
    else:
        client = await check_database(settings.mongodb_url)
        database = client[settings.mongodb_database]
    await init_beanie(database=database, document_models=DOCUMENT_MODELS)
    return database


async def init_database(database: Any) -> None:
    """Initialise Beanie on a database the caller made (the tests inject theirs here)."""
    await init_beanie(database=database, document_models=DOCUMENT_MODELS)


async def check_database(mongodb_url: str) -> AsyncMongoClient[Any]:
    """Return a client for `mongodb_url` once the server responds to a ping; otherwise raise DatabaseUnreachable."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        mongodb_url, tz_aware=True, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS
    )
    try:
        await client.admin.command("ping")
    except PyMongoError as exc:
        await client.close()
        raise DatabaseUnreachable(
            f"MongoDB at MONGODB_URL did not respond within {SERVER_SELECTION_TIMEOUT_MS} ms: "
            f"{exc}. Start MongoDB, or unset MONGODB_URL and REDIS_URL for the in-memory run."
        ) from exc
    return client
