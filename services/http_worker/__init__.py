"""The http-worker pool: performs outbound HTTP calls and reports what happened."""
