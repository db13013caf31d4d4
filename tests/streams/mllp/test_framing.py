"""The MLLP frame decoder, fed the way a socket delivers: in arbitrary pieces."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.mllp.framing import (
    HEAD_BYTES,
    Frame,
    FrameDecoder,
    Item,
    Junk,
    Oversized,
    Truncated,
    frame,
)

MSG_A = b"MSH|^~\\&|A|B|C|D|20260302093000||ADT^A04|1|P|2.5\rPID|1||P1"
MSG_B = b"MSH|^~\\&|A|B|C|D|20260302093000||ADT^A04|2|P|2.5\rPID|1||P2"


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Item]:
    out: list[Item] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.finish()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def test_one_frame_in_one_read() -> None:
    assert FrameDecoder().feed(frame(MSG_A)) == [Frame(MSG_A)]


def test_a_frame_split_across_reads_comes_out_once_complete() -> None:
    decoder = FrameDecoder()
    data = frame(MSG_A)
    assert decoder.feed(data[:1]) == []
    assert decoder.in_frame
    assert decoder.feed(data[1:20]) == []
    assert decoder.buffered == 19
    assert decoder.feed(data[20:-1]) == [Frame(MSG_A)]  # <FS> ends it; the CR is optional
    assert decoder.feed(data[-1:]) == []
    assert not decoder.in_frame and decoder.finish() == []


def test_several_frames_in_one_read_and_the_start_of_the_next() -> None:
    decoder = FrameDecoder()
    data = frame(MSG_A) + frame(MSG_B) + frame(MSG_A)[:10]
    assert decoder.feed(data) == [Frame(MSG_A), Frame(MSG_B)]
    assert decoder.feed(frame(MSG_A)[10:]) == [Frame(MSG_A)]


def test_whitespace_between_frames_is_ignored_and_other_junk_reported() -> None:
    decoder = FrameDecoder()
    data = b"\r\n" + frame(MSG_A) + b"\n\n" + frame(MSG_B) + b"\r\nGET / HTTP/1.0\r\n\r\n"
    assert decoder.feed(data) == [Frame(MSG_A), Frame(MSG_B)]
    # Junk is reported when the next frame starts or the stream ends.
    assert decoder.feed(frame(MSG_A)) == [Junk(b"GET / HTTP/1.0\r\n\r\n", 18), Frame(MSG_A)]
    assert decoder.feed(b"tail") == []
    assert decoder.finish() == [Junk(b"tail", 4)]


@pytest.mark.parametrize("trailer", [b"", b"\r", b"\n", b"\r\n"])
def test_a_cr_or_lf_after_a_frame_leaves_nothing_pending(trailer: bytes) -> None:
    decoder = FrameDecoder()
    data = frame(MSG_A)[:-1] + trailer  # <FS> then nothing, CR, LF or CRLF
    for byte in [data[i : i + 1] for i in range(len(data))]:
        decoder.feed(byte)
    assert not decoder.pending


@pytest.mark.parametrize("blanks", [b"\r", b" ", b"\r\n\r\n", b"\n" * 50])
def test_whitespace_that_is_not_a_frame_trailer_keeps_the_decoder_pending(blanks: bytes) -> None:
    # Not junk (not reported), but not nothing: the listener's frame timeout must run,
    # or a client sending a blank line now and then would hold its connection forever.
    first = FrameDecoder()
    assert first.feed(blanks) == [] and first.pending  # before any frame
    after = FrameDecoder()
    assert after.feed(frame(MSG_A) + b"\n") == [Frame(MSG_A)] and not after.pending
    for byte in [blanks[i : i + 1] for i in range(len(blanks))]:
        assert after.feed(byte) == []
    assert after.pending
    # the next frame is what it waited for; the blanks were never junk
    assert after.feed(frame(MSG_B)) == [Frame(MSG_B)] and not after.pending
    # <FS><CR> and one blank more are free; a second is not
    assert after.feed(b" ") == [] and not after.pending
    assert after.feed(b" ") == [] and after.pending and after.finish() == []
    assert not after.pending


def test_a_frame_over_the_maximum_is_skipped_to_its_end_keeping_its_head() -> None:
    decoder = FrameDecoder(max_size=len(MSG_A))
    big = MSG_A + b"\rOBX|" + b"x" * 10_000
    items = decoder.feed(frame(MSG_A) + frame(big)[:3000])
    assert items == [Frame(MSG_A)]  # exactly the maximum is fine
    assert decoder.buffered == 2999
    items = decoder.feed(frame(big)[3000:] + frame(MSG_B[: len(MSG_A)]))
    assert items == [Oversized(big[:HEAD_BYTES], len(big)), Frame(MSG_B[: len(MSG_A)])]


def test_memory_stays_bounded_however_large_the_frame() -> None:
    decoder = FrameDecoder(max_size=1000)
    decoder.feed(b"\x0b" + MSG_A)
    for _ in range(200):
        assert decoder.feed(b"y" * 65536) == []
        assert len(decoder._buffer) <= 1000 + 65536
    [item] = decoder.feed(b"\x1c\r")
    assert isinstance(item, Oversized)
    assert item.size == len(MSG_A) + 200 * 65536 and item.head.startswith(MSG_A)


def test_a_start_block_inside_a_frame_cuts_the_frame_off() -> None:
    decoder = FrameDecoder()
    data = b"\x0b" + MSG_A[:30] + frame(MSG_B)
    assert decoder.feed(data) == [Truncated(MSG_A[:30], 30), Frame(MSG_B)]


def test_a_frame_open_at_the_end_of_the_stream_is_truncated() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame(MSG_A) + b"\x0b" + MSG_B[:25]) == [Frame(MSG_A)]
    assert decoder.finish() == [Truncated(MSG_B[:25], 25)]
    assert not decoder.in_frame
    assert decoder.feed(frame(MSG_A)) == [Frame(MSG_A)]  # usable again


def test_empty_frames_and_empty_reads() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x0b\x1c\r\x0b\x1c\r") == [Frame(b""), Frame(b"")]


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameDecoder(max_size=0)


messages = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    msgs=messages,
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    max_size=st.integers(min_value=1, max_value=400),
)
def test_any_split_of_a_valid_stream_gives_the_same_messages(
    msgs: list[bytes], cuts: list[int], max_size: int
) -> None:
    stream = b"".join(frame(m) for m in msgs)
    items = feed_all(FrameDecoder(max_size), split_at(stream, cuts))
    assert items == [
        Frame(m) if len(m) <= max_size else Oversized(m[:HEAD_BYTES], len(m)) for m in msgs
    ]


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=2000)
    | st.lists(
        st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\n", b" ", b"MSH|", b"x" * 50]), max_size=60
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
    max_size=st.integers(min_value=1, max_value=300),
)
def test_arbitrary_bytes_in_arbitrary_chunks_never_crash_and_split_the_same(
    data: bytes, cuts: list[int], max_size: int
) -> None:
    whole = feed_all(FrameDecoder(max_size), [data])
    pieces = feed_all(FrameDecoder(max_size), split_at(data, cuts))
    assert pieces == whole
    for item in whole:
        if isinstance(item, Frame):
            assert len(item.payload) <= max_size
        else:
            assert item.size >= len(item.head) and len(item.head) <= HEAD_BYTES
    # Every non-blank byte is accounted for: in a frame, in junk, or as framing.
    delivered = sum(len(i.payload) if isinstance(i, Frame) else i.size for i in whole)
    assert delivered <= len(data)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\n", b" ", b"MSH|", b"x"]), max_size=40
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20),
)
def test_what_is_pending_does_not_depend_on_how_the_bytes_were_split(
    data: bytes, cuts: list[int]
) -> None:
    # The listener's timeouts follow ``pending``: the same bytes must give the same
    # answer however the socket delivered them.
    whole, pieces = FrameDecoder(), FrameDecoder()
    whole.feed(data)
    for chunk in split_at(data, cuts):
        pieces.feed(chunk)
    assert pieces.pending == whole.pending
