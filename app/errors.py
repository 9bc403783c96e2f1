"""Service errors. Each carries an HTTP status and a stable code; one handler turns them into JSON."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "unavailable"


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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error_handler)
