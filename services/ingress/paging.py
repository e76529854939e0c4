"""Twilio's list envelope: ``{<key>: [...], meta: {...}}`` with an opaque ``PageToken``."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from .errors import ApiError

__all__ = ["paginate"]

T = TypeVar("T")


def _token(offset: int) -> str:
    return "PT" + base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token[2:] + "=" * (-len(token[2:]) % 4)).decode()
        if not token.startswith("PT") or not raw.startswith("o"):
            raise ValueError(token)
        return int(raw[1:])
    except ValueError as exc:
        raise ApiError(400, 20001, "Invalid PageToken") from exc


def paginate(items: Sequence[T], render: Callable[[T], dict[str, Any]], key: str, url: str, size: int, page: int,
             token: str, filters: dict[str, str] | None = None) -> dict[str, Any]:
    offset = _offset(token) if token else page * size
    chunk = items[offset: offset + size]
    base = dict(filters or {})

    def link(p: int, tok: str | None) -> str:
        query = {**base, "PageSize": str(size), "Page": str(p)}
        if tok:
            query["PageToken"] = tok
        return f"{url}?{urlencode(query)}"

    has_next = offset + size < len(items)
    return {
        key: [render(item) for item in chunk],
        "meta": {
            "page": page,
            "page_size": size,
            "first_page_url": link(0, None),
            "previous_page_url": link(page - 1, _token(max(offset - size, 0))) if offset > 0 else None,
            "url": link(page, token or None),
            "next_page_url": link(page + 1, _token(offset + size)) if has_next else None,
            "key": key,
        },
    }
