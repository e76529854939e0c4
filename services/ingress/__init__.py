"""The ingress: Studio's v2 REST API and the Twilio flow webhook, over Kafka."""
