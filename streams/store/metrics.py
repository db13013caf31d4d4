"""The worklist's metrics: the failures still open, by detector and site, read from the
store at each scrape (``carewatch serve --metrics-port``).

The store is where the truth lives: a failure is open until a person resolves it or
Carewatch closes it (amended late, or withdrawn), and no worker knows that. Labels are
bounded by configuration: ``detector`` is one of the configured detectors (anything else
``other``), ``site`` one of ``metrics.site_labels`` (anything else, or none, ``other``),
as on the workers. No patient, appointment or order id can become a label.

Every configured detector at every configured site is served, with 0 when nothing is
open, so a panel or rule sees "none open" rather than "no data"; an ``other`` row only
when something falls into it. A scrape that cannot read the store serves
``carewatch_worklist_store_up 0`` and nothing else of the worklist, and says why once in
the log (the database's message names no patient).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.store.store import Store

__all__ = ["WorklistMetrics"]

log = logging.getLogger("carewatch.store.metrics")
OTHER = "other"


_FAMILIES = (
    "carewatch_worklist_open_failures",
    "carewatch_worklist_unassigned_failures",
    "carewatch_worklist_oldest_open_due_timestamp_seconds",
    "carewatch_worklist_oldest_unassigned_due_timestamp_seconds",
)


class WorklistMetrics(Collector):
    """A collector over ``store``, registered on ``registry`` (never the global one).

    ``detectors``: the configured detector names; ``site_labels``: the configured site
    codes (the rules file's ``metrics.site_labels``). Both bound the label values.
    """

    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry,
        detectors: Iterable[str],
        site_labels: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.detectors = tuple(sorted(set(detectors)))
        self.sites = tuple(sorted(set(site_labels) - {OTHER}))
        self._failing = False
        registry.register(self)

    def _label(self, value: str | None, allowed: tuple[str, ...]) -> str:
        return value if value in allowed else OTHER

    def describe(self) -> Iterator[Metric]:
        """The families served, without reading the store (so registering it does not
        query the database)."""
        yield GaugeMetricFamily("carewatch_worklist_store_up", "")
        for name in _FAMILIES:
            yield GaugeMetricFamily(name, "", labels=["detector", "site"])

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "carewatch_worklist_store_up",
            "1 if the last scrape read the worklist's store, 0 if it could not "
            "(the worklist metrics are then left out).",
        )
        try:
            rows = self.store.open_by_detector_and_site()
        except Exception as exc:  # any database error: report it as data, never crash
            if not self._failing:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                log.warning("cannot read the store for metrics: %s %s", type(exc).__name__, first)
            self._failing = True
            up.add_metric([], 0)
            yield up
            return
        self._failing = False
        up.add_metric([], 1)
        yield up

        keys = [(d, s) for d in (*self.detectors, OTHER) for s in (*self.sites, OTHER)]
        counts = {k: [0, 0] for k in keys}
        oldest: dict[tuple[str, str], float] = {}
        oldest_free: dict[tuple[str, str], float] = {}
        for row in rows:
            key = (
                self._label(row["detector"], self.detectors),
                self._label(row["site"], self.sites),
            )
            counts[key][0] += row["open"]
            counts[key][1] += row["unassigned"]
            for into, value in ((oldest, row["oldest_due"]), (oldest_free, row["oldest_unassigned_due"])):  # fmt: skip
                if value is not None and (key not in into or value < into[key]):
                    into[key] = float(value)

        labels = ["detector", "site"]
        open_ = GaugeMetricFamily(
            "carewatch_worklist_open_failures",
            "Failures open on the worklist: not resolved by a person, not closed by "
            "Carewatch (amended late, or withdrawn).",
            labels=labels,
        )
        free = GaugeMetricFamily(
            "carewatch_worklist_unassigned_failures",
            "Open failures on the worklist that nobody has taken or been assigned.",
            labels=labels,
        )
        for key in keys:
            if OTHER in key and not counts[key][0]:
                continue  # a catch-all row only when something falls into it
            open_.add_metric(list(key), counts[key][0])
            free.add_metric(list(key), counts[key][1])
        yield open_
        yield free

        for name, help_text, values in (
            (
                "carewatch_worklist_oldest_open_due_timestamp_seconds",
                "Deadline (Unix time) of the most overdue open failure (its detection "
                "time when it has no deadline); absent when none is open.",
                oldest,
            ),
            (
                "carewatch_worklist_oldest_unassigned_due_timestamp_seconds",
                "Deadline (Unix time) of the most overdue open failure nobody has taken; "
                "absent when there is none.",
                oldest_free,
            ),
        ):
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for key in sorted(values):
                family.add_metric(list(key), values[key])
            yield family
