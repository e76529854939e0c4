"""The flow webhook ``/v1/Accounts/{AccountSid}/Flows/{FlowSid}``: Twilio's calls and messages.

The ingress checks ``X-Twilio-Signature``, publishes a ``WebhookReceived``
event naming its reply partition, and answers with the TwiML the processor
sends back. If no answer comes within the budget (an HTTP widget still runs),
a voice call is kept alive with a ``<Redirect>`` back to this URL
(``FlowEvent=keepalive``), which picks the execution up where it is.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from shared import metrics
from shared.ids import new_sid

from .deps import DEPS, Deps
from .errors import ApiError
from .routes_executions import route_key

__all__ = ["routes"]

routes = web.RouteTableDef()


def _public_url(deps: Deps, request: web.Request) -> str:
    return deps.settings.public_base_url.rstrip("/") + request.rel_url.path_qs


def _twiml(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/xml")


async def _handle(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    started = time.perf_counter()
    account_sid, flow_sid = request.match_info["account_sid"], request.match_info["flow_sid"]
    body = await request.post() if request.method == "POST" else {}
    params = {k: v for k, v in request.query.items()}
    form = {k: v for k, v in body.items() if isinstance(v, str)}
    if deps.settings.validate_webhook_signature:
        validator = RequestValidator(deps.settings.auth_token)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(_public_url(deps, request), form, signature):
            raise ApiError(403, 20403, "Invalid X-Twilio-Signature")
    if account_sid != deps.settings.account_sid:
        raise ApiError(404, 20404, f"The requested resource /Accounts/{account_sid} was not found")
    params.update(form)
    flow_event = params.pop("FlowEvent", "")
    voice = "CallSid" in params and "MessageSid" not in params and "SmsSid" not in params
    flow = deps.catalog.latest_published(flow_sid) or deps.catalog.latest(flow_sid)
    if flow is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{flow_sid} was not found")
    contact = params.get("From", "") if params.get("Direction", "inbound").startswith("inbound") else params.get("To", "")
    reply_id, future = deps.replies.expect()
    from shared.messages import WebhookReceived

    event = WebhookReceived(
        flow_sid=flow_sid, revision=flow.revision, route=route_key(flow_sid, contact),
        channel="voice" if voice else "message", params=params, flow_event=flow_event,
        call_sid=params.get("CallSid", ""), new_execution_sid=new_sid("FN"), received_at=deps.clock.now(),
        reply_id=reply_id, reply_partition=deps.replies.partition,
    )
    await deps.publish("events", event.route, event)
    try:
        reply = await asyncio.wait_for(future, deps.settings.webhook_reply_budget_seconds)
        outcome = "answered"
        text = reply.twiml or str(VoiceResponse() if voice else MessagingResponse())
    except TimeoutError:
        outcome = "keepalive"
        response = VoiceResponse() if voice else MessagingResponse()
        if voice:
            response.redirect(f"{deps.urls.webhook(flow_sid)}?FlowEvent=keepalive", method="POST")
        text = str(response)
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
