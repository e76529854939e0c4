"""Conversations: executions started by a conversation's message, and the messages a flow sends into it.

A Twilio Conversation's webhook (``onMessageAdded``, target the flow webhook)
starts an execution with the trigger event ``incomingConversationMessage``.
``trigger.conversation`` holds the webhook's parameters (``ConversationSid``,
``MessageSid``, ``Body``, ``Author``, ``ChatServiceSid``, ``Source``,
``Attributes``, ``Index``, ``DateCreated``, ``MessagingServiceSid``…) plus
Studio's names ``From`` (= ``Author``) and ``ChannelSid`` (= ``ConversationSid``).
``contact.channel.address`` is the ``Author``; ``flow.channel.address`` the
``MessagingServiceSid`` (else the ``ChatServiceSid``).

Send Message and Send & Wait For Reply in such an execution post into the
conversation through the Conversations API, performed by the http-worker with
the account's credentials (idempotency key from execution and step)::

    POST {SWITCHBOARD_CONVERSATIONS_API_BASE}/v1/Conversations/{ConversationSid}/Messages
      Body=<body>  Attributes=<attributes>        (no Author: Twilio writes "system")

``to``, ``from``, ``service`` and ``channel`` do not apply (the conversation is
the destination); ``media_url`` is not sent (Conversations takes media by
upload, not by URL). ``widgets.NAME.outbound`` is the Message resource in
Studio's names (``Sid`` ``IM…``, ``ConversationSid``, ``Body``, ``Author``,
``Index``, ``ParticipantSid``…). The conversation's next ``onMessageAdded``
from a participant resumes a Send & Wait For Reply (``inbound`` = its
parameters); the flow's own messages (``Author`` ``system``) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..sprint import Sprint
from ..state import ExecutionState

__all__ = ["OWN_AUTHOR", "TRIGGER_EVENT", "addresses", "conversation_sid", "messages_url", "message_fields",
           "trigger_data"]

TRIGGER_EVENT = "incomingConversationMessage"
#: The author Conversations gives a message posted through the API without one: the flow's own messages.
OWN_AUTHOR = "system"


def trigger_data(params: Mapping[str, Any]) -> dict[str, Any]:
    """``trigger.conversation``: the webhook's parameters with Studio's ``From`` and ``ChannelSid``."""
    data = dict(params)
    data.setdefault("From", str(params.get("Author", "")))
    data.setdefault("ChannelSid", str(params.get("ConversationSid", "")))
    return data


def addresses(params: Mapping[str, Any]) -> tuple[str, str]:
    """(contact address, flow channel address) of a conversation's message."""
    flow_address = str(params.get("MessagingServiceSid") or params.get("ChatServiceSid") or "")
    return str(params.get("Author", "")), flow_address


def conversation_sid(state: ExecutionState) -> str:
    """The conversation the execution talks in, also while a subflow (with its own ``trigger``) runs."""
    triggers = [frame.saved.get("trigger") for frame in state.frames] + [state.context.get("trigger")]
    for trigger in triggers:
        conversation = trigger.get("conversation") if isinstance(trigger, dict) else None
        if isinstance(conversation, dict) and conversation.get("ConversationSid"):
            return str(conversation["ConversationSid"])
    return ""


def messages_url(sprint: Sprint, sid: str) -> str:
    base = sprint.env.settings.conversations_api_base.rstrip("/")
    return f"{base}/v1/Conversations/{quote(sid, safe='')}/Messages"


def message_fields(sprint: Sprint, props: Mapping[str, Any]) -> list[list[str]]:
    """The form of a message posted into the conversation; raises ``TemplateError``, or ``ValueError`` if empty."""
    body = sprint.render(props.get("body") or "")
    if not body.strip():
        raise ValueError("81011: the message has no body (a conversation message needs one)")
    fields = [["Body", body]]
    attributes = sprint.render(props.get("attributes") or "").strip()
    if attributes:
        fields.append(["Attributes", attributes])
    return fields
