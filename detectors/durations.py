"""Durations written the way people write them: ``90s``, ``10m``, ``48h``, ``7d``, ``2w``.

All durations inside Carewatch are float seconds.
"""

from __future__ import annotations

import math
import re

from detectors.errors import ConfigError

__all__ = ["MAX_DURATION", "format_duration", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: No duration in Carewatch is longer than this (seconds): ten years. Settings have their
#: own, narrower ranges (``detectors.rules.ENGINE_DEFAULTS``); this bound keeps a typo
#: such as ``800000d`` from reaching the engine from anywhere (a command-line option too).
MAX_DURATION = 3650 * 86400.0
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str | int | float, *, limit: float = MAX_DURATION) -> float:
    """Return ``text`` as seconds. Accepts ``48h``, ``1h30m``, ``7d``, ``90s``, or ``0``.

    A number without a unit is refused (but 0, which needs none): ``within: 24`` in a
    rules file would otherwise mean 24 seconds where 24 hours was almost certainly meant,
    and every opportunity would quietly fail. A duration longer than ``limit`` (ten years
    unless a caller checks its own range) is refused. Raises ``ConfigError`` naming the
    value.
    """
    if isinstance(text, bool) or (isinstance(text, float) and not math.isfinite(text)):
        raise ConfigError(f"{text!r} is not a duration; write e.g. 30m, 48h or 7d")
    s = str(text).strip().lower().replace(" ", "")
    if isinstance(text, int | float) or re.fullmatch(r"[-+]?\d+(\.\d+)?", s):
        if float(s) == 0:
            return 0.0
        if float(s) < 0:
            raise ConfigError(f"duration {text!r} is negative")
        n = s.removeprefix("+")
        if not re.fullmatch(r"\d+(\.\d+)?", n):
            n = "30"  # 1e-09 and the like: no use repeating it with a unit
        raise ConfigError(f"duration {text!r} has no unit; write e.g. {n}s, {n}m, {n}h or {n}d")
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ConfigError(f"{text!r} is not a duration; write e.g. 30m, 48h, 7d or 1h30m")
    if total > limit:
        raise ConfigError(f"duration {text!r} is longer than ten years (3650d)")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people, e.g. ``2d 3h``, ``45m``, ``12s``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    return " ".join(parts) or "0m"
