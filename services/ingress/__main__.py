"""``python -m services.ingress``: run one ingress instance."""

from __future__ import annotations

import os

from aiohttp import web

from shared import metrics
from shared.logs import configure_logging
from shared.settings import Settings

from .app import create_app


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging("ingress", settings.log_level, settings.log_json)
    metrics.BUILD_INFO.info({"version": metrics.VERSION, "component": "ingress"})
    web.run_app(create_app(settings), host=settings.ingress_host, port=settings.ingress_port,
                access_log=None, print=None, shutdown_timeout=10)


if __name__ == "__main__":
    main()
