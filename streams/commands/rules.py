"""Check a rules file, print the JSON Schemas of the configuration files.

Usage:
  carewatch rules check [--import-plugins] FILE
  carewatch rules schema [--mapping]
  carewatch rules test FILE...

A rules file's ``plugins:`` entries are Python code; they are found and checked, and
imported only with --import-plugins.
"""

from __future__ import annotations

import argparse
import json

from detectors.contract import ExpectationDetector
from detectors.rules import load_settings, rules_schema

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
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the rules file (or of the site mapping), for an "
        "editor that checks YAML as it is typed",
        description="Print a JSON Schema (draft 2020-12) to standard output. Save it and "
        "point the editor's YAML support at it, e.g. a first line "
        "'# yaml-language-server: $schema=rules.schema.json' in the rules file.",
    )
    schema.add_argument(
        "--mapping",
        action="store_true",
        help="the schema of the site mapping file (docs/adapters.md) instead",
    )

    test = sub.add_parser(
        "test",
        help="run a site's unit tests of its rules file: events in, outcomes expected",
        description="Run the test cases of each FILE (YAML: a rules file, a start time, "
        "and cases of events, an as-of time and the outcomes expected per detector; "
        "docs/rules.md, 'Testing rules'). A failing case prints a diff of the outcomes "
        "expected (-) against those found (+). Exit status: 0 all passed, 1 a case "
        "failed, 2 a file is invalid.",
    )
    test.add_argument("files", nargs="+", metavar="FILE", help="a rules test file (YAML)")


def main(args: argparse.Namespace) -> int:
    if args.action == "schema":
        return _schema(args)
    if args.action == "test":
        return _test(args)
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


def _schema(args: argparse.Namespace) -> int:
    if args.mapping:
        from streams.adapters.mapping import mapping_schema

        schema = mapping_schema()
    else:
        schema = rules_schema()
    print(json.dumps(schema, indent=2))
    return 0


def _test(args: argparse.Namespace) -> int:
    from detectors.rules_testing import load_rule_tests, run_rule_tests

    files = [load_rule_tests(path) for path in args.files]  # every file checked first
    total = failed = 0
    for test_file in files:
        print(test_file.source)
        for result in run_rule_tests(test_file):
            total += 1
            case = result.case
            if result.passed:
                print(f"  PASS  {case.name}")
                continue
            failed += 1
            print(f"  FAIL  {case.name} ({test_file.source}:{case.line})")
            for line in result.diff:
                print(f"        {line}")
    print(f"{total} test{'s' if total != 1 else ''}, {failed} failed")
    return 1 if failed else 0
