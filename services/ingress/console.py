"""The read-only web console: static assets under ``/console/`` that talk only to the public REST API.

The server side is deliberately thin: it serves a fixed set of files and
nothing else. The page asks for the API credentials in a login form, keeps
them in the tab's ``sessionStorage`` and sends them as a Basic ``Authorization``
header on every REST call, so the assets themselves carry no data and need no
auth (``PUBLIC_PREFIX`` is exempt from the REST API's credentials check). A
strict Content-Security-Policy (scripts only from this origin, no inline
script) backs up the escaping the page does with DOM text nodes.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.settings import Settings

__all__ = ["ASSETS", "PUBLIC_PREFIX", "add_console_routes"]

#: Paths under this prefix are served without credentials (the assets hold no data).
PUBLIC_PREFIX = "/console"

ASSETS = Path(__file__).with_name("console_assets")

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".txt": "text/plain"}

_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # the page is tiny and changes with the code: always revalidate rather than run a stale bundle against a new API
    "Cache-Control": "no-cache",
}


def _files() -> dict[str, Path]:
    """The servable files, fixed at start-up: a request can never name a path outside this set."""
    return {path.name: path for path in sorted(ASSETS.iterdir()) if path.is_file() and path.suffix in _TYPES}


def add_console_routes(app: web.Application, settings: Settings) -> None:
    """Serve the console at ``/console/`` unless ``SWITCHBOARD_CONSOLE_ENABLED`` is false."""
    if not settings.console_enabled:
        return
    files = {name: path.read_bytes() for name, path in _files().items()}

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PUBLIC_PREFIX + "/")

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        body = files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=_TYPES[Path(name).suffix], charset="utf-8", headers=_HEADERS)

    app.router.add_get(PUBLIC_PREFIX, redirect)
    app.router.add_get(PUBLIC_PREFIX + "/", asset)
    app.router.add_get(PUBLIC_PREFIX + "/{name}", asset)
