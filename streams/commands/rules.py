"""Check a rules file: validates it and points at the offending line.

Usage: carewatch rules check FILE
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
        "file", metavar="FILE", help="the rules YAML (docs/rules.md); errors name its line"
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(f"{args.file}: OK")
    for d in settings.detectors:
        kind = "expectation" if isinstance(d, ExpectationDetector) else "violation"
        print(f"  on   {d.name} ({kind})")
    for name in settings.disabled:
        print(f"  off  {name}")
    return 0
