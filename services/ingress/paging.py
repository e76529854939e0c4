"""Twilio's list envelope ``{<key>: [...], meta: {...}}`` with keyset paging behind an opaque ``PageToken``.

Every list is an ordered index of sort keys (tuples such as
``(-date_created, sid)``). A ``PageToken`` names the key a page starts after
(``PA…``, next pages) or ends before (``PB…``, previous pages), like Twilio's
own tokens. Paging by key instead of by offset keeps pages stable while new
executions arrive, and costs ``O(log n + page)`` on a sorted index however deep
the client pages. ``Page`` is only echoed back ("simply for client state").
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from .errors import ApiError

__all__ = ["Cursor", "Index", "PageRequest", "Window", "envelope", "parse_cursor", "select", "window_of"]

Key = tuple[Any, ...]


class Index(Protocol):
    """What ``select`` needs of a sorted index (``sortedcontainers.SortedList`` fits)."""

    def irange(self, minimum: Key | None = None, maximum: Key | None = None,
               inclusive: tuple[bool, bool] = (True, True), reverse: bool = False) -> Iterable[Key]: ...


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page starts: strictly after ``key`` (forward) or strictly before it (backward)."""

    forward: bool
    key: Key

    def token(self) -> str:
        raw = base64.urlsafe_b64encode(orjson.dumps(list(self.key))).decode().rstrip("=")
        return ("PA" if self.forward else "PB") + raw


def parse_cursor(token: str, types: tuple[type, ...]) -> Cursor | None:
    """Decode a ``PageToken`` whose key has these element ``types``; a malformed one is a 400 (20001)."""
    if not token:
        return None
    try:
        if token[:2] not in ("PA", "PB"):
            raise ValueError(token)
        body = token[2:]
        key = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(key, list) or len(key) != len(types) or not all(map(_fits, key, types)):
            raise ValueError(token)
    except ValueError as exc:  # includes binascii.Error and orjson.JSONDecodeError
        raise ApiError(400, 20001, "Invalid PageToken") from exc
    return Cursor(token.startswith("PA"), tuple(key))


def _fits(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``PageSize`` (1–1000), ``Page`` (client state) and the decoded ``PageToken``."""

    size: int
    page: int
    token: str
    cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class Window:
    keys: list[Key]
    next: Cursor | None
    previous: Cursor | None


def select(index: Index, request: PageRequest, accept: Callable[[Key], bool] = lambda _k: True,
           low: Key | None = None, high: Key | None = None) -> Window:
    """One page of ``index`` between ``low`` and ``high`` (inclusive) holding only keys ``accept`` takes.

    ``accept`` filters what the index order cannot (e.g. ``Status``); it is
    called at most for the keys the page spans plus the ones it skips.
    """
    size, cursor = request.size, request.cursor
    if cursor is None or cursor.forward:
        start, inclusive_start = (low, True) if cursor is None else (_max(low, cursor.key), cursor.key != _max(low, cursor.key))
        keys: list[Key] = []
        for key in index.irange(start, high, inclusive=(inclusive_start, True)):
            if accept(key):
                keys.append(key)
                if len(keys) > size:
                    break
        more = len(keys) > size
        keys = keys[:size]
        return Window(keys, Cursor(True, keys[-1]) if more and keys else None,
                      Cursor(False, keys[0]) if cursor is not None and keys else None)
    end = _min(high, cursor.key)
    backwards: list[Key] = []
    for key in index.irange(low, end, inclusive=(True, end != cursor.key), reverse=True):
        if accept(key):
            backwards.append(key)
            if len(backwards) > size:
                break
    more = len(backwards) > size
    keys = list(reversed(backwards[:size]))
    return Window(keys, Cursor(True, keys[-1]) if keys else None, Cursor(False, keys[0]) if more and keys else None)


def window_of(keys: Sequence[Key], request: PageRequest) -> Window:
    """The page from keys a store read for ``request``: up to ``size + 1`` keys in list order, starting after
    the cursor (forward) or ending before it (backward); the extra key only says there is another page."""
    size, cursor = request.size, request.cursor
    if cursor is None or cursor.forward:
        page = list(keys[:size])
        more = len(keys) > size
        return Window(page, Cursor(True, page[-1]) if more and page else None,
                      Cursor(False, page[0]) if cursor is not None and page else None)
    page = list(keys[-size:]) if size else []
    more = len(keys) > size
    return Window(page, Cursor(True, page[-1]) if page else None, Cursor(False, page[0]) if more and page else None)


def _max(a: Key | None, b: Key) -> Key:
    return b if a is None or b > a else a


def _min(a: Key | None, b: Key) -> Key:
    return b if a is None or b < a else a


def envelope(key: str, items: Sequence[dict[str, Any]], window: Window, url: str, request: PageRequest,
             filters: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``{<key>: [...], meta: {...}}`` body; every URL is absolute and carries the filters."""
    base = dict(filters or {})

    def link(page: int, cursor: Cursor | str | None) -> str:
        query = {**base, "PageSize": str(request.size), "Page": str(page)}
        token = cursor.token() if isinstance(cursor, Cursor) else cursor
        if token:
            query["PageToken"] = token
        return f"{url}?{urlencode(query)}"

    return {
        key: list(items),
        "meta": {
            "page": request.page,
            "page_size": request.size,
            "first_page_url": link(0, None),
            "previous_page_url": link(max(request.page - 1, 0), window.previous) if window.previous else None,
            "url": link(request.page, request.token or None),
            "next_page_url": link(request.page + 1, window.next) if window.next else None,
            "key": key,
        },
    }
