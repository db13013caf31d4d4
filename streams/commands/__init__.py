"""One module per ``carewatch`` sub-command (``add_arguments`` + ``main``), and the
argument types they share."""

from __future__ import annotations

import argparse

__all__ = ["port"]


def port(text: str) -> int:
    """An argparse type: a TCP port to serve on, 1-65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port {n} is out of range (1-65535)")
    return n
