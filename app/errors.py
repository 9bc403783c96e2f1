"""Service errors. Each carries an HTTP status and a stable code; one handler turns them into JSON."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ExecutionTimeout, NetworkTimeout, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Body of every error response except 422."""

    detail: str
    code: str
    field: str | None = None
    index: int | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Documented on every route, so clients and schema checks know the error shapes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be parsed (for example invalid JSON)."},
    401: _error("Missing, unknown or revoked API key."),
    403: _error("The body names another organization than the API key's."),
    404: _error("No such record in the API key's organization."),
    409: _error("The request conflicts with the record's state, e.g. a used img_id."),
    503: _error("MongoDB or Redis is unreachable; try again shortly."),
}


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, location: str = "body", index: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.location = location
        self.index = index  # position of the faulty record in a list body


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "too_large"


class UploadTimeout(ServiceError):
    status_code = 408
    code = "upload_timeout"


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    body: dict[str, object]
    if isinstance(exc, InvalidInput):
        # The same shape as FastAPI's own validation errors, so clients parse one format for 422.
        location: list[object] = [exc.location]
        if exc.index is not None:
            location.append(exc.index)
        if exc.field is not None:
            location.append(exc.field)
        body = {"detail": [{"type": exc.code, "loc": location, "msg": exc.message}]}
        return JSONResponse(body, status_code=exc.status_code)
    body = {"detail": exc.message, "code": exc.code}
    if exc.field is not None:
        body["field"] = exc.field
    if exc.index is not None:
        body["index"] = exc.index
    headers = {"WWW-Authenticate": "ApiKey"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: MongoDB unreachable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "detail": "the catalog database (MongoDB) is unreachable; nothing was changed by this "
            "request if it did not complete: try again shortly",
            "code": "database_unavailable",
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _queue_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: Redis unreachable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the job queue (Redis) is unreachable: try again shortly", "code": "queue_unavailable"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


# Pydantic puts this before the message of every ValueError a validator raises. The messages
# are written as full sentences for the client, so the prefix only adds noise.
_PYDANTIC_VALUE_ERROR_PREFIX = "Value error, "


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        message = str(error.get("msg", ""))
        if message.startswith(_PYDANTIC_VALUE_ERROR_PREFIX):
            error = {**error, "msg": message.removeprefix(_PYDANTIC_VALUE_ERROR_PREFIX)}
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # Connection-level failures only: a duplicate key or a bad query stays a bug (500).
    for error in (ConnectionFailure, ServerSelectionTimeoutError, NetworkTimeout, ExecutionTimeout):
        app.add_exception_handler(error, _database_error_handler)
    app.add_exception_handler(RedisConnectionError, _queue_error_handler)
    app.add_exception_handler(RedisTimeoutError, _queue_error_handler)
