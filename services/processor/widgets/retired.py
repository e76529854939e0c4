"""Widgets of products Twilio has retired: they still validate (old exports keep them) but cannot run.

An execution that reaches one ends with 81002 and a message naming the retired
product, so a flow author knows to replace the widget rather than wait for
Switchboard to support it.
"""

from __future__ import annotations

__all__ = ["RETIRED", "retired_message"]

#: Widget type → the retired product it belongs to.
RETIRED: dict[str, str] = {
    "understand": "Autopilot",
    "send-to-auto-pilot": "Autopilot",
    "create-chat-channel": "Programmable Chat",
    "add-member-to-chat-channel": "Programmable Chat",
}


def retired_message(widget_type: str) -> str | None:
    """Why a widget of ``widget_type`` cannot run, or ``None`` if its product is not retired."""
    product = RETIRED.get(widget_type)
    if product is None:
        return None
    return (f"widget type {widget_type!r} belongs to {product}, which Twilio has retired; the widget cannot run "
            "(replace it in the flow)")
