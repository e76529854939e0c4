"""Capture Payments (``capture-payments``): the ``<Pay>`` it answers with, and the transition each ``Result`` takes."""

from __future__ import annotations

from typing import Any

import pytest

from .voice_helpers import WEBHOOK, XML, Store, call_event, flow, message_event, record, steps, twiml, widget

EVENTS = ("success", "maxFailedAttempts", "providerError", "payInterrupted", "hangup", "validationError")
ACTION_URL = f'action="{WEBHOOK}?FlowEvent=payment"'
ACTION = f'{ACTION_URL} method="POST"'


def pay_store(**props: Any) -> Store:
    return Store(flow(widget("pay", "capture-payments", {e: f"after_{e}" for e in EVENTS}, **props),
                      *(widget(f"after_{e}", "say-play", {}, say=e) for e in EVENTS)))


TWIML_CASES = [
    ("every property becomes its Pay attribute",
     {"payment_connector": "Stripe_Connector", "payment_method": "credit-card", "payment_amount": "{{flow.data.x}}9.99",
      "currency": "usd", "description": "Order 42", "payment_token_type": "one-time", "language": "en-GB",
      "max_attempts": 3, "timeout": 7, "security_code": True, "postal_code": "false", "min_postal_code_length": 5,
      "valid_card_types": ["visa", "master-card", "amex"],
      "parameters": [{"key": "order", "value": "{{trigger.call.From}}"}]},
     f'<Pay {ACTION_URL} chargeAmount="9.99" currency="usd" description="Order 42" language="en-GB" '
     'maxAttempts="3" method="POST" minPostalCodeLength="5" paymentConnector="Stripe_Connector" '
     'paymentMethod="credit-card" postalCode="false" securityCode="true" timeout="7" tokenType="one-time" '
     'validCardTypes="visa master-card amex"><Parameter name="order" value="+15550001111" /></Pay>'),
    ("nothing set: Twilio's defaults (a tokenization with the default connector)", {}, f"<Pay {ACTION} />"),
    ("Studio's upper-case method, charge_amount and a bank account type",
     {"payment_method": "ACH_DEBIT", "charge_amount": "5", "bank_account_type": "consumer-savings",
      "security_code": False, "valid_card_types": "visa, amex"},
     f'<Pay {ACTION_URL} bankAccountType="consumer-savings" chargeAmount="5" method="POST" '
     'paymentMethod="ach-debit" securityCode="false" validCardTypes="visa amex" />'),
]


@pytest.mark.parametrize("props,document", [pytest.param(p, d, id=i) for i, p, d in TWIML_CASES])
def test_capture_payments_answers_a_pay_whose_action_comes_back_to_the_flow(props: dict[str, Any],
                                                                           document: str) -> None:
    store = pay_store(**props)
    out = store.send(call_event())
    assert twiml(out) == f"{XML}<Response>{document}</Response>"
    assert store[record(out).sid].wait.events == ("payment", "hangup")


RESULT_CASES = [
    ("success", "success"), ("too-many-failed-attempts", "maxFailedAttempts"),
    ("payment-connector-error", "providerError"), ("caller-interrupted-with-star", "payInterrupted"),
    ("caller-hung-up", "hangup"), ("validation-error", "validationError"), ("internal-error", "providerError"),
    ("something-new", "providerError"), ("", "providerError"),
]


@pytest.mark.parametrize("result,transition", RESULT_CASES, ids=lambda v: v or "missing")
def test_the_pay_action_takes_the_transition_its_result_names(result: str, transition: str) -> None:
    store = pay_store()
    store.send(call_event())
    params = {"PaymentToken": "tok_1", "PaymentConfirmationCode": "ch_1", "PaymentCardType": "visa",
              "ExpirationDate": "1230", "PaymentCardPostalCode": "94105"} | ({"Result": result} if result else {})
    out = store.send(call_event(params, flow_event="payment"))
    assert steps(out) == [(transition, "pay", f"after_{transition}")]
    stored = record(out).context["widgets"]["pay"]
    assert stored["PaymentToken"] == "tok_1" and stored["PaymentCardType"] == "visa"
    assert f'<Say loop="1">{transition}</Say>' in twiml(out)


def test_the_card_number_security_code_and_account_numbers_are_never_stored() -> None:
    store = pay_store()
    store.send(call_event())
    out = store.send(call_event({"Result": "success", "PaymentCardNumber": "xxxx-xxxx-xxxx-4242",
                                 "SecurityCode": "xxx", "BankAccountNumber": "xxxxx1234",
                                 "BankRoutingNumber": "xxxx0000", "PaymentToken": "tok"}, flow_event="payment"))
    stored = record(out).context["widgets"]["pay"]
    assert stored["PaymentToken"] == "tok" and stored["Result"] == "success"
    assert not {"PaymentCardNumber", "SecurityCode", "BankAccountNumber", "BankRoutingNumber"} & set(stored)
    assert "4242" not in str(out.records)


def test_a_caller_who_hangs_up_before_the_action_takes_hangup() -> None:
    store = pay_store()
    store.send(call_event())
    out = store.send(call_event({"CallStatus": "completed"}))
    assert steps(out) == [("hangup", "pay", "after_hangup")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"


def test_capture_payments_needs_a_call() -> None:
    store = Store(flow(widget("pay", "capture-payments", {}), trigger={"incomingMessage": "pay"}))
    out = store.send(message_event())
    assert steps(out)[-1] == ("81002", "pay", "Ended")
