"""Two ingress replicas sharing one history store in PostgreSQL, on the real cluster.

Both replicas (``SWITCHBOARD_HISTORY_STORE=postgres``) join the test cluster with their own reply partitions and
write the history topic into one PostgreSQL database as a consumer group: each partition is written by one of
them. Whatever either wrote, both read at once; when one dies, the other takes its partitions over and carries
on from the offsets stored in the database.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio.rest import Client

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from devtools.postgres_server import PostgresServer
from shared.settings import Settings
from tests.conftest import APPOINTMENTS


@pytest.fixture(scope="module")
def pg_replicas(cluster: Cluster) -> Iterator[list[str]]:
    folder = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    server = PostgresServer(folder)
    server.start()
    labels = []
    try:
        urls = []
        for n, instance in enumerate((2, 3)):
            port = free_port()
            label = f"ingress-pg-{n}"
            cluster.ports[label] = port
            labels.append(label)
            cluster.start_service("ingress", label=label, extra_env={
                "SWITCHBOARD_INGRESS_PORT": str(port), "SWITCHBOARD_INGRESS_INSTANCE": str(instance),
                "SWITCHBOARD_HISTORY_STORE": "postgres", "SWITCHBOARD_HISTORY_POSTGRES_DSN": server.dsn()})
            urls.append(f"http://127.0.0.1:{port}")
        for label in labels:
            # Ready once its first partitions caught up with the history every earlier test wrote; under a
            # loaded machine that took over 90 s once.
            cluster.wait_ready(label, timeout=240)
        yield urls
    finally:
        for label in labels:
            cluster.stop_service(label)
            cluster.ports.pop(label, None)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def studio(url: str, settings: Settings) -> Any:
    client = Client(settings.account_sid, settings.auth_token)
    client.studio.base_url = url
    return client.studio.v2


def eventually(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_both_replicas_read_one_shared_history_and_a_survivor_takes_over_writing_it(
        cluster: Cluster, pg_replicas: list[str], settings: Settings) -> None:
    one, two = (studio(url, settings) for url in pg_replicas)
    flow = one.flows.create(friendly_name="pg replicas", status="published",
                            definition=json.loads(APPOINTMENTS.read_text()))
    first = two.flows(flow.sid).executions.create(to="+15557771001", from_="+15550001111",
                                                  parameters={"event_type": "NONE"})
    # Read-your-writes across replicas: the create wrote the shared store, the other replica lists it at once.
    assert [e.sid for e in one.flows(flow.sid).executions.list()] == [first.sid]
    steps = eventually(lambda: (s := one.flows(flow.sid).executions(first.sid).steps.list()) and len(s) == 3 and s)
    assert [s.transitioned_from for s in reversed(steps)] == ["Trigger", "set_global_variables", "split_on_event_type"]
    assert two.flows(flow.sid).executions(first.sid).fetch().status == "ended"

    cluster.kill("ingress-pg-0")  # the survivor gets its partitions after the session timeout
    second = two.flows(flow.sid).executions.create(to="+15557771002", from_="+15550001111",
                                                   parameters={"event_type": "NONE"})
    later = eventually(lambda: (s := two.flows(flow.sid).executions(second.sid).steps.list()) and len(s) == 3 and s)
    assert [s.name for s in reversed(later)] == ["incomingRequest", "next", "noMatch"]
    assert {e.sid for e in two.flows(flow.sid).executions.list(status="ended")} == {first.sid, second.sid}
