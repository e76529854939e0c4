"""Reading Twilio-style form bodies and list paging parameters."""

from __future__ import annotations

from aiohttp import web

from .errors import ApiError

__all__ = ["form", "page_params"]


async def form(request: web.Request, limit: int) -> dict[str, str]:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, 20413, f"Request body exceeds {limit} bytes")
    try:
        data = await request.post()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, 20413, f"Request body exceeds {limit} bytes") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)}


def page_params(request: web.Request) -> tuple[int, int, str]:
    """``PageSize`` (1–1000, default 50), ``Page`` (>= 0) and the opaque ``PageToken``."""
    try:
        size = int(request.query.get("PageSize", "50"))
        page = int(request.query.get("Page", "0"))
    except ValueError as exc:
        raise ApiError(400, 20001, "PageSize and Page must be integers") from exc
    if not 1 <= size <= 1000:
        raise ApiError(400, 20001, "PageSize must be between 1 and 1000")
    if page < 0:
        raise ApiError(400, 20001, "Page must be >= 0")
    return size, page, request.query.get("PageToken", "")
