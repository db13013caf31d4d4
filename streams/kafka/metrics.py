"""Prometheus metrics of a worker: the engine metrics (``detectors.metrics``) over the
sum of all its partitions' engines, plus consumer lag. Built on an injected registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors.engine import Engine, EngineStats
from detectors.feeds import FeedHealth, FeedSpec
from detectors.metrics import EngineMetrics
from detectors.records import Outcome
from streams.kafka.partitions import stats_sum

__all__ = ["WorkerMetrics"]


class _Detector:
    """Stands for one detector over all partitions (name and summed open count)."""

    def __init__(self, name: str, states: Callable[[], list[Any]]) -> None:
        self.name = name
        self._states = states

    def open_count(self) -> int:
        n = 0
        for st in self._states():
            for d in st.engine.detectors:
                if d.name == self.name and hasattr(d, "open_count"):
                    n += d.open_count()
        return n


class _AllEngines:
    """What ``EngineMetrics`` reads from an engine, summed over partitions. The
    watermark shown is the lowest one: detection is complete only up to it."""

    def __init__(self, states: Callable[[], list[Any]], names: list[str]) -> None:
        self._states = states
        self.detectors = [_Detector(n, states) for n in names]
        self.on_failure: Callable[[Outcome], None] | None = None

    @property
    def stats(self) -> EngineStats:
        return stats_sum(st.engine.stats for st in self._states())

    @property
    def watermark(self) -> float:
        marks = [st.engine.watermark for st in self._states()]
        return min(marks) if marks else float("-inf")


class _LagCollector(Collector):
    def __init__(
        self,
        lag: Callable[[], dict[str, int]],
        uncommitted: Callable[[], dict[str, int]] | None,
    ) -> None:
        self.lag = lag
        self.uncommitted = uncommitted

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            "carewatch_kafka_lag_messages",
            "Messages of an assigned partition not yet processed.",
            labels=["partition"],
        )
        for name, n in sorted(self.lag().items()):
            g.add_metric([name], n)
        yield g
        if self.uncommitted is None:
            return
        u = GaugeMetricFamily(
            "carewatch_kafka_uncommitted_messages",
            "Messages of an assigned partition processed but not yet committed for the "
            "group: what a restart or a takeover would process again.",
            labels=["partition"],
        )
        for name, n in sorted(self.uncommitted().items()):
            u.add_metric([name], n)
        yield u


class WorkerMetrics:
    """Metrics of a worker on ``registry``. ``states`` returns the current partition
    states; ``lag`` the unprocessed messages per partition, ``uncommitted`` the processed
    but uncommitted ones; ``feeds`` the configured feeds whose health is served;
    ``live``: the worker ticks with the wall clock (not ``--replay``); ``site_labels``
    the allowed ``site`` label values. ``clock`` gives Unix seconds."""

    def __init__(
        self,
        registry: CollectorRegistry,
        states: Callable[[], list[Any]],
        detector_names: list[str],
        lag: Callable[[], dict[str, int]],
        clock: Callable[[], float] = time.time,
        *,
        feeds: Sequence[FeedSpec] = (),
        live: bool = True,
        site_labels: Sequence[str] = (),
        uncommitted: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._states = states
        self.view = _AllEngines(states, detector_names)
        self.engine_metrics = EngineMetrics(cast(Engine, self.view), registry, clock)
        self.engine_metrics.site_labels = frozenset(site_labels)
        self.feeds = FeedHealth(feeds, registry, clock)
        registry.register(_LagCollector(lag, uncommitted))
        mode = Gauge(
            "carewatch_worker_live",
            "1 when the worker runs live (wall-clock ticks move the watermark), 0 in replay.",
            registry=registry,
        )
        mode.set(1 if live else 0)

    def attach(self) -> None:
        """Wire failure observation, feed health and rejected counts of the current
        partitions (call after partitions are added)."""
        for st in self._states():
            st.engine.on_failure = self.engine_metrics.observe_failure
            if hasattr(st, "on_event"):
                st.on_event = self.feeds.observe
        total: dict[str, int] = {}
        for st in self._states():
            for code, n in st.rejected.items():
                total[code] = total.get(code, 0) + n
        self.engine_metrics.rejected = total
