"""Twilio's error body: ``{code, message, more_info, status}`` (plus ``details`` where Studio has them)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["ApiError", "error_response"]


class ApiError(Exception):
    """An error answered with Twilio's JSON error body."""

    def __init__(self, status: int, code: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
        "status": error.status,
    }
    if error.details is not None:
        body["details"] = error.details
    return web.Response(body=orjson.dumps(body), status=error.status, content_type="application/json")
