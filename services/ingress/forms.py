"""Reading Twilio-style requests: form-encoded bodies (size-capped) and list paging parameters."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDictProxy

from .errors import ApiError
from .paging import PageRequest, parse_cursor

__all__ = ["form", "form_values", "page_request", "required"]


async def _post(request: web.Request, limit: int) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, 20413, f"Request body exceeds {limit} bytes")
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge as exc:  # chunked bodies: aiohttp counts while reading
        raise ApiError(413, 20413, f"Request body exceeds {limit} bytes") from exc


async def form(request: web.Request, limit: int) -> dict[str, str]:
    """The form body as name → value (the last value of a repeated name); over ``limit`` bytes → 413."""
    data = await _post(request, limit)
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def form_values(request: web.Request, limit: int, name: str) -> list[str]:
    """Every value of a repeated parameter (``TestUsers=a&TestUsers=b``, as twilio-python sends lists)."""
    data = await _post(request, limit)
    return [v for v in data.getall(name, []) if isinstance(v, str)]


def required(data: dict[str, str], name: str) -> str:
    value = data.get(name, "")
    if value == "":
        raise ApiError(400, 20001, f"Missing required parameter {name} in the post body")
    return value


def page_request(request: web.Request, key_types: tuple[type, ...]) -> PageRequest:
    """``PageSize`` (1–1000, default 50), ``Page`` (>= 0) and the ``PageToken`` for an index of ``key_types``."""
    try:
        size = int(request.query.get("PageSize", "50"))
        page = int(request.query.get("Page", "0"))
    except ValueError as exc:
        raise ApiError(400, 20001, "PageSize and Page must be integers") from exc
    if not 1 <= size <= 1000:
        raise ApiError(400, 20001, "PageSize must be between 1 and 1000")
    if page < 0:
        raise ApiError(400, 20001, "Page must be >= 0")
    token = request.query.get("PageToken", "")
    return PageRequest(size, page, token, parse_cursor(token, key_types))
