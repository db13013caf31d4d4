"""Build hook for the optional compiled build; everything else is in pyproject.toml.

``CAREWATCH_COMPILE=1 pip install .`` compiles the per-event hot path (the modules in
``COMPILED``) to C extension modules with mypyc, from the same sources and type
annotations that mypy already checks. The compiled modules behave the same and run
about a quarter faster (README, Benchmarks). Without the variable nothing is compiled
and the package is pure Python, as the tests and editable installs use it.

An editable install is never compiled: an extension module next to its source is
imported instead of the source, so an edit to the ``.py`` file would silently not run.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

#: The modules every input event passes through: the reader, the engine, the detector
#: contract and the built-in detectors, the records and the runner that writes them.
#: Detector classes stay open to subclassing from plain Python (``mypyc_attr``), so a
#: hospital's own detectors and rules work the same on either build.
COMPILED = [
    "detectors/builtin/__init__.py",
    "detectors/builtin/clinic_overbooked.py",
    "detectors/builtin/contact_after_death.py",
    "detectors/builtin/letters.py",
    "detectors/builtin/reschedule_notice.py",
    "detectors/builtin/result_overdue.py",
    "detectors/builtin/result_unacknowledged.py",
    "detectors/contract.py",
    "detectors/durations.py",
    "detectors/engine.py",
    "detectors/events.py",
    "detectors/records.py",
    "streams/adapters/jsonl.py",
    "streams/runner.py",
]

#: mypyc ships with mypy; this is the release the build was last checked with.
MYPYC = "mypy>=1.10"


def _wanted() -> bool:
    value = os.environ.get("CAREWATCH_COMPILE", "").strip().lower()
    if value in ("", "0", "no", "false"):
        return False
    if value in ("1", "yes", "true"):
        return True
    raise SystemExit(f"CAREWATCH_COMPILE must be 1 or 0, got {value!r}")


def _compiled_build() -> dict[str, object]:
    if not _wanted():
        return {}
    if any(arg.startswith("editable") for arg in sys.argv):
        raise SystemExit(
            "CAREWATCH_COMPILE=1 cannot be used with an editable install (pip install -e): "
            "the compiled modules would shadow their sources. Install without -e, or into "
            "a directory of its own (see bench/compiled.py)."
        )
    try:
        from mypyc.build import mypycify
    except ImportError:
        # The build front end asks for its requirements first: name mypyc there, and it
        # is installed into the build environment before the build proper runs.
        return {"setup_requires": [MYPYC]}
    return {"ext_modules": mypycify(COMPILED, opt_level="3")}


setup(**_compiled_build())  # type: ignore[arg-type]
