"""Feed health: which configured feed an event came in on, and when each feed last spoke.

A *feed* is a named stream of traffic a site expects to keep flowing ("SIU messages from
the PAS", "lab results"). Feeds are declared in the rules file under ``metrics.feeds``;
their names are the only values the ``feed`` label of the feed metrics can take (events
that match no feed are counted under ``other``), so the label stays bounded and can
never carry message content::

    metrics:
      feeds:
        pas-appointments:
          match: {type: "appointment.*", source: {message_type: "SIU^*"}}
          max_gap: 20m           # silent longer than this is an alert...
          hours: "07:00-19:00"   # ...during these hours (local time of ``timezone``)
          days: [mon, tue, wed, thu, fri]
          timezone: Europe/London

``match`` keys, all optional, all of which must hold: ``type`` (an event type, or a list
of them; ``*`` and ``?`` are wildcards), ``site`` (an ``attrs.site`` value or a list),
``source`` (a mapping of ``source`` fields, such as ``format`` or ``message_type``, to a
pattern). The first feed that matches an event is its feed.

A feed matching exactly one site carries it as its ``site`` label (others: ``all``), so
that a silent feed can hold back the failure-rate alerts of its site.
``FeedHealth`` serves, per feed, the Unix time the last event was received (wall clock)
and that event's event time, the configured gap, and while the feed is in its watched
hours, when that watched period began. The alert rules in ``deploy/prometheus/`` turn
these into "silent longer than its gap, during its hours".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors.durations import parse_duration
from detectors.errors import ConfigError
from detectors.events import Event

__all__ = ["OTHER_FEED", "FeedHealth", "FeedSpec", "parse_feeds"]

#: The feed of events that match no configured feed.
OTHER_FEED = "other"

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_SPEC_KEYS = {"match", "max_gap", "hours", "days", "timezone"}
_MATCH_KEYS = {"type", "site", "source"}
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class FeedSpec:
    """One configured feed. ``max_gap`` is seconds (``None``: never alerted on);
    ``hours`` is ``(start, end)`` local times of ``timezone`` (end before start: the
    window runs past midnight; ``None``: all day); ``days`` are weekdays, 0 = Monday, on
    which a watched window starts."""

    name: str
    types: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    source: tuple[tuple[str, str], ...] = ()
    max_gap: float | None = None
    hours: tuple[clock_time, clock_time] | None = None
    days: tuple[int, ...] = tuple(range(7))
    timezone: str = "UTC"
    zone: Any = field(default=None, compare=False, repr=False)

    @property
    def site_label(self) -> str:
        """The ``site`` label of this feed's metrics: its one matched site, else ``all``."""
        return self.sites[0] if len(self.sites) == 1 else "all"

    def matches(self, event: Event) -> bool:
        """True when ``event`` belongs to this feed."""
        if self.types and not any(fnmatchcase(event.type, p) for p in self.types):
            return False
        if self.sites and event.attrs.get("site") not in self.sites:
            return False
        src = event.source or {}
        return all(fnmatchcase(str(src.get(k, "")), p) for k, p in self.source)

    def watched_since(self, now: float) -> float | None:
        """The Unix time the watched period holding ``now`` (Unix seconds) began, or
        ``None`` when ``now`` is outside the feed's hours and days."""
        zone = self.zone or ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(now, zone)
        if self.hours is None:
            if local.weekday() in self.days:
                return datetime.combine(local.date(), clock_time(0), zone).timestamp()
            return None
        start_t, end_t = self.hours
        for day in (local.date(), local.date() - timedelta(days=1)):
            if day.weekday() not in self.days:
                continue
            start = datetime.combine(day, start_t, zone)
            end_day: date = day if end_t > start_t else day + timedelta(days=1)
            end = datetime.combine(end_day, end_t, zone)
            if start.timestamp() <= now < end.timestamp():
                return start.timestamp()
        return None


class FeedError(ConfigError):
    """A ``metrics.feeds`` entry that cannot be used. ``keys`` is the path to the value
    at fault, from the feed's name down (``("lab", "match", "type")``), so that a reader
    of the file can point at its line."""

    def __init__(self, message: str, *keys: str) -> None:
        super().__init__(message)
        self.keys = keys


def _patterns(value: Any, where: str, *keys: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise FeedError(f"{where} must be a text or a list of texts", *keys)
    return tuple(items)


def parse_feeds(raw: Any) -> tuple[FeedSpec, ...]:
    """Validate the ``metrics.feeds`` mapping of a rules file (``None``: no feeds).
    Raises ``FeedError`` naming the feed and key at fault (``keys``: where it is)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError("feeds must be a mapping of feed name to its settings")
    out = []
    for name, conf in raw.items():
        where = f"feed {name!r}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == OTHER_FEED:
            raise FeedError(
                f"{where}: a feed name is lower-case letters, digits, '.', '_' or '-' "
                f"(at most 63), and not {OTHER_FEED!r}",
                str(name),
            )
        conf = conf or {}
        if not isinstance(conf, Mapping):
            raise FeedError(f"{where} must be a mapping (match, max_gap, hours, ...)", name)
        unknown = sorted(set(conf) - _SPEC_KEYS)
        if unknown:
            raise FeedError(
                f"{where}: unknown key {unknown[0]!r}; expected {sorted(_SPEC_KEYS)}",
                name,
                str(unknown[0]),
            )
        match = conf.get("match") or {}
        if not isinstance(match, Mapping) or set(match) - _MATCH_KEYS:
            raise FeedError(f"{where}: match takes {sorted(_MATCH_KEYS)}", name, "match")
        types = (
            _patterns(match["type"], f"{where} match.type", name, "match", "type")
            if "type" in match
            else ()
        )
        sites = (
            _patterns(match["site"], f"{where} match.site", name, "match", "site")
            if "site" in match
            else ()
        )
        source = match.get("source") or {}
        if not isinstance(source, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in source.items()
        ):
            raise FeedError(
                f"{where}: match.source maps source fields to patterns (texts)",
                name,
                "match",
                "source",
            )
        gap = conf.get("max_gap")
        max_gap = None
        if gap is not None:
            try:
                max_gap = parse_duration(gap)
            except ConfigError as exc:
                raise FeedError(f"{where} max_gap: {exc}", name, "max_gap") from None
            if max_gap <= 0:
                raise FeedError(f"{where} max_gap must be more than 0", name, "max_gap")
        hours = None
        if conf.get("hours") is not None:
            m = _HOURS.fullmatch(str(conf["hours"]).replace(" ", ""))
            if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
                raise FeedError(
                    f"{where} hours: write the watched hours as HH:MM-HH:MM", name, "hours"
                )
            hours = (clock_time(int(m[1]), int(m[2])), clock_time(int(m[3]), int(m[4])))
            if hours[0] == hours[1]:
                raise FeedError(
                    f"{where} hours: start and end are the same; leave hours out",
                    name,
                    "hours",
                )
        days = tuple(range(7))
        if conf.get("days") is not None:
            names = conf["days"]
            if not isinstance(names, list) or not all(d in _DAYS for d in names) or not names:
                raise FeedError(f"{where} days: a list of {', '.join(_DAYS)}", name, "days")
            days = tuple(sorted({_DAYS.index(d) for d in names}))
        tz_name = str(conf.get("timezone") or "UTC")
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise FeedError(
                f"{where} timezone: unknown timezone {tz_name!r}; use an IANA name "
                "such as Europe/London",
                name,
                "timezone",
            ) from None
        out.append(
            FeedSpec(
                name,
                types,
                sites,
                tuple(sorted(source.items())),
                max_gap,
                hours,
                days,
                tz_name,
                zone,
            )
        )
    return tuple(out)


class _FeedCollector(Collector):
    def __init__(self, health: FeedHealth) -> None:
        self.h = health

    def collect(self) -> Iterator[Metric]:
        h = self.h
        now = h.clock()
        sites = {f.name: f.site_label for f in h.feeds}
        counts = CounterMetricFamily(
            "carewatch_feed_events",
            "Events received, by the configured feed they matched ('other': none).",
            labels=["feed", "site"],
        )
        received = GaugeMetricFamily(
            "carewatch_feed_last_received_timestamp_seconds",
            "Unix time (wall clock) the feed's last event was received; until its first "
            "one, the time this process began watching.",
            labels=["feed", "site"],
        )
        event_time = GaugeMetricFamily(
            "carewatch_feed_last_event_timestamp_seconds",
            "Event time (Unix seconds) of the feed's last event received.",
            labels=["feed", "site"],
        )
        for name in [*sites, OTHER_FEED]:
            labels = [name, sites.get(name, "all")]
            counts.add_metric(labels, h.counts.get(name, 0))
            received.add_metric(labels, h.received.get(name, h.started))
            if name in h.event_times:
                event_time.add_metric(labels, h.event_times[name])
        yield counts
        yield received
        yield event_time
        gap = GaugeMetricFamily(
            "carewatch_feed_max_gap_seconds",
            "The configured longest silence of a feed (seconds) before it is alerted on.",
            labels=["feed", "site"],
        )
        since = GaugeMetricFamily(
            "carewatch_feed_watched_since_timestamp_seconds",
            "Unix time the feed's current watched period (its configured hours) began; "
            "absent outside those hours.",
            labels=["feed", "site"],
        )
        for f in h.feeds:
            if f.max_gap is not None:
                gap.add_metric([f.name, f.site_label], f.max_gap)
            start = f.watched_since(now)
            if start is not None:
                since.add_metric([f.name, f.site_label], start)
        yield gap
        yield since


class FeedHealth:
    """Per-feed counts and last-heard times, served on ``registry``.

    Call ``observe`` for every event received (before de-duplication: a redelivery is
    the feed speaking too). ``clock`` returns Unix seconds (injected for tests)."""

    def __init__(
        self,
        feeds: Sequence[FeedSpec],
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feeds = tuple(feeds)
        self.clock = clock
        self.started = clock()
        self.counts: dict[str, int] = {}
        self.received: dict[str, float] = {}
        self.event_times: dict[str, float] = {}
        self._src_keys = sorted({k for f in self.feeds for k, _ in f.source})
        self._cache: dict[tuple[Any, ...], str] = {}
        registry.register(_FeedCollector(self))

    def feed_of(self, event: Event) -> str:
        """The name of the feed ``event`` belongs to (``other`` when none matches)."""
        src = event.source or {}
        key = (event.type, event.attrs.get("site"), *(src.get(k) for k in self._src_keys))
        try:
            name = self._cache.get(key)
        except TypeError:  # an unhashable attr or source value: decide without the cache
            return self._decide(event)
        if name is None:
            name = self._decide(event)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = name
        return name

    def _decide(self, event: Event) -> str:
        for f in self.feeds:
            if f.matches(event):
                return f.name
        return OTHER_FEED

    def observe(self, event: Event) -> None:
        """Note one event received now."""
        name = self.feed_of(event)
        self.counts[name] = self.counts.get(name, 0) + 1
        self.received[name] = self.clock()
        self.event_times[name] = event.time
