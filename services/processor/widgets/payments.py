"""Capture Payments (``capture-payments``): collect a card or bank payment on the live call with ``<Pay>``.

::

    <Response><Pay action="WEBHOOK?FlowEvent=payment" method="POST" paymentConnector=".." paymentMethod="credit-card"
                   chargeAmount="9.99" currency="usd" description=".." tokenType="one-time" language="en-US"
                   maxAttempts="2" timeout="5" securityCode="true" postalCode="true" minPostalCodeLength="5"
                   validCardTypes="visa master-card" bankAccountType="consumer-checking" statusCallback="..">
        <Parameter name=".." value=".."/>…
    </Pay></Response>

Every property is Liquid and becomes its attribute only when it renders
non-empty, so Twilio's defaults apply otherwise. Studio's names map as:
``payment_connector`` → ``paymentConnector``; ``payment_method``
(``credit-card``/``ach-debit``, also Studio's ``CREDIT_CARD``/``ACH_DEBIT``) →
``paymentMethod``; ``payment_amount`` (or ``charge_amount``) → ``chargeAmount``
(none or 0: the card is tokenized, not charged); ``payment_token_type`` →
``tokenType``; ``valid_card_types`` (a list, or text) → ``validCardTypes``
separated by spaces; ``security_code`` (boolean) and ``postal_code`` (``"true"``,
``"false"`` or a fixed postal code) as they are; ``parameters`` (``{key, value}``
pairs) → ``<Parameter>`` children, passed to the connector.

Twilio posts the action once the payment is over; its ``Result`` picks the
transition (``RESULTS``): ``success`` → ``success``;
``too-many-failed-attempts`` → ``maxFailedAttempts``;
``payment-connector-error`` → ``providerError``;
``caller-interrupted-with-star`` → ``payInterrupted``; ``caller-hung-up`` →
``hangup``; ``validation-error`` → ``validationError``; ``internal-error``, no
``Result`` or a value Twilio does not document → ``providerError``. A final
call status callback before the action (the caller hung up) → ``hangup``.

``widgets.NAME`` holds the action's parameters (``Result``, ``PaymentToken``,
``PaymentConfirmationCode``, ``ProfileId``, ``PaymentCardType``,
``ExpirationDate``, ``PaymentCardPostalCode``, ``PaymentError``,
``PayErrorCode``, ``ConnectorError``, ``CallSid``…) **except** the card and
account numbers and the security code (``PaymentCardNumber``,
``BankAccountNumber``, ``SecurityCode``…): Twilio sends them masked, and a flow's
context is stored and shown in the Steps API, so they are never kept at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twilio.twiml.voice_response import Pay, VoiceResponse

from shared.flow import State
from shared.messages import Event, WebhookReceived

from ..sprint import Next, Park, Sprint
from .voice import flow_event_url, needs_call, park_twiml

__all__ = ["RESULTS", "capture_payments", "payment_outputs", "resume_capture_payments"]

ACTION_EVENT = "payment"  # FlowEvent of the <Pay> action; its Result names the transition
RESULTS = {
    "success": "success",
    "too-many-failed-attempts": "maxFailedAttempts",
    "payment-connector-error": "providerError",
    "caller-interrupted-with-star": "payInterrupted",
    "caller-hung-up": "hangup",
    "validation-error": "validationError",
    "internal-error": "providerError",
}
UNKNOWN_RESULT = "providerError"
#: Parameters never stored: what identifies the card or account, even masked.
SECRET_MARKERS = ("cardnumber", "accountnumber", "routingnumber", "securitycode")
#: (property, <Pay> attribute as twilio.twiml names it), sent when the property renders non-empty.
ATTRIBUTES = (
    ("payment_connector", "payment_connector"), ("currency", "currency"), ("description", "description"),
    ("payment_token_type", "token_type"), ("language", "language"), ("max_attempts", "max_attempts"),
    ("timeout", "timeout"), ("min_postal_code_length", "min_postal_code_length"),
    ("bank_account_type", "bank_account_type"), ("status_callback", "status_callback"),
    ("input", "input"),
)
PAYMENT_METHODS = {"credit_card": "credit-card", "ach_debit": "ach-debit"}


def _text(sprint: Sprint, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    return sprint.render(value).strip() if value not in (None, "") else ""


def _card_types(sprint: Sprint, value: Any) -> str:
    items = value if isinstance(value, list) else [value] if value not in (None, "") else []
    return " ".join(t for item in items for t in sprint.render(item).replace(",", " ").split())


def pay_verb(sprint: Sprint, props: Mapping[str, Any]) -> Pay:
    attrs: dict[str, Any] = {"action": flow_event_url(sprint, ACTION_EVENT), "method": "POST"}
    for prop, attr in ATTRIBUTES:
        if value := _text(sprint, props, prop):
            attrs[attr] = value
    if method := _text(sprint, props, "payment_method"):
        attrs["payment_method"] = PAYMENT_METHODS.get(method.lower().replace("-", "_"), method)
    if amount := _text(sprint, props, "payment_amount") or _text(sprint, props, "charge_amount"):
        attrs["charge_amount"] = amount
    for prop, attr in (("security_code", "security_code"), ("postal_code", "postal_code")):
        if value := _text(sprint, props, prop):
            attrs[attr] = value.lower() if value.lower() in ("true", "false") else value
    if card_types := _card_types(sprint, props.get("valid_card_types")):
        attrs["valid_card_types"] = card_types
    pay = Pay(**attrs)
    for item in props.get("parameters") or []:
        if isinstance(item, dict) and str(item.get("key", "")):
            pay.parameter(name=sprint.render(item["key"]), value=sprint.render(item.get("value", "")))
    return pay


def capture_payments(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    response = VoiceResponse()
    response.append(pay_verb(sprint, widget.properties))
    return park_twiml(sprint, widget, (ACTION_EVENT, "hangup"), response)


def payment_outputs(params: Any) -> dict[str, Any]:
    """The action's parameters without ``FlowEvent`` and without anything that identifies the card or account."""
    items = params.items() if isinstance(params, dict) else ()
    return {k: v for k, v in items
            if k != "FlowEvent" and not any(marker in k.lower() for marker in SECRET_MARKERS)}


def resume_capture_payments(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event not in (ACTION_EVENT, "hangup"):
        return None
    outputs = payment_outputs(event.params)
    result = str(outputs.get("Result", "")).strip().lower()
    if event.flow_event == "hangup" and not result:
        return Next("hangup", outputs)  # the call ended (status callback) before the action came
    return Next(RESULTS.get(result, UNKNOWN_RESULT), outputs)
