"""The scheduler: durable timers kept in a compacted Kafka topic, fired into the processor's input."""
