"""TLS for the MLLP listener: a server certificate and key, and optionally the CA that
client certificates must be signed by (mutual TLS, as many NHS interface links
require)."""

from __future__ import annotations

import ssl

from detectors.errors import ConfigError

__all__ = ["server_tls"]


def server_tls(cert: str, key: str, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A server ``SSLContext`` (TLS 1.2 or later) from PEM files: ``cert`` (the
    certificate, followed by any intermediates), ``key`` (its private key) and, for
    mutual TLS, ``client_ca`` (CA bundle a client's certificate must chain to; a client
    without one is refused). Raises ``ConfigError`` naming the file that cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use the TLS certificate {cert} with the key {key}: {_why(exc)} "
            "(both PEM; the certificate first, then any intermediates)"
        ) from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the client CA file {client_ca}: {_why(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc)
