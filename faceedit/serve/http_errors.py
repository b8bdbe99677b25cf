"""One JSON error per bad request, in the CLI's wording: {"error": "...", "status": 422, "kind": "..."}.

The engine's exceptions already carry one-line messages (the CLI prints them as they are); this module only
maps each to its HTTP status. Nothing else is echoed back: no traceback, no request data."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from faceedit.engine.errors import (BatcherClosed, DecompressionBomb, EngineError, ImageError, NoFaceFound,
                                    Overloaded)
from faceedit.serve.service import RequestTimeout

log = logging.getLogger("faceedit.serve")
RETRY_AFTER_S = 1


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, "kind": kind}, status_code=status, headers=headers)


def classify(e: BaseException) -> ApiError:
    """An exception from the service -> the ApiError the client gets."""
    if isinstance(e, ApiError):
        return e
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, DecompressionBomb):
        return ApiError(413, msg, "too_many_pixels")
    if isinstance(e, ImageError):
        return ApiError(400, msg, "bad_image")
    if isinstance(e, NoFaceFound):
        return ApiError(422, msg, "no_face")
    if isinstance(e, EngineError):
        return ApiError(422, msg, "bad_request")
    if isinstance(e, (Overloaded, BatcherClosed)):
        return ApiError(503, msg, "busy", {"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(e, RequestTimeout):
        return ApiError(504, msg, "timeout")
    return ApiError(500, f"internal error ({type(e).__name__}): see the server log", "internal")


def install(app: FastAPI):
    @app.exception_handler(ApiError)
    async def _api(request: Request, e: ApiError):
        return error_response(e.status, e.message, e.kind, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return error_response(422, f"{where}: {first.get('msg', 'invalid value')}" if where else
                              str(first.get("msg", "invalid request")), "bad_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http")
        return error_response(e.status_code, str(e.detail), kind, getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _other(request: Request, e: Exception):
        err = classify(e)
        if err.status == 500:  # a bug: log the traceback (never the request body), answer one line
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(err.status, err.message, err.kind, err.headers)
