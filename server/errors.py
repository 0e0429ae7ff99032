"""The one error shape of every 4xx and 5xx answer (docs/api.md, "Errors"):

    {"error": {"code": "unknown_emotion", "message": "...", "field": "settings.emotion"}}

`ApiError` is raised by routes (an `HTTPException`, so FastAPI passes it through its own request
parsing); `install_error_handlers` turns it, FastAPI's validation errors, `core`'s `FlowVQError`s
and anything unexpected into that shape. Unexpected errors are logged with their traceback and
answered with a generic 500 that leaks nothing.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.errors import FlowVQError

__all__ = [
    "ApiError",
    "INTERNAL_MESSAGE",
    "error_body",
    "error_response",
    "error_code",
    "flowvq_error",
    "validation_message",
    "install_error_handlers",
]

LOG = logging.getLogger("flowvq.server")
INTERNAL_MESSAGE = "internal server error; the server log has the details"

_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid_request", 429: "too_many_requests", 503: "unavailable",
}

# Starlette's own answers ("Not Found") said as sentences a person can act on.
_MESSAGES = {
    404: "no such path on this server; the API is under /v1 (see docs/api.md)",
    405: "this path does not accept that HTTP method (see docs/api.md)",
}


class ApiError(HTTPException):
    """An answer in the error shape: HTTP ``status``, stable snake_case ``code``, a ``message`` a
    person can act on, and optionally the offending input ``field``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code, self.message, self.field = code, message, field


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message"[, "field"]}}``."""
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(error: ApiError) -> JSONResponse:
    """The JSON response for an `ApiError`."""
    return JSONResponse(error_body(error.code, error.message, error.field), status_code=error.status_code,
                        headers=error.headers)


def error_code(exc: FlowVQError) -> str:
    """The wire code of a `core` error: its class's own ``code`` (`core.errors.FlowVQError`)."""
    return type(exc).code


def flowvq_error(exc: FlowVQError, field: str | None = None, status: int = 422) -> ApiError:
    """The `ApiError` (422 by default) that answers a `core` error caused by the request's ``field``."""
    return ApiError(status, error_code(exc), str(exc), field)


def validation_message(errors: list[dict[str, Any]], prefix: str = "") -> tuple[str, str]:
    """(field, message) from the first of pydantic's errors; ``prefix`` names the part it came from."""
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join([prefix, *loc] if prefix else loc) or (prefix or "request")
    if first.get("type") == "extra_forbidden":
        return field, f"unknown key {loc[-1]!r} in {prefix or 'the request'}; see docs/api.md for the accepted keys"
    if first.get("type") == "missing":
        return field, f"{field} is required"
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, (int, float, str, bool)) and len(repr(value)) < 80 else ""
    return field, f"{field}: {first.get('msg', 'invalid value')}{shown}"


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = _MESSAGES.get(exc.status_code, exc.detail if isinstance(exc.detail, str) else code.replace("_", " "))
    return error_response(ApiError(exc.status_code, code, message, headers=exc.headers))


async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    field, message = validation_message(list(exc.errors()))
    return error_response(ApiError(422, "invalid_request", message, field))


async def _flowvq(request: Request, exc: FlowVQError) -> JSONResponse:
    return error_response(flowvq_error(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    LOG.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal", INTERNAL_MESSAGE), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(FlowVQError, _flowvq)
    app.add_exception_handler(Exception, _unexpected)
