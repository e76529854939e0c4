"""Settings, parsed once at start-up from an injected mapping (``os.environ`` in ``__main__``).

Every setting has an environment variable ``SWITCHBOARD_<NAME>``; a malformed
value fails at start-up with the variable's name, never later.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["ConfigError", "Settings"]

T = TypeVar("T")

DEV_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEV_AUTH_TOKEN = "dev-auth-token-change-me"


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a Switchboard service can be configured with."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "switchboard."
    event_partitions: int = 8
    reply_partitions: int = 16
    replication_factor: int = 1

    account_sid: str = DEV_ACCOUNT_SID
    auth_token: str = DEV_AUTH_TOKEN
    api_key_sid: str = ""
    api_key_secret: str = ""

    public_base_url: str = "http://127.0.0.1:8080"
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    #: Which reply partition this ingress instance owns (StatefulSet ordinal in k8s).
    ingress_instance: int = 0
    processor_port: int = 8081
    http_worker_port: int = 8082
    scheduler_port: int = 8083
    #: A stable name per scheduler replica (e.g. the StatefulSet pod name) turns on Kafka static membership:
    #: a restarted replica gets its timer partitions back at once instead of after the session timeout.
    scheduler_instance_id: str = ""
    #: Kafka static membership for a processor worker (e.g. the pod name): a restarted worker gets its
    #: partitions back at once instead of after the session timeout. Empty = dynamic membership.
    processor_instance_id: str = ""

    validate_webhook_signature: bool = True
    #: Networks/hosts outbound HTTP may reach although private/loopback (e.g. "127.0.0.0/8").
    outbound_allow: tuple[str, ...] = ()
    twilio_api_base: str = "https://api.twilio.com"
    #: Where Send to Flex creates interactions for messages and conversations (Flex's Interactions API); like
    #: ``twilio_api_base`` it receives the account's credentials.
    flex_api_base: str = "https://flex-api.twilio.com"
    #: Where messages of a conversation go (Send Message / Send & Wait For Reply in an incomingConversationMessage
    #: execution: Twilio's Conversations API); it receives the account's credentials.
    conversations_api_base: str = "https://conversations.twilio.com"
    #: Event Streams: publish every execution and step change as Studio's CloudEvents on ``{prefix}studio-events``
    #: (from each http-worker), and POST them to these webhook sinks (comma-separated URLs), signed. Off unless
    #: asked for (as in Twilio, where events flow only to a subscription): it writes ≈ 7 more Kafka messages per
    #: execution of the 6-widget flow (9 → 16) and costs the http-worker ≈ 0.6 ms CPU per execution. Configuring
    #: a sink turns it on.
    event_streams: bool = False
    event_stream_sinks: tuple[str, ...] = ()
    #: The TaskRouter workspace Send to Flex routes interactions in (``WS…``; Studio finds it from the workflow).
    flex_workspace_sid: str = ""
    http_timeout_seconds: float = 10.0
    http_max_response_bytes: int = 65536
    http_max_redirects: int = 5
    http_concurrency: int = 256

    #: The processor's producer linger: batching its many small table, history and command sends. Replies
    #: do not wait for it (they have their own linger-free producer), so it costs webhook TwiML nothing; it
    #: adds up to this much per HTTP hop to a REST-started execution. At 500/s offered (2 cores, overload),
    #: runs interleaved 4/15/4/15 ms: 139, 179, 164, 183 executions/s; 7.8, 6.6, 7.1, 6.8 ms CPU per execution
    #: (an earlier sequence on a quieter machine: 4 ms 207/s, 15 ms 256-269/s, 30 ms 266/s).
    processor_linger_ms: int = 15
    #: How the processor consumes and produces: ``batched`` (its own aiokafka loop, services/processor/loop.py:
    #: a batch of events applied, its rows and outputs produced and acknowledged, then its offsets committed) or
    #: ``faust`` (the earlier faust agent, services/processor/app.py). Both read and write the same changelog.
    processor_loop: str = "batched"
    #: Events the batched loop takes per poll (one produce-and-commit round per batch).
    processor_batch_records: int = 500
    #: Where the processor keeps its tables: ``rocksdb`` (on local disk under ``processor_data_dir``; a
    #: restart reads that plus the changelog's tail) or ``memory`` (a restart re-reads the whole changelog).
    processor_store: str = "rocksdb"
    #: The processor's data folder (its RocksDB files). Empty: a fresh folder per process under /tmp, so
    #: nothing is reused across restarts; give each replica its own persistent folder (a PVC) to reuse it.
    processor_data_dir: str = ""
    webhook_reply_budget_seconds: float = 8.0
    #: How long a REST create (or end) waits for the processor. Longer than a processor failover (its 10 s
    #: session timeout, the rebalance and the new owner's table recovery): a start waiting in Kafka for its
    #: partition's new owner is answered, not refused, when a processor dies or stalls.
    rest_reply_budget_seconds: float = 30.0
    max_request_body_bytes: int = 1_048_576
    max_flow_definition_bytes: int = 1_048_576

    execution_expiry_seconds: int = 30 * 24 * 3600
    history_retention_seconds: int = 30 * 24 * 3600

    #: Where services keep local state on disk (the ingress's history store: ``<data_dir>/ingress-<instance>/``).
    #: In containers a volume (k8s: the StatefulSet's PVC); ``make run`` uses ``.run/data``.
    data_dir: str = "/tmp/switchboard-data"
    #: Where execution history lives: ``sqlite`` (each ingress its own file on local disk) or ``postgres``
    #: (one shared copy for every replica, written by the replicas' consumer group; needs the DSN).
    history_store: str = "sqlite"
    history_postgres_dsn: str = ""
    #: The ingress's SQLite history file; empty: ``<data_dir>/ingress-<instance>/history.sqlite3``.
    history_sqlite_path: str = ""
    #: SQLite page cache per connection (KiB; the store has two): the ingress's memory for history.
    history_cache_kib: int = 8192

    #: How often ingress, http-worker and scheduler sample consumer-group lag (shared/lag.py); 0 turns it off.
    lag_sample_seconds: float = 15.0

    #: Serve the read-only web console at /console/ (static assets that use the REST API with its credentials).
    console_enabled: bool = True

    log_level: str = "INFO"
    log_json: bool = True
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def outbound_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        nets = []
        for item in self.outbound_allow:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue  # a host name, matched by ``outbound_hosts``
        return tuple(nets)

    @property
    def outbound_hosts(self) -> frozenset[str]:
        hosts = set()
        for item in self.outbound_allow:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return frozenset(hosts)

    @property
    def streams_events(self) -> bool:
        """Whether the Event Streams relay runs: asked for, or implied by a configured sink."""
        return self.event_streams or bool(self.event_stream_sinks)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``SWITCHBOARD_*`` variables; unknown ones are ignored."""
        values: dict[str, object] = {}

        def take(name: str, cast: Callable[[str], T]) -> None:
            key = "SWITCHBOARD_" + name.upper()
            if key in env:
                try:
                    values[name] = cast(env[key])
                except ValueError as exc:
                    raise ConfigError(f"{key}: {exc}") from exc

        for f in cls.__dataclass_fields__.values():
            if f.name == "extra":
                continue
            kind = f.type
            if kind == "int":
                take(f.name, int)
            elif kind == "float":
                take(f.name, float)
            elif kind == "bool":
                take(f.name, _bool)
            elif kind == "tuple[str, ...]":
                take(f.name, _list)
            else:
                take(f.name, str)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        if not (self.account_sid.startswith("AC") and len(self.account_sid) == 34):
            raise ConfigError("SWITCHBOARD_ACCOUNT_SID must be an AC… sid of 34 characters")
        if not self.auth_token:
            raise ConfigError("SWITCHBOARD_AUTH_TOKEN must not be empty")
        for item in self.outbound_allow:
            if "/" in item or item.replace(".", "").isdigit() or ":" in item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError as exc:
                    raise ConfigError(f"SWITCHBOARD_OUTBOUND_ALLOW: {exc}") from exc
        if self.event_partitions < 1 or self.reply_partitions < 1:
            raise ConfigError("partition counts must be at least 1")
        if self.processor_loop not in ("batched", "faust"):
            raise ConfigError(f"SWITCHBOARD_PROCESSOR_LOOP must be 'batched' or 'faust', not {self.processor_loop!r}")
        if self.processor_batch_records < 1:
            raise ConfigError("SWITCHBOARD_PROCESSOR_BATCH_RECORDS must be at least 1")
        if self.history_store not in ("sqlite", "postgres"):
            raise ConfigError(f"SWITCHBOARD_HISTORY_STORE must be 'sqlite' or 'postgres', not {self.history_store!r}")
        if self.history_store == "postgres" and not self.history_postgres_dsn:
            raise ConfigError("SWITCHBOARD_HISTORY_STORE=postgres needs SWITCHBOARD_HISTORY_POSTGRES_DSN "
                              "(postgresql://user:password@host:5432/database)")
        if not 0 <= self.ingress_instance < self.reply_partitions:
            raise ConfigError("SWITCHBOARD_INGRESS_INSTANCE must be below SWITCHBOARD_REPLY_PARTITIONS")
