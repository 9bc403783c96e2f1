"""Service settings, read once from environment variables (and an optional `.env` file)."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ALLOWED_FILE_TYPES = [
    ".bin", ".swi", ".out", ".tgz", ".gz", ".tar", ".iso", ".img", ".zip", ".pkg",
    ".qcow2", ".vmdk", ".ova", ".rpm", ".upg", ".spa", ".efi", ".xz", ".bz2",
]

# uvicorn's TRACE level would log each request's headers, API keys included, so it is left out.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Every setting the API and the worker read; the README lists them with their defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mongodb_url: str | None = Field(
        default=None,
        description="MongoDB connection URL. Unset: an in-memory catalog that is lost at exit.",
    )
    mongodb_database: str = Field(default="os_image", min_length=1)
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the job queue. Unset: an in-memory queue inside the process.",
    )
    queue_name: str = Field(default="os-image:downloads", min_length=1)

    storage_dir: Path = Field(default=Path("data/images"), description="Directory for image files.")
    # NoDecode: the value is split by the validator below, so "bin,swi" works as well as JSON.
    allowed_file_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_FILE_TYPES)
    )

    max_image_size_bytes: int = Field(default=16 * 1024**3, gt=0)
    download_connect_timeout_s: float = Field(default=10.0, gt=0)
    # Applies to each read from the socket, never to the whole transfer: an 8 GB image on a slow
    # link may take hours, but a source that sends nothing for this long is treated as stalled.
    download_read_timeout_s: float = Field(default=60.0, gt=0)
    download_max_redirects: int = Field(default=5, ge=0, le=20)
    download_max_attempts: int = Field(default=5, ge=1, le=50)
    download_retry_base_delay_s: float = Field(default=2.0, ge=0)
    download_retry_max_delay_s: float = Field(default=300.0, ge=0)
    download_chunk_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    progress_interval_s: float = Field(default=1.0, gt=0)
    # A client that sends no body bytes for this long is cut off; the bytes it sent are kept.
    upload_idle_timeout_s: float = Field(default=60.0, gt=0)
    # How long an upload request keeps its lease on the image before another request may take it over.
    upload_lease_s: float = Field(default=120.0, gt=0)
    # A running job renews its claim on the queue this often; a job whose worker died is run
    # again by another worker within this many seconds (plus the queue's poll delay).
    job_lease_s: float = Field(default=60.0, ge=5)
    # How often queued jobs that never reached Redis (or that Redis lost) are put on the queue.
    requeue_interval_s: float = Field(default=15.0, gt=0)
    worker_max_jobs: int = Field(default=4, ge=1, le=256)

    api_key: str | None = Field(
        default=None,
        description="Local run only: the API key to register for the default organization.",
    )
    default_organization: str = Field(default="default", min_length=1, max_length=25)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as plain text or as one JSON object per line."
    )
    # The worker writes a heartbeat key with a TTL of three intervals, so one missed write is
    # tolerated before /readyz stops counting the worker as alive.
    worker_heartbeat_interval_s: float = Field(default=10.0, gt=0, le=3600)
    worker_metrics_port: int = Field(
        default=9101, ge=0, le=65535,
        description="Port of the worker role's Prometheus /metrics server on HOST; 0 disables it.",
    )
    readiness_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Time each /readyz check may take."
    )

    @field_validator("allowed_file_types", mode="before")
    @classmethod
    def _split_file_types(cls, value: object) -> object:
        # Accept "bin,swi,.tgz" from the environment as well as a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("allowed_file_types")
    @classmethod
    def _normalise_file_types(cls, value: list[str]) -> list[str]:
        suffixes = []
        for raw in value:
            suffix = raw.strip().lower()
            if not suffix.startswith("."):
                suffix = "." + suffix
            if len(suffix) < 2 or "/" in suffix or "\\" in suffix or suffix.count(".") != 1:
                raise ValueError(
                    f"invalid file type {raw!r}: give a single suffix such as .bin or bin"
                )
            if suffix not in suffixes:
                suffixes.append(suffix)
        if not suffixes:
            raise ValueError("ALLOWED_FILE_TYPES is empty: give at least one suffix, e.g. .bin")
        return suffixes

    @field_validator("mongodb_url", "redis_url", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"invalid LOG_LEVEL {value!r}: use one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _check_retry_delays(self) -> "Settings":
        if self.download_retry_max_delay_s < self.download_retry_base_delay_s:
            raise ValueError(
                "DOWNLOAD_RETRY_MAX_DELAY_S must be at least DOWNLOAD_RETRY_BASE_DELAY_S"
            )
        return self

    @property
    def is_embedded(self) -> bool:
        """True when neither MongoDB nor Redis is configured: catalog and queue live in memory."""
        return self.mongodb_url is None and self.redis_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
