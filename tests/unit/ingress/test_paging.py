"""Keyset paging: pages are stable under inserts, tokens are opaque and validated, URLs carry the filters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from sortedcontainers import SortedList

from services.ingress.errors import ApiError
from services.ingress.paging import Cursor, PageRequest, envelope, parse_cursor, select


def _request(size: int, token: str = "", page: int = 0, types: tuple[type, ...] = (int,)) -> PageRequest:
    return PageRequest(size, page, token, parse_cursor(token, types))


def _walk_forward(index: SortedList, size: int) -> list[list[tuple[int]]]:
    pages, token = [], ""
    while True:
        window = select(index, _request(size, token))
        pages.append(window.keys)
        if window.next is None:
            return pages
        token = window.next.token()


def test_forward_pages_cover_every_key_once_in_order() -> None:
    index = SortedList((n,) for n in range(7))
    assert _walk_forward(index, 3) == [[(0,), (1,), (2,)], [(3,), (4,), (5,)], [(6,)]]


def test_an_exact_multiple_of_the_page_size_has_no_empty_last_page() -> None:
    index = SortedList((n,) for n in range(6))
    assert _walk_forward(index, 3) == [[(0,), (1,), (2,)], [(3,), (4,), (5,)]]


def test_a_page_token_survives_keys_inserted_before_it() -> None:
    index = SortedList((n * 10,) for n in range(6))
    first = select(index, _request(2))
    assert first.keys == [(0,), (10,)] and first.next is not None
    index.add((5,))  # arrives after page one was served (e.g. an older-sorting key)
    second = select(index, _request(2, first.next.token()))
    assert second.keys == [(20,), (30,)]


def test_previous_page_token_walks_back_to_the_same_page() -> None:
    index = SortedList((n,) for n in range(10))
    first = select(index, _request(4))
    second = select(index, _request(4, first.next.token(), page=1))  # type: ignore[union-attr]
    assert second.keys == [(4,), (5,), (6,), (7,)] and second.previous is not None
    back = select(index, _request(4, second.previous.token(), page=0))
    assert back.keys == first.keys and back.previous is None and back.next is not None


def test_the_filter_skips_keys_without_shortening_the_page() -> None:
    index = SortedList((n,) for n in range(20))
    window = select(index, _request(3), accept=lambda k: k[0] % 4 == 0)
    assert window.keys == [(0,), (4,), (8,)] and window.next == Cursor(True, (8,))


def test_low_and_high_bound_the_range_inclusively() -> None:
    index = SortedList((n,) for n in range(20))
    window = select(index, _request(50), low=(5,), high=(8,))
    assert window.keys == [(5,), (6,), (7,), (8,)] and window.next is None


@pytest.mark.parametrize("token", ["garbage", "PAnot-base64!", "PA" + "W10", "PBWyJ4Il0", "XX" + "WzFd"],
                         ids=["no-prefix", "bad-base64", "empty-key", "wrong-type", "unknown-prefix"])
def test_a_malformed_page_token_is_a_400_with_20001(token: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_cursor(token, (int,))
    assert (caught.value.status, caught.value.code) == (400, 20001)


def test_float_and_string_keys_round_trip_exactly_through_the_token() -> None:
    key = (-1_700_000_000.123456, "FN" + "a" * 32)
    cursor = parse_cursor(Cursor(True, key).token(), (float, str))
    assert cursor == Cursor(True, key)


def test_envelope_urls_are_absolute_and_keep_filters_page_size_and_token() -> None:
    index = SortedList((n,) for n in range(5))
    request = _request(2)
    window = select(index, request)
    body = envelope("executions", [{"n": 0}, {"n": 1}], window, "http://h:1/v2/Flows/FW1/Executions", request,
                    {"Status": "ended"})
    meta = body["meta"]
    assert body["executions"] == [{"n": 0}, {"n": 1}]
    assert meta["key"] == "executions" and meta["page"] == 0 and meta["page_size"] == 2
    assert meta["previous_page_url"] is None
    assert meta["first_page_url"] == "http://h:1/v2/Flows/FW1/Executions?Status=ended&PageSize=2&Page=0"
    assert meta["url"] == meta["first_page_url"]
    nxt = urlparse(meta["next_page_url"])
    query = parse_qs(nxt.query)
    assert (nxt.scheme, nxt.netloc, nxt.path) == ("http", "h:1", "/v2/Flows/FW1/Executions")
    assert query["Status"] == ["ended"] and query["Page"] == ["1"] and query["PageToken"][0].startswith("PA")
