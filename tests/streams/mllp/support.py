"""Helpers for the listener tests: a listener on an ephemeral port, MLLP clients, ACK
parsing, and the files the listener writes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streams.mllp.dead_letter import DeadLetterFile
from streams.mllp.framing import frame
from streams.mllp.handoff import FileHandoff, Handoff
from streams.mllp.metrics import MllpMetrics
from streams.mllp.server import ListenerSettings, MllpListener

HL7_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "samples" / "hl7v2"
SAMPLES = sorted(HL7_DIR.glob("*.hl7"))
#: Generous bound on any single wait, so a broken listener fails a test, never hangs it.
WAIT = 20.0


def sample(name: str) -> bytes:
    return (HL7_DIR / name).read_bytes()


@dataclass
class Ack:
    """The parts of a received ACK the tests look at."""

    msh: list[str]
    code: str
    control_id: str
    text: str
    err: list[str] | None


def parse_ack(data: bytes) -> Ack:
    assert data.startswith(b"\x0b") and data.endswith(b"\x1c\r"), data[:40]
    segments = data[1:-2].decode().rstrip("\r").split("\r")
    msh = segments[0].split("|")
    msa = [*segments[1].split("|"), "", "", ""]
    err = segments[2].split("|") if len(segments) > 2 else None
    return Ack(msh, msa[1], msa[2], msa[3], err)


@dataclass
class Running:
    listener: MllpListener
    registry: CollectorRegistry
    out: Path
    rejected: Path

    @property
    def port(self) -> int:
        return self.listener.address[1]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value

    def events(self) -> list[dict[str, Any]]:
        return _jsonl(self.out)

    def dead(self) -> list[dict[str, Any]]:
        return _jsonl(self.rejected)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@asynccontextmanager
async def listening(
    tmp_path: Path, handoff: Handoff | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """A listener on 127.0.0.1 and a free port, writing into ``tmp_path``; stopped
    (gracefully) on leaving the block."""
    out, rejected = tmp_path / "events.jsonl", tmp_path / "rejected.jsonl"
    registry = CollectorRegistry()
    listener = MllpListener(
        ListenerSettings(host="127.0.0.1", port=0, **settings),
        handoff or FileHandoff(out),
        DeadLetterFile(rejected),
        metrics=MllpMetrics(registry),
        clock=lambda: 1772452800.0,
    )
    await listener.start()
    try:
        yield Running(listener, registry, out, rejected)
    finally:
        await listener.stop()


class Client:
    """One MLLP connection that sends a message and waits for its ACK, as senders do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes, pieces: int = 1) -> None:
        """Write ``data`` (already framed) in ``pieces`` separate writes."""
        step = max(1, -(-len(data) // pieces))
        for at in range(0, len(data), step):
            self.writer.write(data[at : at + step])
            await self.writer.drain()

    async def ack(self) -> Ack:
        return parse_ack(await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), WAIT))

    async def exchange(self, message: bytes, pieces: int = 1) -> Ack:
        await self.send(frame(message), pieces)
        return await self.ack()

    async def at_eof(self) -> bool:
        """True once the listener has closed the connection (waits for it)."""
        rest = await asyncio.wait_for(self.reader.read(), WAIT)
        return rest == b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()
