"""The ``carewatch`` command line.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; this module only wires them together and turns
``CarewatchError`` into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from detectors.errors import CarewatchError, ConfigError

__all__ = ["main"]

# name -> (module, one-line help). Modules are imported lazily so `carewatch --help`
# stays fast and a broken optional dependency only affects its own sub-command.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streams.commands.demo", "generate a synthetic week and run every detector on it"),
    "run": ("streams.commands.run", "run the detectors over event files (embedded, no Kafka)"),
    "convert": (
        "streams.commands.convert",
        "convert HL7 v2 / FHIR / CSV input into canonical events (JSON Lines)",
    ),
    "listen": (
        "streams.commands.listen",
        "receive HL7 v2 over MLLP, hand the events on durably, answer each message",
    ),
    "rules": ("streams.commands.rules", "check a rules file"),
    "generate": (
        "streams.commands.generate",
        "write synthetic hospital traffic and its exact expected outcomes",
    ),
    "kafka": ("streams.commands.kafka", "Kafka set-up: create topics, advance the watermark"),
    "publish": ("streams.commands.publish", "publish event files to the Kafka events topic"),
    "worker": ("streams.commands.worker", "run a Kafka worker (faust) with the detectors"),
    "tail": ("streams.commands.tail", "follow the failures, outcomes or rejected topic"),
    "qi": (
        "streams.commands.qi",
        "quality improvement: failure rates per period, SPC charts, the QI report, an export",
    ),
    "store": (
        "streams.commands.store",
        "the operations store: create or upgrade it, load failures",
    ),
    "users": ("streams.commands.users", "local accounts of the worklist (carewatch serve)"),
    "serve": ("streams.commands.serve", "the worklist web app over an operations store"),
}


def version_text() -> str:
    """``carewatch --version``: the release, and which build is running (the compiled
    one, ``CAREWATCH_COMPILE=1 pip install .``, or the pure-Python sources)."""
    from importlib.metadata import PackageNotFoundError, version

    import detectors.engine

    try:
        release = version("carewatch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        release = "(not installed)"
    compiled = str(detectors.engine.__file__).endswith((".so", ".pyd"))
    build = "compiled build (mypyc)" if compiled else "pure-Python build"
    return f"carewatch {release}, {build}, Python {sys.version.split()[0]}"


class _Version(argparse.Action):
    """``--version``, worked out only when asked for (it reads package metadata)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit()


def build_parser(only: str | None = "") -> argparse.ArgumentParser:
    """The ``carewatch`` parser. Every sub-command's module is imported for its options
    (``only=""``, the default); with ``only`` a command name, just that one's, the others
    listed by name and help (``None``: none at all, as for ``carewatch --help``). A
    command then loads only what it uses: ``carewatch run`` does not carry pandas, which
    only ``qi`` needs, through a year's replay."""
    parser = argparse.ArgumentParser(
        prog="carewatch",
        description="Catch care processes that silently break, from hospital messaging traffic.",
    )
    parser.add_argument(
        "--version",
        action=_Version,
        nargs=0,
        help="show the release and whether the compiled build is running, and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only != "" and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            # the docstrings are wrapped by hand and some show example commands, one a line
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``carewatch`` console script."""
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(given[0] if given and given[0] in COMMANDS else None)
    args = parser.parse_args(given)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        previous_umask = os.umask(_file_umask())
    except CarewatchError as exc:
        print(f"carewatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args._module.main(args) or 0)
    except CarewatchError as exc:
        print(f"carewatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`carewatch generate ... | head`): what it
        # read is complete lines, and that is not an error of ours.
        _silence_stdout()
        return 0
    finally:
        os.umask(previous_umask)


#: Outputs, dead letters, the listener's memory and the worker's journals hold patient
#: identifiers: everything a command creates is owner-only (files 0600, directories
#: 0700) unless CAREWATCH_UMASK (an octal umask such as 027) asks for other modes.
PRIVATE_UMASK = 0o077


def _file_umask() -> int:
    text = os.environ.get("CAREWATCH_UMASK", "").strip()
    if not text:
        return PRIVATE_UMASK
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise ConfigError(
            f"CAREWATCH_UMASK={text!r} is not an octal umask; write e.g. 077 (owner only, "
            "the default) or 027 (group may read)"
        )
    return value


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
