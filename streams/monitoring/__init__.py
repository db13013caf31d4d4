"""The monitoring side: feed health wiring for the shells, Grafana dashboards as code.

The Prometheus and Alertmanager configuration these serve lives in ``deploy/prometheus/``
and ``deploy/alertmanager/``; ``deploy/monitoring/stack`` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from detectors.events import Event
from detectors.feeds import FeedHealth

__all__ = ["observe_feeds"]

T = TypeVar("T")


def observe_feeds(records: Iterable[T], health: FeedHealth) -> Iterator[T]:
    """Pass ``records`` on unchanged, noting every ``Event`` among them in ``health``."""
    observe = health.observe
    for r in records:
        if isinstance(r, Event):
            observe(r)
        yield r
