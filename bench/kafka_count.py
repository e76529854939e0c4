"""How many messages were written to a broker's topics: the sum of every partition's end offset."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["messages_written"]


async def messages_written(bootstrap: str) -> dict[str, int]:
    """End offsets summed per topic (Kafka's internal ``__`` topics left out): take two and subtract."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - aiokafka has no public call
        topics = [t for t in metadata.topics() if not t.startswith("__")]
        tps = [TopicPartition(t, p) for t in topics for p in (metadata.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps) if tps else {}
        out: dict[str, int] = {}
        for tp, end in ends.items():
            out[tp.topic] = out.get(tp.topic, 0) + end
        return out
    finally:
        await consumer.stop()
