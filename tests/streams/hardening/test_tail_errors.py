"""`carewatch tail` without a reachable broker: one line on stderr, no traceback."""

from __future__ import annotations

from typing import Any

import pytest

from streams.cli import main
from streams.kafka.config import KafkaConfig


def test_tail_without_a_broker_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # kafka-python tries for 30 s before it gives up; 2 s shows the same failure sooner.
    plain = KafkaConfig.kafka_python_kwargs

    def quick(self: KafkaConfig) -> dict[str, Any]:
        return {**plain(self), "bootstrap_timeout_ms": 2000}

    monkeypatch.setattr(KafkaConfig, "kafka_python_kwargs", quick)
    code = main(["tail", "failures", "--bootstrap", "127.0.0.1:1", "--idle-exit", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("carewatch tail: error: cannot reach Kafka at 127.0.0.1:1")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
