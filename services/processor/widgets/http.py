"""Make HTTP Request and Run Function: render the request, hand it to the http-worker, wait.

The http-worker applies the transport rules (2xx — or 2xx/3xx for functions —
within 10 s, at most 64 kB, redirects followed, outbound policy) and reports
facts in an ``HttpResult``; this module decides everything that can be decided
before sending and turns results into Studio's transitions and variables.

Request (Make HTTP Request; every string property is Liquid):

* ``method`` GET (default) or POST; anything else is ``failed`` (81014).
* GET: ``parameters`` go to the query string; ``body`` is not sent.
* POST with a form content type (the default): ``parameters`` are the
  form-encoded body; with no parameters a rendered ``body`` is sent as is.
* POST with a JSON content type: the rendered ``body`` is the payload (sent
  with that content type); ``parameters`` go to the query string.
* A parameter named ``method`` (Studio's reserved word, 81014), or a URL that
  does not render to an absolute http(s) URL with a host (81014), takes
  ``failed`` without any request.
* ``add_twilio_auth``: the configured account's credentials are used (they
  replace credentials written in the URL); a URL that is not a Twilio API URL
  (``*.twilio.com`` over https, or the configured ``twilio_api_base``) takes
  ``failed`` without sending anything.
* A Liquid error in any property takes ``failed`` (``fail`` for Run Function)
  with the 81018 message: the widget has a failure transition, so the flow can
  handle it (widgets without one end the execution with 81018).

What lands in ``widgets.NAME`` (replacing what an earlier run stored):

* a response was received (any status, success or not): ``status_code``,
  ``content_type``, ``body``, and ``parsed`` when the body is a JSON *object*
  (never a top-level array, scalar or non-JSON text);
* Run Function also ``headers`` (``x-twilio-function-concurrency``) when sent;
* on ``failed``/``fail``: ``error``, a readable reason ("HTTP 404", "no
  response within 10 s", "… is not a valid URL …"); when no response was
  received (timeout, connection error, refused destination, invalid URL) there
  is no ``status_code``/``body``/``content_type``.
* Run Function merges ``parsed`` into the previous run's ``parsed`` (a shallow
  merge; a run without a JSON object leaves the previous ``parsed`` untouched),
  as studio.md §4.2 documents.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import Event, HttpRequest, HttpResult

from ..sprint import Next, Park, Sprint
from ..state import Wait

__all__ = [
    "FORM",
    "RESERVED_PARAMETERS",
    "is_twilio_api_url",
    "make_http_request",
    "parse_json_object",
    "request_command",
    "request_wait",
    "response_outputs",
    "resume",
    "run_function",
    "truthy",
    "valid_url",
]

FORM = "application/x-www-form-urlencoded;charset=utf-8"
#: Parameter names Studio reserves (error 81014).
RESERVED_PARAMETERS = frozenset({"method"})


def valid_url(url: str) -> bool:
    """An absolute http(s) URL with a host and no white space, as Studio requires after rendering."""
    if not url or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return False
    del port
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def is_twilio_api_url(url: str, api_base: str) -> bool:
    """``add_twilio_auth`` only ever sends credentials to Twilio's API (or the configured stand-in)."""
    parts, base = urlsplit(url), urlsplit(api_base)
    host = (parts.hostname or "").lower()
    if host == (base.hostname or "").lower() and parts.scheme == base.scheme and \
            (parts.port or _default_port(parts.scheme)) == (base.port or _default_port(base.scheme)):
        return True
    return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def truthy(value: Any) -> bool:
    """A boolean property, also when written as the string ``"true"``."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def parse_json_object(body: str) -> dict[str, Any] | None:
    """Studio parses only a JSON *object*; arrays, scalars and non-JSON stay unparsed."""
    if not body.lstrip().startswith("{"):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _pairs(sprint: Sprint, items: Any) -> list[list[str]]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("key", "")):
            out.append([sprint.render(item.get("key", "")), sprint.render(item.get("value", ""))])
    return out


def _failed(event: str, reason: str) -> Next:
    return Next(event, {"error": reason})


def make_http_request(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    try:
        url = sprint.render(props.get("url", "")).strip()
        method = sprint.render(props.get("method") or "GET").strip().upper() or "GET"
        content_type = sprint.render(props.get("content_type") or FORM).strip() or FORM
        body = sprint.render(props.get("body")) if props.get("body") not in (None, "") else None
        params = _pairs(sprint, props.get("parameters"))
    except TemplateError as exc:
        return _failed("failed", f"81018: {exc}")
    reserved = [key for key, _ in params if key.strip().lower() in RESERVED_PARAMETERS]
    if reserved:
        return _failed("failed", f"81014: the HTTP parameter name {reserved[0]!r} is reserved; nothing was sent")
    if method not in ("GET", "POST"):
        return _failed("failed", f"81014: unsupported method {method!r}; nothing was sent")
    if not valid_url(url):
        return _failed("failed", f"81014: the URL {url!r} is not a valid URL; nothing was sent")
    twilio_auth = truthy(props.get("add_twilio_auth"))
    if twilio_auth and not is_twilio_api_url(url, sprint.env.settings.twilio_api_base):
        return _failed("failed", "add_twilio_auth is set but the URL is not a Twilio API URL; nothing was sent")
    form: list[list[str]] = []
    query: list[list[str]] = []
    if method == "GET":
        query, body = params, None
    elif "json" in content_type.lower():
        query = params
    elif params:
        form, body = params, None
    command = request_command(sprint, "http", method, url, content_type, body, form, query, twilio_auth, False)
    return Park(request_wait(sprint, widget, command), (command,))


def run_function(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    try:
        url = sprint.render(props.get("url", "")).strip()
        params = _pairs(sprint, props.get("parameters"))
    except TemplateError as exc:
        return _failed("fail", f"81018: {exc}")
    reserved = [key for key, _ in params if key.strip().lower() in RESERVED_PARAMETERS]
    if reserved:
        return _failed("fail", f"81014: the parameter name {reserved[0]!r} is reserved; nothing was sent")
    if not valid_url(url):
        return _failed("fail", f"81014: the URL {url!r} is not a valid URL; nothing was sent")
    command = request_command(sprint, "function", "POST", url, FORM, None, params, [], False, True)
    return Park(request_wait(sprint, widget, command), (command,))


def request_command(sprint: Sprint, purpose: str, method: str, url: str, content_type: str, body: str | None,
                    form: list[list[str]], query: list[list[str]], twilio_auth: bool, accept_3xx: bool) -> HttpRequest:
    """The ``HttpRequest`` for the wait about to start; its id (the idempotency key) survives replays."""
    token = sprint.token()
    return HttpRequest(
        request_id=sprint.derived("RQ", token), execution_sid=sprint.state.sid, route=sprint.state.route,
        token=token, purpose=purpose, method=method, url=url, content_type=content_type, body=body, form=form,
        query=query, twilio_auth=twilio_auth, accept_3xx=accept_3xx, created_at=sprint.env.now,
    )


def request_wait(sprint: Sprint, widget: State, command: HttpRequest, kind: str = "http",
                 events: tuple[str, ...] = ()) -> Wait:
    """The wait for ``command``'s result: only the result carrying its request id resumes it (``machine.py``)."""
    return Wait(widget=widget.name, kind=kind, token=command.token, events=events, started_at=sprint.env.now,
                data={"request_id": command.request_id})


def response_outputs(event: HttpResult) -> dict[str, Any]:
    """``status_code``/``content_type``/``body``/``parsed`` when a response came back, plus ``error`` on failure."""
    outputs: dict[str, Any] = {}
    if event.status_code is not None:
        outputs["status_code"] = event.status_code
        outputs["content_type"] = event.content_type
        outputs["body"] = event.body
        parsed = parse_json_object(event.body) if event.body else None
        if parsed is not None:
            outputs["parsed"] = parsed
    if not event.ok:
        outputs["error"] = event.error or event.outcome
    return outputs


def resume(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, HttpResult):
        return None
    outputs = response_outputs(event)
    if widget.type == "run-function":
        if event.headers and event.status_code is not None:
            outputs["headers"] = dict(event.headers)
        return Next("success" if event.ok else "fail", outputs, merge=True)
    return Next("success" if event.ok else "failed", outputs)
