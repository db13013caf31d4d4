"""Writing JSON Lines to a file, a gzip file (byte-stable: no name, mtime 0) or stdout."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

import orjson

from detectors.errors import ConfigError

__all__ = ["open_output", "write_json_lines", "write_lines"]

_CHUNK = 8192


@contextmanager
def open_output(path: str | None) -> Iterator[IO[bytes]]:
    """A binary stream to ``path``: stdout for ``None`` or ``-``, gzip when it ends in ``.gz``."""
    if path in (None, "-"):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    assert path is not None
    try:
        raw = open(path, "wb")  # noqa: SIM115 - closed below, after the gzip trailer
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        if path.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                yield cast(IO[bytes], gz)
        else:
            yield raw
    finally:
        raw.close()


def write_lines(
    lines: Iterable[bytes],
    out: IO[bytes],
    progress: Callable[[int], None] | None = None,
    every: int = 100_000,
) -> int:
    """Write ``lines`` (each ending in a newline) to ``out``; calls ``progress(count)`` every
    ``every`` lines. Returns the number of lines."""
    count = 0
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        count += 1
        if len(chunk) == _CHUNK:
            out.write(b"".join(chunk))
            chunk.clear()
        if progress is not None and count % every == 0:
            progress(count)
    if chunk:
        out.write(b"".join(chunk))
    return count


def write_json_lines(objects: Iterable[Any], out: IO[bytes]) -> int:
    """Write each object as one JSON line; returns how many."""
    return write_lines((orjson.dumps(o) + b"\n" for o in objects), out)
