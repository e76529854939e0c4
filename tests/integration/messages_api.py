"""A local stand-in for Twilio's Messages REST API, for tests (``SWITCHBOARD_TWILIO_API_BASE`` points here).

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` behaves like Twilio's:
Basic auth with the account sid and auth token (401/20003 otherwise), form
fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``MediaUrl``,
``ContentSid``; 201 with a Message resource in JSON (snake_case, ``status``
``queued``). Twilio's test numbers fail the same way: ``To=+15005550001`` is
400/21211 (invalid number), ``To=+15005550009`` is 400/21614 (not a mobile
number). A repeated ``I-Twilio-Idempotency-Token`` gets the first answer again
and does not create a second message, as Twilio dedupes it.

It runs on its own thread and event loop, so one instance serves a whole test
session (the cluster is configured with its URL before it starts) while each
test runs in its own loop. Reads are thread-safe snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web

__all__ = ["INVALID_NUMBER", "NOT_MOBILE", "MessagesApi"]

INVALID_NUMBER = "+15005550001"
NOT_MOBILE = "+15005550009"
_ERRORS = {
    INVALID_NUMBER: (21211, "The 'To' number {to} is not a valid phone number."),
    NOT_MOBILE: (21614, "'To' number {to} is not a valid mobile number"),
}


class MessagesApi:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.base = ""
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []  # created Message resources, oldest first
        self._attempts: list[dict[str, Any]] = []  # every POST: {"token", "form"}
        self._by_token: dict[str, tuple[int, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="messages-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Messages API stand-in did not start")
        return self.base

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._create)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- reading -------------------------------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Messages created (each once), optionally only those to ``to``."""
        with self._lock:
            return [dict(m) for m in self._messages if to is None or m["to"] == to]

    def attempts(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every POST received, repeats included."""
        with self._lock:
            return [dict(a) for a in self._attempts if to is None or a["form"].get("To") == to]

    async def wait_for(self, to: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll (from any event loop) until ``count`` messages to ``to`` exist; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s) to {to} within {timeout}s, got {found}")
            await asyncio.sleep(0.05)

    # -- the API -------------------------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str) -> web.Response:
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status}
        return web.json_response(body, status=status)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request) or request.match_info["account_sid"] != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        media = [str(v) for v in form.getall("MediaUrl", [])]
        token = request.headers.get("I-Twilio-Idempotency-Token", "")
        with self._lock:
            self._attempts.append({"token": token, "form": fields, "media": media})
            if token and token in self._by_token:
                status, body = self._by_token[token]
                return web.Response(status=status, body=body, content_type="application/json")
        to = fields.get("To", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not (fields.get("From") or fields.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not (fields.get("Body") or media or fields.get("ContentSid")):
            return self._error(400, 21602, "Message body is required.")
        if to in _ERRORS:
            code, text = _ERRORS[to]
            return self._error(400, code, text.format(to=to))
        sid = "SM" + secrets.token_hex(16)
        resource = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": fields.get("Body", ""),
            "date_created": formatdate(usegmt=True), "date_sent": None, "date_updated": formatdate(usegmt=True),
            "direction": "outbound-api", "error_code": None, "error_message": None, "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"), "num_media": str(len(media)),
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        body = orjson.dumps(resource)
        with self._lock:
            self._messages.append({**resource, "media_urls": media, "token": token})
            if token:
                self._by_token[token] = (201, body)
        return web.Response(status=201, body=body, content_type="application/json")
