"""Canonical events from JSON Lines files (plain or ``.gz``) or standard input."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson

from detectors.errors import ConfigError, EventError
from detectors.events import Event, event_from_dict
from streams.deadletter import Rejected

__all__ = ["open_input", "read_jsonl"]


def open_input(path: str) -> IO[bytes]:
    """Open ``path`` for binary reading (``-`` is stdin; ``.gz`` is decompressed).

    Raises ``ConfigError`` with a one-line reason when the file cannot be opened.
    """
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(f"{path} is a directory, not an input file")
        raw = p.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if p.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def read_jsonl(path: str, stream: IO[bytes] | None = None) -> Iterator[Event | Rejected]:
    """Yield each line of ``path`` as an ``Event``, or as a ``Rejected`` with its line
    number and reason. Blank lines are skipped."""
    f = stream if stream is not None else open_input(path)
    loads = orjson.loads
    from_dict = event_from_dict
    try:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                yield Rejected(path, n, "not_json", f"not valid JSON: {exc}", _text(line))
                continue
            try:
                yield from_dict(obj)
            except EventError as exc:
                yield Rejected(path, n, "contract", str(exc), _text(line))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield Rejected(path, "end", "parse_error", f"input ended with an error: {exc}")
    finally:
        if f is not sys.stdin.buffer and not isinstance(f, io.BytesIO):
            f.close()


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")
