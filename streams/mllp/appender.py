"""Appending lines to a file durably, for many concurrent writers at once.

``DurableAppender.append`` returns only after the bytes are written, flushed and
``fsync``-ed, so an ACK sent after it cannot be for data a power cut would lose. Writers
that arrive while a write is in progress are grouped into the next one (group commit):
one ``fsync`` serves every connection waiting, instead of one each. The blocking calls
run in a worker thread so the event loop keeps serving other connections.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from detectors.errors import RuntimeFault

__all__ = ["AppendError", "DurableAppender"]


class AppendError(RuntimeFault):
    """The file could not be written (disk full, permissions, I/O error)."""


class DurableAppender:
    """Appends to ``path`` (created, with its directory entry synced, if new).

    A file that does not end with a newline (a line cut short by a crash) gets one
    first, so the cut line stays one bad line and the next lines are whole.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        try:
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
            if created:
                _sync_directory(self.path.parent)
            elif self._file.tell() and not _ends_with_newline(self.path):
                self._file.write(b"\n")
        except OSError as exc:
            raise AppendError(f"cannot append to {self.path}: {exc.strerror or exc}") from None
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._cut = False  # a failed write may have left a partial line
        self._closed = False

    async def append(self, data: bytes) -> None:
        """Write ``data`` (whole lines) durably; raises ``AppendError`` if it could not be."""
        if self._closed:
            raise AppendError(f"{self.path} is closed")
        if not data:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._queue.append((data, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        # Shielded: a writer that gives up waiting must not cancel the others' write.
        await asyncio.shield(done)

    async def close(self) -> None:
        """Wait for pending writes, then close the file."""
        self._closed = True
        if self._writer is not None:
            await self._writer
        self._file.close()

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                data = b"".join(d for d, _ in batch)
                if self._cut:
                    data = b"\n" + data
                try:
                    await asyncio.to_thread(self._write, data)
                except OSError as exc:
                    self._cut = True
                    error = AppendError(f"cannot write {self.path}: {exc.strerror or exc}")
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                else:
                    self._cut = False
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())


def _retrieve(done: asyncio.Future[None]) -> None:
    # The error is raised to the writer who waits; one who stopped waiting (cancelled)
    # must not leave a "never retrieved" warning behind.
    if not done.cancelled():
        done.exception()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable (its directory entry), where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the data itself is synced
    finally:
        os.close(fd)
