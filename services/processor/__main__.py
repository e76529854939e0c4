"""``python -m services.processor``: run one processor worker."""

from __future__ import annotations

import os
import sys

from shared import metrics
from shared.logs import configure_logging
from shared.settings import Settings

from .app import create_app


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging("processor", settings.log_level, settings.log_json)
    metrics.BUILD_INFO.info({"version": metrics.VERSION, "component": "processor"})
    app = create_app(settings, worker_id=os.environ.get("SWITCHBOARD_WORKER_ID", str(os.getpid())))
    # faust's own CLI spells levels its way ("warn", "crit").
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(), settings.log_level.lower())
    # --quiet: no banner on stdout, so the log stream is JSON lines only.
    sys.argv = [sys.argv[0], "--quiet", "worker", "--loglevel", level]
    app.main()


if __name__ == "__main__":
    main()
