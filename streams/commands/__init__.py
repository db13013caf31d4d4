"""One module per ``carewatch`` sub-command (``add_arguments`` + ``main``), and the
argument types they share."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["invocation", "port"]


def port(text: str) -> int:
    """An argparse type: a TCP port to serve on, 1-65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port {n} is out of range (1-65535)")
    return n


def invocation(argv0: str | None = None) -> str:
    """How to call ``carewatch`` again, for commands printed for people to copy: plain
    ``carewatch`` when that name on the PATH is this very program (an active venv, an
    install), else this program's path, relative to the working directory when it is
    inside it (``.venv/bin/carewatch`` after ``deploy/local/carewatch``; not from ``/``). ``argv0``
    defaults to ``sys.argv[0]``; run as ``python -m streams.cli``, it is that."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    program = Path(argv0)
    if program.name != "carewatch" or not program.is_file():
        return f"{shlex.quote(sys.executable)} -m streams.cli"
    on_path = shutil.which("carewatch")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(program):
        return "carewatch"
    absolute = program.absolute()
    here = Path.cwd()
    if here != Path(here.anchor) and absolute.is_relative_to(here):
        return shlex.quote(str(absolute.relative_to(here)))
    return shlex.quote(str(absolute))
