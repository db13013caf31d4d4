"""The listener package's public names: exported on purpose, importable, documented."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import streams.mllp as mllp

PUBLIC = {
    "AckError",
    "DeadLetterFile",
    "Decision",
    "FileHandoff",
    "Frame",
    "FrameDecoder",
    "Handoff",
    "HandoffError",
    "Junk",
    "KafkaHandoff",
    "ListenerSettings",
    "MemoryHandoff",
    "MessageHeader",
    "MllpListener",
    "MllpMetrics",
    "Oversized",
    "Truncated",
    "build_ack",
    "dead_letter_record",
    "decide",
    "frame",
    "read_header",
    "refuse",
}
MODULES = (
    "ack",
    "appender",
    "dead_letter",
    "decide",
    "framing",
    "handoff",
    "kafka_handoff",
    "metrics",
    "server",
)


def test_the_public_api_is_what_it_says() -> None:
    assert set(mllp.__all__) == PUBLIC
    for name in PUBLIC:
        thing = getattr(mllp, name)
        assert inspect.getdoc(thing), f"{name} has no docstring"


def test_every_module_declares_and_documents_its_exports() -> None:
    for name in MODULES:
        module = importlib.import_module(f"streams.mllp.{name}")
        assert module.__doc__, name
        for export in module.__all__:
            assert hasattr(module, export), f"{name}.{export}"


def test_importing_the_package_does_not_import_the_kafka_client() -> None:
    # The Kafka client is only needed with --kafka-bootstrap; a file-only site never loads it.
    code = "import sys, streams.mllp; print('kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
