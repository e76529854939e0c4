"""``python -m devtools.create_topics``: create Switchboard's topics once Kafka answers (compose/k8s one-shot job).

Reads the same ``SWITCHBOARD_*`` settings as the services (bootstrap, prefix,
partition counts, replication factor); existing topics are left alone, so it is
safe to run on every deploy. Retries for ``--wait`` seconds while the broker starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from shared.settings import Settings
from shared.topics import create_topics

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="create_topics")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to keep retrying while Kafka starts")
    args = parser.parse_args(argv)
    settings = Settings.from_env(os.environ)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            created = create_topics(settings)
        except Exception as exc:  # noqa: BLE001 - the broker may still be starting
            if time.monotonic() > deadline:
                print(f"could not create topics on {settings.kafka_bootstrap}: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
            continue
        print(f"topics ready on {settings.kafka_bootstrap}; created: {', '.join(created) or 'none'}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
