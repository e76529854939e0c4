"""Event Streams: every execution and step change as Studio's CloudEvents, on a Kafka topic and to webhook sinks."""
