"""Prometheus metrics of the engine, built on an injected registry (never the global one).

Counters the engine keeps anyway are read at scrape time by a custom collector, so the
per-event path pays nothing for metrics. Label values are bounded by construction:
``detector`` and ``outcome`` come from code and configuration, ``type`` from the routing
table (anything else is ``other``), ``site`` from the configured allowlist (anything else
is ``other``), and ``reason`` from the fixed set of rejection codes. Patient identifiers
and free text can therefore never become a label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors.engine import Engine
from detectors.records import Outcome

__all__ = ["REJECT_CODES", "SEVERITIES", "EngineMetrics", "build_labels", "register_build_info"]

#: The only values the ``reason`` label of rejected inputs may take (the dead-letter
#: kinds of ``streams.deadletter``; anything else is counted as ``other``).
REJECT_CODES: tuple[str, ...] = ("invalid", "unsupported", "no-event", "too-large", "other")

#: The values the ``severity`` label of ``carewatch_failures_total`` may take (from the
#: opportunity's ``severity`` or ``priority`` attr; anything else is ``other``).
SEVERITIES: frozenset[str] = frozenset(
    {"critical", "abnormal", "stat", "urgent", "routine", "none"}
)

_OVERDUE_BUCKETS = (
    60,
    300,
    900,
    3600,
    4 * 3600,
    12 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    30 * 86400,
)


class _EngineCollector(Collector):
    def __init__(self, metrics: EngineMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        engine = self.m.engine
        st = engine.stats
        events = CounterMetricFamily(
            "carewatch_events",
            "Events processed, by type (unknown types as 'other').",
            labels=["type"],
        )
        for etype, n in sorted(st.events_by_type.items()):
            events.add_metric([etype], n)
        yield events
        dups = CounterMetricFamily(
            "carewatch_duplicate_events", "Events ignored as duplicates (same id)."
        )
        dups.add_metric([], st.duplicates)
        yield dups
        late = CounterMetricFamily(
            "carewatch_late_events",
            "Events that arrived behind the watermark (beyond the allowed lateness).",
        )
        late.add_metric([], st.late_events)
        yield late
        outcomes = CounterMetricFamily(
            "carewatch_outcomes",
            "Opportunities decided, each counted once under its first decision; a later "
            "amendment (missed->late) is counted in carewatch_outcome_amendments_total only.",
            labels=["detector", "outcome", "site"],
        )
        amendments = CounterMetricFamily(
            "carewatch_outcome_amendments",
            "Decisions amended (from missed to late, met or void): final outcome counts are "
            "carewatch_outcomes_total plus amendments to it minus amendments from it.",
            labels=["detector", "from", "to", "site"],
        )
        for (det, outcome, site), n in sorted(st.outcomes.items()):
            before, sep, after = outcome.partition(">")
            if sep:
                amendments.add_metric([det, before, after, site], n)
            else:
                outcomes.add_metric([det, outcome, site], n)
        yield outcomes
        yield amendments
        open_g = GaugeMetricFamily(
            "carewatch_open_expectations", "Opportunities not yet decided.", labels=["detector"]
        )
        vio = {d.name: d.open_count() for d in engine.detectors if hasattr(d, "open_count")}
        for det in sorted(st.open_now):
            open_g.add_metric([det], st.open_now[det] + vio.get(det, 0))
        yield open_g
        wm = engine.watermark
        if wm != float("-inf"):
            g = GaugeMetricFamily(
                "carewatch_watermark_timestamp_seconds",
                "The watermark: event time (Unix seconds) known complete.",
            )
            g.add_metric([], wm)
            yield g
            lag = GaugeMetricFamily(
                "carewatch_watermark_lag_seconds",
                "Wall clock minus watermark: how far behind real time detection is.",
            )
            lag.add_metric([], max(0.0, self.m.clock() - wm))
            yield lag
        rej = CounterMetricFamily(
            "carewatch_rejected_inputs",
            "Inputs sent to the dead letter, by reason code.",
            labels=["reason"],
        )
        for code in REJECT_CODES:
            rej.add_metric([code], self.m.rejected.get(code, 0))
        yield rej


class EngineMetrics:
    """The engine's metrics on ``registry``. ``clock`` returns Unix seconds (injected so
    tests can move time). Wire ``observe_failure`` as the engine's ``on_failure``."""

    def __init__(
        self,
        engine: Engine,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.rejected: dict[str, int] = {}
        #: the ``site`` label values allowed (the engine's allowlist; anything else: other)
        self.site_labels: frozenset[str] = frozenset(getattr(engine, "site_labels", ()))
        self.overdue = Histogram(
            "carewatch_failure_overdue_seconds",
            "How far past its deadline a failure was when first decided (missed: when "
            "declared; late: when it closed). Observed once per failure, never again when "
            "a missed one is amended to late.",
            ["detector"],
            buckets=_OVERDUE_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "carewatch_failures",
            "Failures as first decided (missed, late or violation), by the severity or "
            "priority of their opportunity (critical, abnormal, stat, urgent, routine, none).",
            ["detector", "outcome", "severity", "site"],
            registry=registry,
        )
        registry.register(_EngineCollector(self))
        register_build_info(registry)
        engine.on_failure = self.observe_failure

    def observe_failure(self, outcome: Outcome) -> None:
        """Count a failure once, at its first decision, and record how overdue it was
        (violations have no deadline: no overdue time)."""
        if outcome.amended_from is not None:
            return
        severity = outcome.attrs.get("severity") or outcome.attrs.get("priority") or "none"
        if severity not in SEVERITIES:
            severity = "other"
        site = outcome.attrs.get("site")
        site = site if site in self.site_labels else "other"
        self.failures.labels(outcome.detector, outcome.outcome, severity, site).inc()
        overdue = outcome.overdue_seconds
        if overdue is not None and outcome.outcome in ("late", "missed"):
            self.overdue.labels(outcome.detector).observe(overdue)

    def count_rejected(self, code: str) -> None:
        """Count one rejected input under a bounded reason code."""
        code = code if code in REJECT_CODES else "other"
        self.rejected[code] = self.rejected.get(code, 0) + 1


def build_labels() -> dict[str, str]:
    """``{"version": release, "build": "pure" | "compiled"}`` of the running Carewatch."""
    from importlib.metadata import PackageNotFoundError, version

    import detectors.engine

    try:
        release = version("carewatch")
    except PackageNotFoundError:
        release = "unknown"
    compiled = str(detectors.engine.__file__).endswith((".so", ".pyd"))
    return {"version": release, "build": "compiled" if compiled else "pure"}


class _BuildInfo(Collector):
    def __init__(self) -> None:
        self.labels = build_labels()

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily(
            "carewatch_build", "The running Carewatch: release and build (pure or compiled)."
        )
        info.add_metric([], self.labels)
        yield info


def register_build_info(registry: CollectorRegistry) -> None:
    """Serve ``carewatch_build_info{version,build} 1`` on ``registry``."""
    registry.register(_BuildInfo())
