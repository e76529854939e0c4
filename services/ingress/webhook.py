"""The flow webhook ``/v1/Accounts/{AccountSid}/Flows/{FlowSid}`` (POST and GET): Twilio's calls and messages.

Contract:

* ``X-Twilio-Signature`` is checked with the account's auth token
  (``twilio.request_validator``) against ``SWITCHBOARD_PUBLIC_BASE_URL`` + the
  request's raw path and query (what Twilio signed when it is configured with
  the public URL), plus the form parameters of a POST. A missing or wrong
  signature is answered ``403`` with Twilio's error body (code 20403) and
  publishes nothing. ``SWITCHBOARD_VALIDATE_WEBHOOK_SIGNATURE=false`` turns the
  check off (local development only).
* Query and form parameters are merged (form wins); ``FlowEvent`` is taken out
  and names the transition to resume. A request with a ``CallSid`` (and no
  ``MessageSid``/``SmsSid``) is a call; a Conversations webhook (``EventType``
  and ``ConversationSid``, e.g. ``onMessageAdded``) is a conversation message;
  anything else a message. The contact is ``From`` (``To`` for an
  ``outbound-*`` call), so every request of one contact in one flow goes to one
  processor partition; a conversation's requests share the conversation's key
  (its participants talk in one thread).
* The ingress publishes ``WebhookReceived`` naming its reply partition and
  answers with the TwiML the processor replies (an empty ``<Response/>`` if it
  has none). The processor runs non-TwiML widgets (HTTP…) first, so this may
  wait for an outbound call. If no reply comes within
  ``SWITCHBOARD_WEBHOOK_REPLY_BUDGET_SECONDS``: a call is answered with a
  ``<Redirect method="POST">`` to this webhook with ``FlowEvent=keepalive``
  (Twilio fetches it at once and that request picks up wherever the execution
  is); a message gets an empty ``<Response/>``. After ``MAX_KEEPALIVES``
  keep-alives in a row (the processor is down or far behind) the call is
  answered with an empty ``<Response/>``, which hangs up, rather than holding
  the caller in silence for ever.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from shared import metrics
from shared.ids import new_sid
from shared.messages import ExecutionRecord, WebhookReceived, encode

from .deps import DEPS, Deps
from .errors import ApiError
from .routes_executions import route_key

__all__ = ["KEEPALIVE", "MAX_KEEPALIVES", "keepalive_twiml", "routes", "signature_is_valid"]

routes = web.RouteTableDef()

KEEPALIVE = "keepalive"
#: Keep-alive redirects in a row before a call is given up (with the default 8 s budget: about a minute).
MAX_KEEPALIVES = 8


def signature_is_valid(auth_token: str, public_base_url: str, raw_path: str, form: MultiDict[str],
                       signature: str) -> bool:
    """Twilio signs the URL *it* called: behind a proxy that is the public base URL, not this host's address.

    ``raw_path`` keeps the query string exactly as sent (``?FlowEvent=return&foo=bar`` is signed too).
    """
    if not signature:
        return False
    url = public_base_url.rstrip("/") + raw_path
    return bool(RequestValidator(auth_token).validate(url, form, signature))


def _twiml(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/xml")


async def _form(request: web.Request) -> MultiDict[str]:
    if request.method != "POST":
        return MultiDict()
    body = await request.post()
    return MultiDict((k, v) for k, v in body.items() if isinstance(v, str))


def _check_signature(deps: Deps, request: web.Request, form: MultiDict[str]) -> None:
    if not deps.settings.validate_webhook_signature:
        return
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature_is_valid(deps.settings.auth_token, deps.settings.public_base_url, request.raw_path, form,
                              signature):
        raise ApiError(403, 20403, "Invalid or missing X-Twilio-Signature for this webhook URL")


def _is_call(params: dict[str, str]) -> bool:
    return "CallSid" in params and "MessageSid" not in params and "SmsSid" not in params


def _is_conversation(params: dict[str, str]) -> bool:
    return "ConversationSid" in params and "EventType" in params


def _contact(params: dict[str, str]) -> str:
    if _is_conversation(params):
        return params["ConversationSid"]
    outbound = params.get("Direction", "inbound").startswith("outbound")
    return params.get("To" if outbound else "From", "")


def keepalive_twiml(webhook_url: str, attempt: int) -> str:
    """TwiML that holds a call while the engine is slow: a redirect back here, at most ``MAX_KEEPALIVES`` times.

    After the last one the answer is an empty ``<Response/>`` (Twilio ends the call): a caller is never
    left in an endless loop of silent redirects if the engine stays down.
    """
    response = VoiceResponse()
    if attempt <= MAX_KEEPALIVES:
        query = urlencode({"FlowEvent": KEEPALIVE, "KeepAlive": attempt})
        response.redirect(f"{webhook_url}?{query}", method="POST")
    return str(response)


async def _handle(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    started = time.perf_counter()
    account_sid, flow_sid = request.match_info["account_sid"], request.match_info["flow_sid"]
    form = await _form(request)
    _check_signature(deps, request, form)
    if account_sid != deps.settings.account_sid:
        raise ApiError(404, 20404, f"The requested resource /Accounts/{account_sid} was not found")
    flow = deps.catalog.latest_published(flow_sid) or deps.catalog.latest(flow_sid)
    if flow is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{flow_sid} was not found")
    params: dict[str, str] = dict(request.query)
    params.update(form)
    flow_event = params.pop("FlowEvent", "")
    voice = _is_call(params)
    attempt = 0
    if flow_event == KEEPALIVE:
        attempt = int(params.pop("KeepAlive", "1")) if params.get("KeepAlive", "").isdigit() else 1
    reply_id, future = deps.replies.expect()
    event = WebhookReceived(
        flow_sid=flow_sid, revision=flow.revision, route=route_key(flow_sid, _contact(params)),
        channel="voice" if voice else "conversation" if _is_conversation(params) else "message", params=params,
        flow_event=flow_event,
        call_sid=params.get("CallSid", "") if voice else "", new_execution_sid=new_sid("FN"),
        received_at=deps.clock.now(), reply_id=reply_id, reply_partition=deps.replies.partition,
    )
    try:
        await deps.publish("events", event.route, event)
        reply = await asyncio.wait_for(future, deps.settings.webhook_reply_budget_seconds)
        outcome = "answered"
        text = reply.twiml or str(VoiceResponse() if voice else MessagingResponse())
        if isinstance(reply.execution, dict):  # read-your-writes, off the answer's path
            _remember(deps, ExecutionRecord(**reply.execution))
    except TimeoutError:
        outcome = "keepalive" if voice else "timeout"
        text = keepalive_twiml(deps.urls.webhook(flow_sid), attempt + 1) if voice else str(MessagingResponse())
    finally:
        deps.replies.forget(reply_id)
    metrics.WEBHOOK_LATENCY.labels(outcome).observe(time.perf_counter() - started)
    return _twiml(text)


@routes.post("/v1/Accounts/{account_sid}/Flows/{flow_sid}")
async def webhook_post(request: web.Request) -> web.Response:
    return await _handle(request)


@routes.get("/v1/Accounts/{account_sid}/Flows/{flow_sid}")
async def webhook_get(request: web.Request) -> web.Response:
    return await _handle(request)


_background: set[asyncio.Task[None]] = set()


def _remember(deps: Deps, record: ExecutionRecord) -> None:
    """Write the execution's snapshot to this replica's history store without delaying the TwiML answer."""
    task = asyncio.create_task(deps.history.apply_local(record.sid.encode(), encode(record)))
    _background.add(task)
    task.add_done_callback(_background.discard)
