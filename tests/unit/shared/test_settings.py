"""Settings that decide whether optional work runs."""

from __future__ import annotations

import pytest

from shared.settings import Settings


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),  # off by default: Event Streams nearly double the Kafka messages per execution
    ({"SWITCHBOARD_EVENT_STREAMS": "true"}, True),
    ({"SWITCHBOARD_EVENT_STREAM_SINKS": "http://127.0.0.1:9/sink"}, True),  # a sink implies the relay
    ({"SWITCHBOARD_EVENT_STREAMS": "false", "SWITCHBOARD_EVENT_STREAM_SINKS": "http://127.0.0.1:9/s"}, True),
])
def test_the_event_streams_relay_runs_only_when_asked_for_or_a_sink_is_configured(env: dict[str, str],
                                                                                  expected: bool) -> None:
    assert Settings.from_env(env).streams_events is expected
