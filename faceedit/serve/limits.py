"""Request limits, before and while a body arrives.

- bytes: an upload over the byte limit is refused from its Content-Length before any of the body is read, and
  a body without one (chunked) as soon as it passes the limit while streaming in (413);
- time: the whole body must arrive within body_timeout_s of the app's first read of it (408), so a client
  that sends its headers and then trickles the body cannot hold a request open for long (a read never fails
  on a message already there: a busy server is not the client's fault); and once the server is
  draining (SIGTERM), a body still arriving is answered (503) within DRAIN_GRACE_S instead of keeping shutdown
  waiting, however steadily it trickles;
- type: photos go in as the raw body; a multipart form or another content type is refused (415) with what to
  send instead.
The pixel limit is checked from the image header, before decoding (service.FaceService)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.requests import Request

from faceedit.serve.http_errors import RETRY_AFTER_S, ApiError, error_response, request_id

# what the upload routes read as a raw photo: image/*, the generic binary type, none at all, and what
# `curl --data-binary @me.jpg URL` sends when no -H 'Content-Type: ...' is given
RAW_TYPES = ("application/octet-stream", "application/x-www-form-urlencoded", "")
EXAMPLE = "curl --data-binary @me.jpg -H 'Content-Type: image/jpeg' 'http://HOST/v1/edit?set=smiling=0'"
POLL_S = 0.25  # how often a body wait looks at whether the server is draining
DRAIN_GRACE_S = 1.0  # once draining, how long a body may still take to arrive (an upload in full flow finishes)


@dataclass
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024
    body_timeout_s: float = 30.0   # the whole body, from the start of the request


def too_big(limit: int, size: str) -> ApiError:
    return ApiError(413, f"the upload is {size}, over this server's {limit / 2**20:g} MB limit", "too_big",
                    {"Connection": "close"}, field="body")


def check_image_type(content_type: str | None):
    """415 unless the request says it carries a raw photo (or says nothing)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media.startswith("image/") or media in RAW_TYPES:
        return
    if media.startswith("multipart/"):
        raise ApiError(415, "multipart form uploads are not read: send the raw image bytes as the request body, "
                            f"e.g. {EXAMPLE}", "unsupported_media_type", field="content-type")
    raise ApiError(415, f"a photo cannot come as {media!r}: send the raw image bytes as the request body with "
                        "Content-Type image/jpeg, image/png, image/webp ... or application/octet-stream, e.g. "
                        f"{EXAMPLE}", "unsupported_media_type", field="content-type")


class BodyLimits:
    """Pure ASGI, around the app: every request body (uploads and JSON alike) within max_upload_bytes and
    within body_timeout_s of its first read; while the server drains (`draining()` true), a body still
    awaited ends at once in 503. Raises ApiError from `receive`, which the routes and FastAPI's own body
    parsing pass on to the app's error handlers."""

    def __init__(self, app, limits: Limits, draining=lambda: False):
        self.app, self.limits, self.draining = app, limits, draining
        self._drain_seen: float | None = None

    def _stopping(self, loop) -> bool:
        """Draining for more than DRAIN_GRACE_S (counted from when a body read first saw it)."""
        if not self.draining():
            return False
        if self._drain_seen is None:
            self._drain_seen = loop.time()
        return loop.time() - self._drain_seen >= DRAIN_GRACE_S

    def _refuse_if_stopping(self, loop):
        if self._stopping(loop):
            raise ApiError(503, "the server is stopping: send the request again", "stopping",
                           {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.max_upload_bytes
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n < 0:
                    err = ApiError(400, f"bad Content-Length header: {v[:40].decode('latin-1')!r}", "bad_request",
                                   {"Connection": "close"}, field="content-length")
                elif n > limit:
                    err = too_big(limit, f"{n / 2**20:.1f} MB")
                else:
                    break
                response = error_response(err.status, err.message, err.kind, err.headers, err.field, request_id(scope))
                return await response(scope, receive, send)
        loop = asyncio.get_running_loop()
        state = {"bytes": 0, "whole": False, "deadline": None}

        async def limited_receive():
            if state["whole"]:  # after the body: only http.disconnect, whenever it comes
                return await receive()
            if state["deadline"] is None:
                state["deadline"] = loop.time() + self.limits.body_timeout_s
            message = await self._next(receive, state["deadline"], loop)
            if message["type"] == "http.request":
                state["bytes"] += len(message.get("body", b""))
                if state["bytes"] > limit:
                    raise too_big(limit, f"over {limit / 2**20:g} MB")
                state["whole"] = not message.get("more_body", False)
                if not state["whole"]:
                    self._refuse_if_stopping(loop)  # a steady trickle is cut too, not only a stalled one
            return message
        await self.app(scope, limited_receive, send)

    async def _next(self, receive, deadline: float, loop):
        task = asyncio.ensure_future(receive())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(0.0, min(deadline - loop.time(), POLL_S)))
                if done:
                    return task.result()
                self._refuse_if_stopping(loop)
                if loop.time() >= deadline:
                    raise ApiError(408, f"the request body did not arrive within {self.limits.body_timeout_s:g} s: "
                                        "send it whole, at once", "body_timeout", {"Connection": "close"}, field="body")
        finally:
            if not task.done():
                task.cancel()


async def read_upload(request: Request) -> bytes:
    """The request body, in memory; its size and time limits are BodyLimits's (around the app)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    if not body:
        raise ApiError(400, "no photo in the request: send the image bytes as the request body, e.g. " + EXAMPLE,
                       "bad_image", field="body")
    return bytes(body)
