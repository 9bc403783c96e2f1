"""FastAPI dependencies for the objects the app opens at start (settings, queue, storage)."""

from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request

from app.config import Settings
from app.storage import Storage


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_queue(request: Request) -> ArqRedis:
    return request.app.state.queue


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
QueueDep = Annotated[ArqRedis, Depends(get_queue)]
StorageDep = Annotated[Storage, Depends(get_storage)]
