"""The pandas oracle, the tests' differential reference: every built-in detector again,
over a whole file at once (``docs/oracle.md``).

A second, independent implementation of ``docs/detectors.md`` with joins, group-bys and
sorts over one DataFrame instead of per-event state. Its outcomes equal the final records
of the streaming engine run over the same events with the same ``--as-of`` (for events
delivered within the allowed lateness), so each checks the other. It is not part of
the product (``carewatch run --batch``, which ran it, is retired).

::

    from tests.oracle import load, detect, run_oracle

    outcomes = run_oracle(events, settings, as_of)      # decided records
    frame = load(events, settings)                      # or in two timed steps,
    result = detect(frame, settings, as_of)             # with result.open as well

Times are epoch seconds, UTC; durations are seconds.
"""

from tests.oracle.detect import OracleResult, detect, load, plan_for, run_oracle
from tests.oracle.frame import EventFrame, build_frame

__all__ = [
    "EventFrame",
    "OracleResult",
    "build_frame",
    "detect",
    "load",
    "plan_for",
    "run_oracle",
]
