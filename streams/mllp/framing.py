"""MLLP framing: a pure, incremental decoder from bytes as they arrive to whole messages.

MLLP wraps each HL7 v2 message as ``<VT> message <FS><CR>`` (``\\x0b`` ... ``\\x1c\\x0d``).
``FrameDecoder.feed`` takes whatever a socket read returned (half a frame, several
frames, junk between them) and returns what became complete; it never raises and never
holds more than ``max_size`` bytes of one message, whatever the input. The decoder does
no I/O, so it is tested on its own, chunk by chunk.

We are lenient where senders differ and it costs nothing: the CR after ``<FS>`` is
optional (one CR or LF more after it is ignored too), and a ``<VT>`` inside a frame
starts a new frame, the unfinished one being reported as ``Truncated`` (a sender that
gave up on a message half-way and started again must not have its next message
swallowed).

Only those trailing bytes are free. Any other byte outside a frame, whitespace included,
makes the decoder ``pending`` (it is not reported as junk when it is whitespace, but it
is not nothing either): the listener then wants a whole message within its frame
timeout, so a client sending blank lines cannot hold a connection open.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_SIZE",
    "END_BLOCK",
    "START_BLOCK",
    "Frame",
    "FrameDecoder",
    "Junk",
    "Oversized",
    "Truncated",
    "frame",
]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
_TRAILER = b"\x1c\x0d"
#: Default largest message accepted, in bytes (1 MiB).
DEFAULT_MAX_SIZE = 1 << 20
#: Bytes kept of a message that is not delivered whole: enough for its MSH segment (to
#: answer with the right MSA-2) and for the dead letter's excerpt.
HEAD_BYTES = 4096
# Whitespace between frames is what senders put there by habit (CRLF after <FS>); any
# other byte outside a frame is junk, and reported.
_BLANK = b" \t\r\n"
#: Blank bytes taken right after a frame's end block without making the decoder
#: pending: the trailer's CR and one CR or LF more (``<FS><CR><LF>`` is common).
TRAILING_BLANKS = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete message: the bytes between ``<VT>`` and ``<FS>``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A complete frame larger than the maximum: only its first bytes (``head``) were
    kept; ``size`` is the whole payload's length in bytes."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Truncated:
    """A frame that never ended: cut off by a new ``<VT>``, or still open when the
    stream ended (``FrameDecoder.finish``). ``head`` is its first bytes, ``size`` the
    bytes received."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes outside any frame that are not just whitespace: ``head`` is the first of
    them, ``size`` how many there were before the next frame or the end."""

    head: bytes
    size: int


#: What the decoder returns.
Item = Frame | Oversized | Truncated | Junk


def frame(message: bytes) -> bytes:
    """``message`` wrapped in MLLP framing, ready to send."""
    return START_BLOCK + message + _TRAILER


class FrameDecoder:
    """Turns a byte stream into ``Frame``s (and ``Oversized``/``Truncated``/``Junk``).

    ``max_size`` is the largest payload in bytes delivered whole; a larger one is
    skipped to its end while only ``HEAD_BYTES`` of it are kept, so memory per
    connection stays bounded by ``max_size``. Splitting the same stream into different
    chunks always gives the same items.
    """

    __slots__ = (
        "_blank",
        "_buffer",
        "_head",
        "_in_frame",
        "_junk_head",
        "_junk_size",
        "_over",
        "_size",
        "_slack",
        "max_size",
    )

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1 byte")
        self.max_size = max_size
        self._in_frame = False
        self._buffer = bytearray()
        self._size = 0  # payload bytes of the current frame, kept or not
        self._over = False  # the current frame is over max_size: only its head is kept
        self._head = bytearray()
        self._junk_head = bytearray()
        self._junk_size = 0  # non-blank junk bytes seen since the last frame
        self._slack = 0  # blank bytes still free after the last frame's end block
        self._blank = 0  # blank bytes outside a frame beyond those free ones

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (a message is half received)."""
        return self._in_frame

    @property
    def pending(self) -> bool:
        """True while bytes have come since the last complete item that are not yet one:
        a frame half received, junk not yet reported, or whitespace outside a frame
        beyond the CR/LF that may follow a frame's end."""
        return self._in_frame or self._junk_size > 0 or self._blank > 0

    @property
    def buffered(self) -> int:
        """Bytes of the current unfinished frame received so far."""
        return self._size if self._in_frame else 0

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes of the stream; return the items they completed, in order."""
        out: list[Item] = []
        pos, end = 0, len(data)
        while pos < end:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                self._note_junk(data, pos, end if start == -1 else start)
                if start == -1:
                    break
                self._flush_junk(out)
                self._open()
                pos = start + 1
                continue
            stop = data.find(END_BLOCK, pos)
            limit = end if stop == -1 else stop
            restart = data.find(START_BLOCK, pos, limit)
            if restart != -1:
                self._append(data, pos, restart)
                out.append(Truncated(self._kept_head(), self._size))
                self._open()
                pos = restart + 1
                continue
            self._append(data, pos, limit)
            if stop == -1:
                break
            out.append(self._close())
            pos = stop + 1
        return out

    def finish(self) -> list[Item]:
        """The end of the stream: a frame still open comes out as ``Truncated``, junk
        not yet reported as ``Junk``. The decoder is then ready for a new stream."""
        out: list[Item] = []
        if self._in_frame:
            out.append(Truncated(self._kept_head(), self._size))
            self._in_frame = False
            self._buffer = bytearray()
        self._flush_junk(out)
        self._slack = self._blank = 0
        return out

    def _open(self) -> None:
        self._in_frame = True
        self._slack = self._blank = 0
        self._buffer = bytearray()
        self._size = 0
        self._over = False
        self._head = bytearray()

    def _append(self, data: bytes, begin: int, stop: int) -> None:
        if stop <= begin:
            return
        self._size += stop - begin
        if self._over:
            # Over the limit: only the head is kept (the same bytes however the frame
            # was chunked), the rest is counted and dropped.
            if len(self._head) < HEAD_BYTES:
                self._head += data[begin : min(stop, begin + HEAD_BYTES - len(self._head))]
            return
        self._buffer += data[begin:stop]
        if len(self._buffer) > self.max_size:
            self._over = True
            self._head = self._buffer[:HEAD_BYTES]
            self._buffer = bytearray()

    def _close(self) -> Item:
        self._in_frame = False
        self._slack = TRAILING_BLANKS
        item: Item
        if self._over:
            item = Oversized(bytes(self._head), self._size)
        else:
            item = Frame(bytes(self._buffer))
        self._buffer = bytearray()
        return item

    def _kept_head(self) -> bytes:
        return bytes(self._head if self._over else self._buffer[:HEAD_BYTES])

    def _note_junk(self, data: bytes, begin: int, stop: int) -> None:
        if stop <= begin:
            return
        piece = data[begin:stop]
        if not self._junk_size:
            # Whitespace before any real junk: free right after a frame, else counted
            # (not reported: it is not data, but it keeps the decoder pending).
            rest = piece.lstrip(_BLANK)
            blanks = len(piece) - len(rest)
            free = min(blanks, self._slack)
            self._slack -= free
            self._blank += blanks - free
            if not rest:
                return
            piece = rest  # junk counts from its first non-blank byte
            self._slack = 0
        self._junk_size += len(piece)
        if len(self._junk_head) < HEAD_BYTES:
            self._junk_head += piece[: HEAD_BYTES - len(self._junk_head)]

    def _flush_junk(self, out: list[Item]) -> None:
        if self._junk_size:
            out.append(Junk(bytes(self._junk_head), self._junk_size))
        self._junk_head = bytearray()
        self._junk_size = 0
