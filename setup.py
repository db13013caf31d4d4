"""Build hook for the optional compiled build; everything else is in pyproject.toml.

``CAREWATCH_COMPILE=1 pip install .`` compiles the per-event hot path (the modules in
``COMPILED``) to C extension modules with mypyc, from the same sources and type
annotations that mypy already checks. The compiled modules behave the same (but check
the declared types at run time: docs/extending.md) and run the engine about 1.3-1.5
times as fast (README, Benchmarks). Without the variable nothing is compiled and the
package is pure Python, as the tests and editable installs use it.

An editable install is never compiled: an extension module next to its source is
imported instead of the source, so an edit to the ``.py`` file would silently not run.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

#: The modules every canonical (JSON Lines) event passes through: the reader, the
#: engine, the records, the runner and the sinks that write them. The detector contract
#: and the built-in detectors stay plain Python: compiling them bought about 9% of the
#: end-to-end engine benchmark (README, Benchmarks), and as compiled classes under an
#: ABC they answered ``isinstance`` wrongly from interpreted code (a plugin, the Kafka
#: journal). A hospital's own detectors meet plain Python classes.
COMPILED = [
    "detectors/durations.py",
    "detectors/engine.py",
    "detectors/events.py",
    "detectors/records.py",
    "streams/adapters/jsonl.py",
    "streams/runner.py",
    "streams/sinks.py",
]

#: mypyc ships with mypy; the oldest release this build is known to work with.
MYPYC = "mypy>=1.10"
#: setup.py commands that build code (the others only read metadata).
_BUILDS = ("build", "build_ext", "build_py", "bdist_wheel", "install")


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
    args = sys.argv[1:]
    if any(a.startswith(("editable", "develop")) for a in args) or any(
        a in ("--inplace", "-i") for a in args
    ):
        raise SystemExit(
            "CAREWATCH_COMPILE=1 cannot be used with an editable or in-place build "
            "(pip install -e, build_ext --inplace): the compiled modules would shadow "
            "their sources. Install without -e, or into a directory of its own (see "
            "bench/compiled.py)."
        )
    try:
        from mypyc.build import mypycify
    except ImportError:
        if not any(a in _BUILDS for a in args):
            # The build front end asks for its requirements first: name mypyc there, and
            # it is installed into the build environment before the build proper runs.
            return {"setup_requires": [MYPYC]}
        raise SystemExit(
            "CAREWATCH_COMPILE=1 needs mypyc, which comes with mypy: pip install "
            f"'{MYPYC}' (or let pip build in an isolated environment, its default)"
        ) from None
    if not any(a in _BUILDS for a in args):
        return {}  # metadata only: nothing to compile yet
    return {"ext_modules": mypycify(COMPILED, opt_level="3")}


setup(**_compiled_build())  # type: ignore[arg-type]
