"""Two ingress replicas behind one public URL: any request may land on either, and the API still holds.

A second ingress (``SWITCHBOARD_INGRESS_INSTANCE=1``: its own reply partition,
its own janitor stagger) joins the test cluster. Writes go through one replica
and are read straight away through the other, as a load balancer would do it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from shared.settings import Settings
from tests.conftest import APPOINTMENTS

FLOW_FILE = APPOINTMENTS


@pytest.fixture(scope="module")
def second_ingress(cluster: Cluster) -> Iterator[str]:
    port = free_port()
    cluster.ports["ingress-1"] = port
    cluster.start_service("ingress", label="ingress-1",
                          extra_env={"SWITCHBOARD_INGRESS_PORT": str(port), "SWITCHBOARD_INGRESS_INSTANCE": "1"})
    try:
        cluster.wait_ready("ingress-1")
        yield f"http://127.0.0.1:{port}"
    finally:
        cluster.stop_service("ingress-1")
        cluster.ports.pop("ingress-1", None)


def client_for(url: str, settings: Settings) -> Client:
    client = Client(settings.account_sid, settings.auth_token)
    client.studio.base_url = url
    return client


def test_writes_through_one_replica_are_readable_at_once_through_the_other(
        cluster: Cluster, second_ingress: str, settings: Settings) -> None:
    one, two = (client_for(url, settings).studio.v2 for url in (cluster.ingress_url, second_ingress))
    definition = json.loads(FLOW_FILE.read_text())

    flow = two.flows.create(friendly_name="replicas", status="published", definition=definition)
    execution = one.flows(flow.sid).executions.create(to="+15557770001", from_="+15550001111",
                                                      parameters={"event_type": "NONE"})
    assert execution.flow_version == 1
    fetched = two.flows(flow.sid).executions(execution.sid).fetch()
    assert fetched.sid == execution.sid and fetched.contact_channel_address == "+15557770001"
    steps = two.flows(flow.sid).executions(execution.sid).steps.list()
    assert [s.transitioned_from for s in reversed(steps)] == ["Trigger", "set_global_variables", "split_on_event_type"]
    assert one.flows(flow.sid).executions(execution.sid).fetch().url == fetched.url  # one public base URL

    # A create through replica 2 gets its answer on replica 2's own reply partition.
    second = two.flows(flow.sid).executions.create(to="+15557770002", from_="+15550001111",
                                                   parameters={"event_type": "NONE"})
    assert one.flows(flow.sid).executions(second.sid).fetch().status == "ended"
    assert {e.sid for e in one.flows(flow.sid).executions.list()} == {execution.sid, second.sid}

    # A delete reaches the other replica as soon as it reads the tombstones (tens of milliseconds).
    assert two.flows(flow.sid).executions(execution.sid).delete() is True
    deadline = time.monotonic() + 5
    while True:
        try:
            one.flows(flow.sid).executions(execution.sid).fetch()
        except TwilioRestException as gone:
            assert gone.status == 404
            break
        assert time.monotonic() < deadline, "replica 1 still serves a deleted execution"
        time.sleep(0.05)
