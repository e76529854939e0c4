"""Turn an ``HttpRequest`` into exactly what goes on the wire, and follow a redirect. Pure: no I/O.

Studio's request rules (Make HTTP Request page; studio.md §3):

* ``GET``: the parameters (``query``) become the query string, appended to any
  query the URL already has; no body.
* ``POST`` with a JSON content type: ``body`` is the payload, sent with the
  request's own content type; ``query`` pairs (if any) go to the query string.
* ``POST`` otherwise (form URL encoded, Studio's default): ``form`` is encoded
  as ``application/x-www-form-urlencoded``. A form POST without parameters but
  with a ``body`` sends that body as is (a flow author who typed ``a=1&b=2``
  gets what they typed).
* Basic-auth credentials written in the URL become an ``Authorization``
  header and are removed from the URL; ``add_twilio_auth`` (``twilio_auth``)
  uses the configured account instead, and is refused unless the URL is a
  Twilio API URL (the configured API base counts as one) - so credentials never
  leave for another host, even if the processor let such a request through.
* No custom headers: only ``User-Agent`` and ``Idempotency-Key`` (the request
  id, derived from execution and step, so a repeat after a crash carries the
  same key). Requests to a Twilio API also carry ``I-Twilio-Idempotency-Token``,
  the header Twilio's own API de-duplicates on.

Only ``http``/``https`` URLs with a host, no whitespace and a valid port are
valid; anything else is :class:`InvalidRequest` and nothing is sent.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from yarl import URL

from shared.messages import HttpRequest
from shared.settings import Settings

__all__ = [
    "REDIRECT_STATUSES", "USER_AGENT", "InvalidRequest", "NotTwilioApi", "Prepared", "classify",
    "is_twilio_api_url", "parse_url", "prepare", "redirect",
]

USER_AGENT = "Switchboard/0.1 (Studio-compatible)"
FORM = "application/x-www-form-urlencoded"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_BAD_URL_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")


class InvalidRequest(ValueError):
    """The request cannot be sent as it stands (bad URL, unsupported method)."""


class NotTwilioApi(ValueError):
    """``add_twilio_auth`` is set but the URL is not a Twilio API URL; nothing is sent."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One hop, exactly as it is sent: the URL carries no credentials and the merged query."""

    method: str
    url: URL
    headers: dict[str, str]
    data: bytes | None


def parse_url(text: str) -> URL:
    """An absolute http(s) URL with a valid host and port, or :class:`InvalidRequest`."""
    if not text or _BAD_URL_CHARACTER.search(text):
        raise InvalidRequest(f"the URL {text!r} is not a valid URL")
    try:
        url = URL(text)
        port = url.port
        host = url.raw_host
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"the URL {text!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidRequest(f"the URL {text!r} is not an http or https URL")
    if not host or port is None or not 0 < port < 65536:
        raise InvalidRequest(f"the URL {text!r} has no valid host or port")
    if ":" not in host and not _HOST_NAME.match(host.lower()):
        raise InvalidRequest(f"the URL {text!r} has an invalid host name")
    return url


def is_twilio_api_url(url: URL, api_base: str) -> bool:
    """The configured Twilio API base (same host and port), or https on twilio.com and its subdomains."""
    host = (url.host or "").lower().rstrip(".")
    try:
        base = URL(api_base)
        if host == (base.host or "").lower() and url.port == base.port:
            return True
    except ValueError:
        pass
    return url.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _pairs(items: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in items or []:  # type: ignore[attr-defined]
        key, value = item
        out.append((str(key), "" if value is None else str(value)))
    return out


def prepare(request: HttpRequest, settings: Settings) -> Prepared:
    """Build the first hop. Raises :class:`InvalidRequest` or :class:`NotTwilioApi`; never does I/O."""
    method = (request.method or "GET").upper()
    if method not in ("GET", "POST"):
        raise InvalidRequest(f"method {request.method!r} is not supported (GET or POST)")
    url = parse_url(request.url.strip())
    headers = {"User-Agent": USER_AGENT, "Idempotency-Key": request.request_id}
    if request.twilio_auth:
        if not any(is_twilio_api_url(url, base) for base in (settings.twilio_api_base, settings.flex_api_base,
                                                               settings.conversations_api_base)):
            raise NotTwilioApi("add_twilio_auth is set but the URL is not a Twilio API URL; nothing was sent")
        headers["Authorization"] = _basic(settings.account_sid, settings.auth_token)
        headers["I-Twilio-Idempotency-Token"] = request.request_id
    elif url.user is not None:
        headers["Authorization"] = _basic(url.user, url.password or "")
    url = url.with_user(None).with_fragment(None)
    try:
        query = _pairs(request.query)
        form = _pairs(request.form)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"parameters must be [key, value] pairs: {exc}") from None
    if query:
        url = url.extend_query(query)
    data: bytes | None = None
    if method == "POST":
        content_type = request.content_type or FORM
        if "json" in content_type.lower():
            data = (request.body or "").encode()
        elif form:
            data = urlencode(form).encode()
            if "x-www-form-urlencoded" not in content_type.lower():
                content_type = FORM
        else:
            data = (request.body or "").encode()
        headers["Content-Type"] = content_type
    return Prepared(method, url, headers, data)


def _same_origin_or_upgrade(old: URL, new: URL) -> bool:
    if (old.host or "").lower() != (new.host or "").lower():
        return False
    if old.scheme == new.scheme and old.port == new.port:
        return True
    # http → https on the default ports of the same host keeps credentials (as browsers and requests do).
    return old.scheme == "http" and new.scheme == "https" and old.is_default_port() and new.is_default_port()


def redirect(hop: Prepared, status: int, location: str) -> Prepared:
    """The next hop after a 3xx with ``Location``; raises :class:`InvalidRequest` for a bad target.

    303 (and 301/302 after a POST) become a GET without a body, as every
    browser does; 307/308 repeat the request as it was. ``Authorization``
    is dropped when the redirect leaves the origin, so credentials never leak
    to another host. Credentials written in ``Location`` are ignored.
    """
    try:
        joined = str(hop.url.join(URL(location.strip())))
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"redirect to an invalid URL {location!r}: {exc}") from None
    target = parse_url(joined).with_user(None).with_fragment(None)
    headers = dict(hop.headers)
    method, data = hop.method, hop.data
    if status == 303 or (status in (301, 302) and method == "POST"):
        method, data = "GET", None
        headers.pop("Content-Type", None)
    if not _same_origin_or_upgrade(hop.url, target):
        headers.pop("Authorization", None)
    return replace(hop, method=method, url=target, headers=headers, data=data)


def classify(status: int, accept_3xx: bool) -> tuple[bool, str]:
    """(success, outcome label): 2xx succeeds; 3xx too for Run Function; the label is the status class."""
    ok = 200 <= status < 300 or (accept_3xx and 300 <= status < 400)
    return ok, f"{status // 100}xx"
