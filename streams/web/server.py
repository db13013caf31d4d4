"""Running the app: uvicorn, with its own access log off (it would print query strings,
and a search holds a patient id) and ours on (method, path, status, milliseconds)."""

from __future__ import annotations

import logging
import sys

from starlette.types import ASGIApp

__all__ = ["serve"]


def serve(app: ASGIApp, host: str, port: int, cert: str | None, key: str | None) -> None:
    """Serve ``app`` on ``host:port`` until interrupted; HTTPS when ``cert`` and ``key``."""
    import uvicorn

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    web_log = logging.getLogger("carewatch.web")
    web_log.addHandler(handler)
    web_log.setLevel(logging.INFO)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        # the client address is the socket's: X-Forwarded-For is not believed
        proxy_headers=False,
        server_header=False,
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
        # on SIGTERM, wait this long (seconds) for open connections, then close them
        timeout_graceful_shutdown=5,
    )
