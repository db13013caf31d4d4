"""The worklist web app over an operations store.

  carewatch serve --store carewatch.db                      http://127.0.0.1:8080/
  carewatch serve --store postgresql://... --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem
  carewatch serve --store ... --trusted-proxy 10.0.0.5 --proxy-user-header X-Remote-User

Every page needs a signed-in account (carewatch users add). Listens on 127.0.0.1 unless
told otherwise; session cookies are marked Secure when served over TLS (--tls-cert) or
when --secure-cookies says a TLS proxy stands in front. Times are shown in --timezone.
The server's own log names no patient (no query strings). See docs/worklist.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from detectors.errors import ConfigError
from streams.commands import port

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get("CAREWATCH_STORE"),
        help="the store: an SQLite file or a postgresql:// URL (default: $CAREWATCH_STORE)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=port, default=8080, help="port (default: %(default)s)")
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        default="Europe/London",
        help="the site's time zone for every time shown (IANA name; default: %(default)s)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark cookies Secure although this server speaks plain HTTP (a TLS proxy in front)",
    )
    p.add_argument(
        "--trusted-proxy",
        metavar="ADDR",
        action="append",
        default=[],
        help="an SSO proxy's address whose user header is believed (repeatable; off by default)",
    )
    p.add_argument(
        "--proxy-user-header",
        metavar="NAME",
        default="X-Remote-User",
        help="the header naming the signed-in user (default: %(default)s; only with --trusted-proxy)",
    )


def main(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from streams.store import open_store
    from streams.web.app import WebSettings, build_app
    from streams.web.server import serve

    if not args.store:
        raise ConfigError("name the store with --store URL (or set CAREWATCH_STORE)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    for name in (args.tls_cert, args.tls_key):
        if name and not Path(name).is_file():
            raise ConfigError(f"no such file: {name}")
    try:
        zone = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {args.timezone!r} (an IANA name such as Europe/London)"
        ) from None
    _check_port(args.host, args.port)
    store = open_store(args.store)
    settings = WebSettings(
        zone=zone,
        secure_cookies=bool(args.tls_cert) or args.secure_cookies,
        trusted_proxies=frozenset(args.trusted_proxy),
        proxy_user_header=args.proxy_user_header,
    )
    app = build_app(store, settings)
    scheme = "https" if args.tls_cert else "http"
    print(f"carewatch: serving the worklist on {scheme}://{args.host}:{args.port}/", flush=True)
    try:
        serve(app, args.host, args.port, args.tls_cert, args.tls_key)
    finally:
        store.close()
    return 0


def _check_port(host: str, number: int) -> None:
    """Say clearly that the address is taken, before uvicorn says it in a log line."""
    import socket

    try:
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, _, _, address = infos[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{number}: {exc.strerror}; pick another --port"
            ) from None
