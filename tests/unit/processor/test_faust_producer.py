"""The processor's faust producer writes with acks=all and idempotence, like every other producer here:
without idempotence a retry after a broker dies mid-acknowledgement may write a batch twice."""

from __future__ import annotations

from services.processor.app import create_app
from shared.settings import Settings


def test_the_faust_producer_is_idempotent_with_acks_all() -> None:
    app = create_app(Settings(topic_prefix="unit-producer."))
    options = app.producer._settings_extra()  # noqa: SLF001 - what faust hands AIOKafkaProducer
    assert options["enable_idempotence"] is True and options["acks"] == "all"
