"""Check a rules file: validates it and points at the offending line.

Usage: carewatch rules check [--import-plugins] FILE

A rules file's ``plugins:`` entries are Python code; they are found and checked, and
imported only with --import-plugins.
"""

from __future__ import annotations

import argparse

from detectors.contract import ExpectationDetector
from detectors.rules import load_settings

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a rules YAML file")
    check.add_argument(
        "--import-plugins",
        action="store_true",
        help="also import the plugin modules the file names and check that each is a "
        "detector class (a plugin is code: this runs it; without this flag plugin "
        "modules are only found and checked, not run)",
    )
    check.add_argument(
        "file", metavar="FILE", help="the rules YAML (docs/rules.md); errors name its line"
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.file, import_plugins=args.import_plugins)
    print(f"{args.file}: OK")
    for d in settings.detectors:
        kind = "expectation" if isinstance(d, ExpectationDetector) else "violation"
        print(f"  on   {d.name} ({kind})")
    for name in settings.disabled:
        print(f"  off  {name}")
    if not args.import_plugins:
        for spec in settings.plugins:
            print(f"  on   {spec} (plugin, found; not imported: --import-plugins checks it)")
    return 0
