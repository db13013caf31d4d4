"""The worklist web app over an operations store.

  carewatch serve --store carewatch.db                      http://127.0.0.1:8080/
  carewatch serve --store postgresql://... --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem
  carewatch serve --store ... --trusted-proxy 10.0.0.5 --proxy-user-header X-Remote-User
  carewatch serve --store ... --metrics-port 9466 --rules rules.yaml   Prometheus metrics

Every page needs a signed-in account (carewatch users add). Listens on 127.0.0.1 unless
told otherwise; session cookies are marked Secure when served over TLS (--tls-cert) or
when --secure-cookies says a TLS proxy stands in front. Times are shown in --timezone.
The server's own log names no patient (no query strings). See docs/worklist.md.

--metrics-port serves Prometheus metrics of the worklist (open failures by detector and
site, read from the store at each scrape) on a port of its own, without sign-in, like a
worker's: only counts and times, labelled by the detectors and sites of --rules, never a
patient. See docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from detectors.errors import ConfigError
from streams.commands import port

if TYPE_CHECKING:
    from streams.store import Store

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

    p.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus metrics of the worklist on this port (default: none)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address of the metrics port (default: %(default)s)",
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        default=os.environ.get("CAREWATCH_RULES"),
        help="the workers' rules file: its detectors and metrics.site_labels bound the "
        "metrics' labels (default: $CAREWATCH_RULES, else the built-in detectors and no site)",
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
    if args.metrics_port is not None:
        if args.metrics_port == args.port and args.metrics_host == args.host:
            raise ConfigError("--metrics-port must differ from --port")
        _check_port(args.metrics_host, args.metrics_port)
    store = open_store(args.store)
    if args.metrics_port is not None:
        try:
            _serve_metrics(store, args)
        except ConfigError:
            store.close()
            raise
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


def _serve_metrics(store: Store, args: argparse.Namespace) -> None:
    """The worklist's metrics on their own port (a thread of prometheus_client's)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from detectors.metrics import register_build_info
    from detectors.rules import load_settings
    from streams.store.metrics import WorklistMetrics

    settings = load_settings(args.rules)
    registry = CollectorRegistry()
    register_build_info(registry)
    WorklistMetrics(store, registry, [d.name for d in settings.detectors], settings.site_labels)
    try:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=registry)
    except OSError as exc:
        where = f"{args.metrics_host}:{args.metrics_port}"
        raise ConfigError(f"cannot serve metrics on {where}: {exc.strerror}") from None
    print(
        f"carewatch: serving metrics on http://{args.metrics_host}:{args.metrics_port}/metrics",
        flush=True,
    )


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
