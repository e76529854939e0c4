"""Make HTTP Request and Run Function: render the request, hand it to the http-worker, wait.

The http-worker applies the success rules (2xx, or 2xx/3xx for functions;
10 s; 64 kB) and reports facts; this module turns them into Studio's
transitions and ``widgets.NAME.*`` variables.
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

__all__ = ["is_twilio_api_url", "make_http_request", "parse_json_object", "resume", "run_function", "valid_url"]

#: Parameter names Studio reserves (error 81014).
RESERVED_PARAMETERS = frozenset({"method"})


def valid_url(url: str) -> bool:
    """An absolute http(s) URL with a host, as Studio requires after rendering."""
    if not url or any(ch.isspace() for ch in url.strip()):
        return False
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a malformed port
    except ValueError:
        return False
    del port
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_twilio_api_url(url: str, api_base: str) -> bool:
    """``add_twilio_auth`` only ever sends credentials to Twilio's API (or the configured stand-in)."""
    host = (urlsplit(url).hostname or "").lower()
    base = urlsplit(api_base)
    if host == (base.hostname or "").lower() and urlsplit(url).port == base.port:
        return True
    return urlsplit(url).scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def parse_json_object(body: str) -> dict[str, Any] | None:
    """Studio parses only a JSON *object*; arrays, scalars and non-JSON stay unparsed."""
    stripped = body.lstrip()
    if not stripped.startswith("{"):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _pairs(sprint: Sprint, items: Any) -> list[list[str]]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and str(item.get("key", "")):
            out.append([sprint.render(item.get("key", "")), sprint.render(item.get("value", ""))])
    return out


def _failed(event: str, reason: str) -> Next:
    return Next(event, {"error": reason})


def make_http_request(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    try:
        url = sprint.render(props.get("url", "")).strip()
        method = (sprint.render(props.get("method") or "GET").strip().upper()) or "GET"
        content_type = sprint.render(props.get("content_type") or "application/x-www-form-urlencoded;charset=utf-8")
        body = sprint.render(props.get("body")) if props.get("body") else None
        params = _pairs(sprint, props.get("parameters"))
    except TemplateError as exc:
        return _failed("failed", f"81018: {exc}")
    if any(key.lower() in RESERVED_PARAMETERS for key, _ in params):
        return _failed("failed", "81014: an HTTP parameter uses a reserved name such as 'method'")
    if method not in ("GET", "POST"):
        return _failed("failed", f"81014: unsupported method {method!r}")
    if not valid_url(url):
        return _failed("failed", f"81014: the URL {url!r} is not a valid URL")
    twilio_auth = bool(props.get("add_twilio_auth"))
    if twilio_auth and not is_twilio_api_url(url, sprint.env.settings.twilio_api_base):
        return _failed("failed", "add_twilio_auth is set but the URL is not a Twilio API URL; nothing was sent")
    is_json = "json" in content_type.lower()
    form: list[list[str]] = []
    query: list[list[str]] = []
    if method == "GET":
        query = params
        body = None
    elif is_json:
        query = params
    else:
        form = params
    return _request(sprint, widget, "http", method, url, content_type, body, form, query, twilio_auth, False)


def run_function(sprint: Sprint, widget: State) -> Next | Park:
    props = widget.properties
    try:
        url = sprint.render(props.get("url", "")).strip()
        params = _pairs(sprint, props.get("parameters"))
    except TemplateError as exc:
        return _failed("fail", f"81018: {exc}")
    if not valid_url(url):
        return _failed("fail", f"81014: the URL {url!r} is not a valid URL")
    return _request(sprint, widget, "function", "POST", url, "application/x-www-form-urlencoded;charset=utf-8",
                    None, params, [], False, True)


def _request(sprint: Sprint, widget: State, purpose: str, method: str, url: str, content_type: str,
             body: str | None, form: list[list[str]], query: list[list[str]], twilio_auth: bool,
             accept_3xx: bool) -> Park:
    token = sprint.token()
    request_id = sprint.derived("RQ", token)  # same across replays: the idempotency key
    command = HttpRequest(
        request_id=request_id, execution_sid=sprint.state.sid, route=sprint.state.route, token=token,
        purpose=purpose, method=method, url=url, content_type=content_type, body=body, form=form,
        query=query, twilio_auth=twilio_auth, accept_3xx=accept_3xx, created_at=sprint.env.now,
    )
    wait = Wait(widget=widget.name, kind="http", token=token, started_at=sprint.env.now,
                data={"request_id": request_id})
    return Park(wait, (command,))


def resume(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, HttpResult):
        return None
    function = widget.type == "run-function"
    outputs: dict[str, Any] = {}
    if event.status_code is not None:
        outputs["status_code"] = event.status_code
        outputs["content_type"] = event.content_type
        outputs["body"] = event.body
        parsed = parse_json_object(event.body) if event.body else None
        if parsed is not None:
            outputs["parsed"] = parsed
        if function and event.headers:
            outputs["headers"] = event.headers
    if not event.ok:
        outputs["error"] = event.error or event.outcome
    if function:
        return Next("success" if event.ok else "fail", outputs, merge=True)
    return Next("success" if event.ok else "failed", outputs)
