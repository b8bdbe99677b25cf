"""Request limits: an upload over the byte limit is refused from its Content-Length before any of the body
is read, and a body without one (chunked) is refused as soon as it passes the limit while streaming in; the
pixel limit is the engine's (imageio checks the header's dimensions before decoding)."""
from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from faceedit.serve.http_errors import ApiError


@dataclass
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024


def too_big(limit: int, size: str) -> ApiError:
    return ApiError(413, f"the upload is {size}, over the {limit / 2**20:g} MB limit (--max-upload-mb)",
                    "too_big")


async def read_upload(request: Request, limit: int) -> bytes:
    """The request body, in memory, at most limit bytes; ApiError 413 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, f"bad Content-Length header: {declared!r}", "bad_request") from None
        if n > limit:
            raise too_big(limit, f"{n / 2**20:.1f} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big(limit, f"over {limit / 2**20:g} MB")
    if not body:
        raise ApiError(400, "no photo in the request: send the image file as the request body", "bad_image")
    return bytes(body)
