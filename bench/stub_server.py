"""The HTTP stub the benchmark flows call: answers every request at once with a small JSON object.

``python -m bench.stub_server PORT`` (its own process, so the load generator does not share its loop).
"""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"ok":true,"person":{"name":"Bob","age":40}}'


async def answer(_: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
