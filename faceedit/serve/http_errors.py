"""One JSON error per bad request: {"error": "...", "status": 422, "kind": "...", "field": "seed" or null,
"request_id": "..."}, in the engine's wording, with the request id in the X-Request-ID header too.

Every request has an id: the client's X-Request-ID when it is a plain token (1..128 of A-Z a-z 0-9 . _ : -),
else a new one; RequestIdMiddleware puts it on every answer, errors or not. The engine's exceptions carry
one-line messages, and `field` (the API name of the option they concern) where they know it; this module maps
each to its HTTP status. A 5xx is logged with the request id, the route and the traceback; nothing of the
request's body (no photo byte) is echoed back or logged."""
from __future__ import annotations

import asyncio
import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from faceedit.engine.errors import (BatcherClosed, DecompressionBomb, EngineError, ImageError, NoFaceFound,
                                    Overloaded)
from faceedit.serve.service import PhotoTooSmall, RequestTimeout

log = logging.getLogger("faceedit.serve")
RETRY_AFTER_S = 1
REQUEST_ID_HEADER = "X-Request-ID"
SCOPE_KEY = "faceedit.request_id"
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ApiError(StarletteHTTPException):
    """An answer that is an error. An HTTPException, so FastAPI passes it through as it is even when it is
    raised while FastAPI reads a body (limits.BodyLimits raises it from `receive`)."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None, field: str | None = None):
        super().__init__(status, message, headers)
        self.status, self.message, self.kind, self.field = status, message, kind, field
        self.headers = dict(headers or {})
        self.cause: BaseException | None = None  # the unexpected exception behind a 500: logged with its traceback


def request_id(where) -> str | None:
    """The request id of a Request or an ASGI scope (set by RequestIdMiddleware)."""
    scope = getattr(where, "scope", where)
    return scope.get(SCOPE_KEY) if isinstance(scope, dict) else None


def error_body(status: int, message: str, kind: str, field: str | None = None, rid: str | None = None) -> dict:
    return {"error": message, "status": status, "kind": kind, "field": field, "request_id": rid}


def error_response(status: int, message: str, kind: str, headers: dict | None = None, field: str | None = None,
                   request_id: str | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    return JSONResponse(error_body(status, message, kind, field, request_id), status_code=status, headers=headers)


def classify(e: BaseException, field: str | None = None, aliases: dict | None = None) -> ApiError:
    """An exception from the service -> the ApiError the client gets. field: the request field the caller was
    checking, when the exception does not name one itself (an engine error's `field`); aliases: the engine's
    name -> this route's, where they differ (/v1/samples calls the engine's "set" "attributes")."""
    if isinstance(e, ApiError):
        return e
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    own = getattr(e, "field", None)
    field = (aliases or {}).get(own, own) or field
    if isinstance(e, DecompressionBomb):
        return ApiError(413, msg, "too_many_pixels", field="body")
    if isinstance(e, PhotoTooSmall):
        return ApiError(422, msg, "too_small", field="body")
    if isinstance(e, ImageError):
        return ApiError(400, msg, "bad_image", field="body")
    if isinstance(e, NoFaceFound):
        return ApiError(422, msg, "no_face", field=field)
    if isinstance(e, EngineError):
        return ApiError(422, msg, "bad_request", field=field)
    if isinstance(e, (Overloaded, BatcherClosed)):
        return ApiError(503, msg, "busy", {"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(e, RequestTimeout):
        return ApiError(504, msg, "timeout")
    if isinstance(e, ClientDisconnect):
        return ApiError(400, "the client went away before the request was whole", "client_gone")
    err = ApiError(500, f"internal error ({type(e).__name__}): see the server log under this request id", "internal")
    err.cause = e
    return err


def log_server_error(err: ApiError, scope: dict, exc: BaseException | None = None):
    """A 5xx in the log, one line: method, route, status, kind, message, request id. A 500 (a bug) at ERROR with
    the traceback of what caused it; a 503 or 504 (busy, stopping, too slow: the server working as designed
    under load) at WARNING, without one. Never the query string or the body (they hold what the user sent)."""
    cause = exc or err.cause
    route = getattr(scope.get("route"), "path", None) or scope.get("path", "?")
    bug = err.status == 500
    log.log(logging.ERROR if bug else logging.WARNING, "%s %s -> %d %s: %s (request %s)", scope.get("method", "?"),
            route, err.status, err.kind, err.message, request_id(scope),
            exc_info=(type(cause), cause, cause.__traceback__) if bug and cause is not None else None)


def validation_error(e: RequestValidationError) -> ApiError:
    """FastAPI's own validation (query parameters, JSON bodies) -> one line naming the field."""
    errs = e.errors()
    first = errs[0] if errs else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "header", "path"))
    msg = str(first.get("msg", "invalid value"))
    return ApiError(422, f"{where}: {msg}" if where else msg, "bad_request", field=where or None)


def install(app: FastAPI):
    @app.exception_handler(ApiError)
    async def _api(request: Request, e: ApiError):
        if e.status >= 500:
            log_server_error(e, request.scope)
        return error_response(e.status, e.message, e.kind, e.headers, e.field, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        err = validation_error(e)
        return error_response(err.status, err.message, err.kind, None, err.field, request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed", 413: "too_big"}.get(e.status_code, "http")
        return error_response(e.status_code, str(e.detail), kind, getattr(e, "headers", None), None,
                              request_id(request))


class RequestIdMiddleware:
    """Pure ASGI, innermost of the app's middleware: gives every HTTP request its id (scope[SCOPE_KEY]) and
    every answer the X-Request-ID header; turns any exception that escapes the routes into the JSON error of
    its kind (a 500, logged with its traceback, for a bug), so no answer is Starlette's plain-text 500; and
    answers a request the server cancels (uvicorn, past its drain time) with a JSON 503 when nothing was
    sent yet."""

    def __init__(self, app):
        self.app = app

    @staticmethod
    def incoming(scope) -> str | None:
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                try:
                    text = v.decode("ascii")
                except UnicodeDecodeError:
                    return None
                return text if _PLAIN_ID.fullmatch(text) else None
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = scope[SCOPE_KEY] = self.incoming(scope) or uuid.uuid4().hex
        header = (b"x-request-id", rid.encode("ascii"))
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [header]}
            await send(message)

        async def answer(err: ApiError):
            await error_response(err.status, err.message, err.kind, err.headers, err.field, rid)(scope, receive, send)
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not started:  # uvicorn's drain time is over: say so in JSON, not a plain-text 500
                try:
                    await answer(ApiError(503, "the server is stopping: send the request again", "stopping",
                                          {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"}))
                except Exception:  # the connection may be gone too
                    pass
            raise
        except Exception as e:
            err = classify(e)
            if err.status >= 500:
                log_server_error(err, scope, e)
            if not started:
                await answer(err)
