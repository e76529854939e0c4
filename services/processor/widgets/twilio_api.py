"""Widgets that call Twilio's REST API on the account's behalf (Send Message, Call Recording…).

``post`` builds the ``HttpRequest`` the http-worker performs:
``POST {SWITCHBOARD_TWILIO_API_BASE}/2010-04-01/Accounts/{AccountSid}/{path}``,
form encoded, with the configured account's credentials (``twilio_auth``). Its
request id — sent as ``Idempotency-Key`` and ``I-Twilio-Idempotency-Token`` — is
derived from the execution and step, so a repeat after a crash is the same
request to Twilio, and only the result carrying that id resumes the wait.

``resource_variables`` turns the JSON resource Twilio answers with (snake_case)
into Studio's PascalCase variables (``sid`` → ``Sid``, ``call_sid`` →
``CallSid``; nested objects and lists are left out). ``twilio_error`` says why a
call to the API failed: Twilio's own error (``code``, ``message``) when it sent
one, else the HTTP status or the transport failure.
"""

from __future__ import annotations

import re
from typing import Any

from shared.flow import State
from shared.messages import HttpRequest, HttpResult

from ..sprint import Sprint
from ..state import Wait
from .http import FORM, parse_json_object, request_command, request_wait

__all__ = ["api_url", "post", "resource_variables", "twilio_error"]

_SNAKE = re.compile(r"_([a-z0-9])")


def api_url(sprint: Sprint, path: str) -> str:
    """``{twilio_api_base}/2010-04-01/Accounts/{AccountSid}/{path}`` for the configured account."""
    settings = sprint.env.settings
    return f"{settings.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{settings.account_sid}/{path}"


def post(sprint: Sprint, widget: State, purpose: str, path: str, fields: list[list[str]], kind: str = "http",
         events: tuple[str, ...] = ()) -> tuple[Wait, HttpRequest]:
    """The form POST to ``path`` under the account, and the wait (``kind``) for its result."""
    command = request_command(sprint, purpose, "POST", api_url(sprint, path), FORM, None, fields, [], True, False)
    return request_wait(sprint, widget, command, kind, events), command


def _pascal(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name[:1].upper() + name[1:])


def resource_variables(body: str) -> dict[str, Any]:
    """A Twilio resource (JSON, snake_case) as Studio's PascalCase variables; scalars only."""
    resource = parse_json_object(body) if body else None
    if resource is None:
        return {}
    return {_pascal(key): value for key, value in resource.items() if not isinstance(value, dict | list)}


def twilio_error(result: HttpResult, api: str, code: str = "") -> str:
    """Twilio's REST error body (``code``, ``message``) in words, or what went wrong talking to ``api``."""
    body = parse_json_object(result.body) if result.body else None
    if body is not None and ("code" in body or "message" in body):
        return f"Twilio error {body.get('code', '?')}: {body.get('message', '')} (HTTP {result.status_code})"
    prefix = f"{code}: " if code else ""
    if result.status_code is not None:
        return f"{prefix}{api} answered HTTP {result.status_code}"
    return f"{prefix}{result.error or result.outcome}"
