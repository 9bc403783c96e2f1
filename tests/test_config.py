"""Settings read from the environment."""

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_file_types_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_FILE_TYPES", "bin, SWI,.tgz")
    assert Settings().allowed_file_types == [".bin", ".swi", ".tgz"]


def test_file_types_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_FILE_TYPES", '[".iso", "img"]')
    assert Settings().allowed_file_types == [".iso", ".img"]


@pytest.mark.parametrize("value", ["", ".tar.gz", "a/b", "."])
def test_file_types_rejects_invalid(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ALLOWED_FILE_TYPES", value)
    with pytest.raises(ValidationError):
        Settings()


def test_retry_delays_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOWNLOAD_RETRY_BASE_DELAY_S", "10")
    monkeypatch.setenv("DOWNLOAD_RETRY_MAX_DELAY_S", "1")
    with pytest.raises(ValidationError, match="DOWNLOAD_RETRY_MAX_DELAY_S"):
        Settings()


def test_log_level_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", " debug ")
    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize("value", ["TRACE", "verbose", ""])
def test_log_level_rejects_unknown(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)
    with pytest.raises(ValidationError, match="LOG_LEVEL"):
        Settings()
