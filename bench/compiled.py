"""Make the compiled build (mypyc, see ``setup.py``) of this checkout and print where it
is; the work is done by ``streams/compiled_build.py``, which the tests use too.

Usage:
    .venv/bin/python bench/compiled.py            # build if stale; print the directory
    .venv/bin/python bench/compiled.py --dir DIR  # somewhere else

Run with ``PYTHONPATH=DIR`` in front and the build replaces the editable install for
that process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run as a script: this checkout's streams package
    sys.path.insert(0, str(ROOT))

from streams import compiled_build  # noqa: E402

DEFAULT_DIR = compiled_build.default_dir(ROOT)


def ensure(target: Path = DEFAULT_DIR, *, quiet: bool = False) -> Path:
    """Build the compiled install of this checkout into ``target`` unless up to date."""
    return compiled_build.ensure(ROOT, target, quiet=quiet)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default: {DEFAULT_DIR}")
    args = p.parse_args()
    print(ensure(args.dir.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
