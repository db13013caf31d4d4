"""The pseudonymised QI export: the outcome ledger without identities.

  CAREWATCH_PSEUDONYM_KEY=... carewatch qi export LEDGER... --out DIR [--format csv|parquet]

What it does to every record (the latest per opportunity, as the other QI commands read):

- the patient id, every ref id (appointment, order, encounter, document, session, ...),
  the opportunity key and the failure id become keyed pseudonyms: HMAC-SHA256 of the
  value under the key, 20 hex digits, with the kind of id mixed in (an order id and an
  appointment id that happen to be equal get different pseudonyms). The same key gives
  the same pseudonyms in every export, so a team can link exports over time; another key
  gives pseudonyms that cannot be linked to these. Without the key they cannot be turned
  back into ids. The key comes from CAREWATCH_PSEUDONYM_KEY or --key-file (at least 32
  characters); without one the export refuses to run;
- the evidence (the events' ids, types and times) and the summary sentence are dropped, and so is every attr but
  the coded ones QI reads (site, specialty, clinic, test, priority, severity, capacity,
  booked, contact): anything else may be free text;
- times are kept, cut to the precision chosen with --time-precision: day (the default:
  the local date), hour (the local hour, with its UTC offset) or exact.

With ``--store URL`` (the operations worklist's store, docs/worklist.md) the people's
judgement comes too:

- each failure row gets ``resolution``: the coded reason it was closed with on the
  worklist (``patient-contacted``, ``notice-outside-feed``, ``result-found``,
  ``not-a-real-failure``, ``other``; ``carewatch-late`` / ``carewatch-withdrawn`` when
  Carewatch closed it), empty while it is open or not in the store. Joined on the real
  failure id before it is pseudonymised; notes and who acted are never exported;
- ``feedback.csv`` (or .parquet): per detector, the failures in the store, how many
  people resolved, how many of those they marked "not a real failure", and the precision
  that gives (the share confirmed real): the figures of the worklist's /feedback page.
  Counts per detector only: nothing in it identifies anyone.

The output directory gets outcomes.csv (or outcomes.parquet), feedback.csv with
``--store``, and README.txt saying what was removed and how.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.errors import ConfigError, InputError, RuntimeFault
from streams.qi.ledger import latest_mask, ledger_files, read_records
from streams.qi.measures import zone

__all__ = [
    "KEPT_ATTRS",
    "Judgement",
    "Pseudonymiser",
    "add_arguments",
    "export_ledger",
    "main",
    "read_judgement",
]

#: Coded attrs kept in the export; every other attr is dropped as possible free text.
KEPT_ATTRS: tuple[str, ...] = (
    "site",
    "specialty",
    "clinic",
    "test",
    "priority",
    "severity",
    "capacity",
    "booked",
    "contact",
)
KEY_ENV = "CAREWATCH_PSEUDONYM_KEY"
_MIN_KEY = 32
_PRECISIONS = ("day", "hour", "exact")
_TIME_FIELDS = ("opened_at", "due_at", "closed_at", "detected_at")


class Pseudonymiser:
    """Keyed pseudonyms: HMAC-SHA256(key, kind NUL value), first 20 hex digits."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY:
            raise ConfigError(
                f"the pseudonym key is {len(key)} characters; use at least {_MIN_KEY} "
                "(e.g. `openssl rand -hex 32`), and keep it secret"
            )
        self._key = key
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, value: str | None) -> str | None:
        """The pseudonym of ``value`` (an id of the given ``kind``); ``None`` stays ``None``."""
        if value is None:
            return None
        found = self._cache.get((kind, value))
        if found is None:
            mac = hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256)
            found = mac.hexdigest()[:20]
            self._cache[(kind, value)] = found
        return found


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``carewatch qi export``."""
    from streams.commands.qi import add_ledger_arguments, add_timezone_arguments

    add_ledger_arguments(p)
    p.add_argument("--out", metavar="DIR", required=True, help="directory to write into")
    p.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="file format (default: csv)"
    )
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help=f"file holding the pseudonym key (default: the {KEY_ENV} environment variable)",
    )
    p.add_argument(
        "--time-precision",
        choices=_PRECISIONS,
        default="day",
        help="keep times to the local day (default), the hour, or exactly",
    )
    add_timezone_arguments(p, what="the local day and hour of --time-precision")
    p.add_argument(
        "--store",
        metavar="URL",
        help="the worklist's store (SQLite file or postgresql:// URL): adds each failure's "
        "resolution and feedback.csv, the precision per detector (default: none)",
    )


def read_key(key_file: str | None) -> bytes:
    """The key from ``key_file`` (surrounding whitespace removed) or the environment."""
    if key_file:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"--key-file {key_file}: {exc.strerror or exc}") from None
    else:
        key = os.environ.get(KEY_ENV, "").strip().encode()
    if not key:
        raise ConfigError(
            f"no pseudonym key: set {KEY_ENV} or give --key-file; the export refuses to "
            "run without one"
        )
    return key


def main(args: argparse.Namespace) -> int:
    """``carewatch qi export``."""
    from streams.commands.qi import ledger_inputs, resolve_timezone, rules_settings

    pseudonym = Pseudonymiser(read_key(args.key_file))
    tz = resolve_timezone(args, rules_settings(args))
    judged = read_judgement(args.store) if args.store else None
    with ledger_inputs(args) as inputs:
        written = export_ledger(
            inputs,
            Path(args.out),
            pseudonym,
            fmt=args.format,
            precision=args.time_precision,
            tz=tz,
            judged=judged,
        )
    print(f"{written:,} opportunities, pseudonymised -> {args.out}/ (see README.txt there)")
    if not written:
        print("nothing in the ledger yet: the files hold the columns and no rows")
    if judged is not None:
        rated = [r for r in judged.feedback if r["precision"] is not None]
        print(
            f"feedback from the worklist: {len(judged.resolutions):,} failures resolved, "
            f"precision for {len(rated)} of {len(judged.feedback)} detectors"
        )
    return 0


@dataclass(frozen=True)
class Judgement:
    """What people said on the worklist: ``resolutions`` (real failure id -> coded
    reason) and ``feedback`` (``Store.feedback()``: per detector failures, resolved,
    not_real, precision)."""

    resolutions: dict[str, str]
    feedback: list[dict[str, Any]]


def read_judgement(url: str) -> Judgement:
    """The resolutions and the precision per detector from the store at ``url``."""
    from streams.store import open_store

    store = open_store(url, upgrade=False)
    try:
        return Judgement(store.resolutions(), store.feedback())
    finally:
        store.close()


def _cut(value: str | None, precision: str, tz: str) -> str | None:
    if value is None or precision == "exact":
        return value
    try:
        t = datetime.fromisoformat(value).astimezone(zone(tz))
    except ValueError:
        raise InputError(f"ledger time {value!r} is not ISO-8601") from None
    if precision == "day":
        return t.date().isoformat()
    return t.replace(minute=0, second=0, microsecond=0).isoformat()


_FAILURES = ("missed", "late", "violation")
#: The first columns of every row (``_row``), in order; then ``resolution`` with --store.
_BASE_COLUMNS = ("failure_id", "detector", "outcome", "amended_from", "patient", "key")


def _row(
    rec: dict[str, Any],
    p: Pseudonymiser,
    precision: str,
    tz: str,
    resolutions: dict[str, str] | None = None,
) -> dict[str, Any]:
    detector = str(rec.get("detector"))
    row: dict[str, Any] = {
        "failure_id": p("failure", str(rec["failure_id"])),
        "detector": detector,
        "outcome": rec.get("outcome"),
        "amended_from": rec.get("amended_from"),
        "patient": p("patient", rec.get("patient")),
        "key": p(f"key:{detector}", None if rec.get("key") is None else str(rec["key"])),
    }
    if resolutions is not None:
        # a failure's fate on the worklist; an outcome that was never a failure has none
        failed = rec.get("outcome") in _FAILURES or rec.get("amended_from") in _FAILURES
        row["resolution"] = resolutions.get(str(rec["failure_id"])) if failed else None
    for name in _TIME_FIELDS:
        row[name] = _cut(rec.get(name), precision, tz)
    refs = rec.get("refs") or {}
    for kind, value in sorted(refs.items()):
        row[f"ref_{kind}"] = p(f"ref:{kind}", str(value))
    attrs = rec.get("attrs") or {}
    for name in KEPT_ATTRS:
        if name in attrs:
            row[name] = attrs[name]
    return row


def export_ledger(
    inputs: list[str],
    out: Path,
    pseudonym: Pseudonymiser,
    *,
    fmt: str = "csv",
    precision: str = "day",
    tz: str = "Europe/London",
    chunk_rows: int = 100_000,
    judged: Judgement | None = None,
) -> int:
    """Write the pseudonymised ledger and its README into ``out``; returns the rows.
    With ``judged`` (the worklist's, ``read_judgement``) each row gets its failure's
    ``resolution`` and ``feedback.{fmt}`` holds the precision per detector.

    Two passes, so memory stays small whatever the ledger's size: the first finds the
    latest record of each opportunity (``latest_mask``), the second streams the records,
    keeps those, and writes them in chunks of ``chunk_rows``."""
    files = ledger_files(inputs)
    keep = latest_mask(files)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".chunks-") as tmp:
            resolutions = judged.resolutions if judged is not None else None
            chunks, columns, dropped = _write_chunks(
                files, keep, Path(tmp), pseudonym, precision, tz, chunk_rows, resolutions
            )
            name = f"outcomes.{fmt}"
            _join_chunks(chunks, list(columns), out / name, fmt)
        if judged is not None:
            _write_feedback(judged.feedback, out / f"feedback.{fmt}", fmt)
        text = _readme(name, int(keep.sum()), precision, tz, sorted(dropped))
        if judged is not None:
            text += _FEEDBACK_README.format(name=f"feedback.{fmt}")
        (out / "README.txt").write_text(text)
    except OSError as exc:
        raise RuntimeFault(f"cannot write into {out}: {exc.strerror or exc}") from None
    return int(keep.sum())


def _write_chunks(
    files: list[Path],
    keep: np.ndarray,
    tmp: Path,
    pseudonym: Pseudonymiser,
    precision: str,
    tz: str,
    chunk_rows: int,
    resolutions: dict[str, str] | None = None,
) -> tuple[list[Path], dict[str, None], set[str]]:
    """The kept records, pseudonymised, as Parquet chunks; the columns met (in order of
    first appearance) and the attrs dropped."""
    chunks: list[Path] = []
    # the columns every export has, first: an empty ledger still gives a table with them
    base = [*_BASE_COLUMNS, *(["resolution"] if resolutions is not None else [])]
    columns: dict[str, None] = dict.fromkeys([*base, *_TIME_FIELDS])
    dropped: set[str] = set()
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        if rows:
            frame = pd.DataFrame(rows)
            for name in frame.columns:
                columns.setdefault(name)
            path = tmp / f"{len(chunks):06d}.parquet"
            _typed(frame).to_parquet(path, index=False)
            chunks.append(path)
            rows.clear()

    index = 0
    for path in files:
        for _n, rec in read_records(path):
            if index >= len(keep):
                raise InputError(f"ledger {path} changed while it was being read")
            if keep[index]:
                rows.append(_row(rec, pseudonym, precision, tz, resolutions))
                dropped.update(k for k in (rec.get("attrs") or {}) if k not in KEPT_ATTRS)
                if len(rows) >= chunk_rows:
                    flush()
            index += 1
    flush()
    if index != len(keep):
        raise InputError("a ledger file changed while it was being read")
    return chunks, columns, dropped


_INTEGER_ATTRS = ("capacity", "booked")
FEEDBACK_COLUMNS = ("detector", "failures", "resolved", "not_real", "precision")


def _write_feedback(rows: list[dict[str, Any]], target: Path, fmt: str) -> None:
    """The precision per detector as one small table (precision empty before any
    resolution)."""
    frame = pd.DataFrame(rows, columns=list(FEEDBACK_COLUMNS)).astype(
        {
            "detector": "string",
            "failures": "int64",
            "resolved": "int64",
            "not_real": "int64",
            "precision": "float64",
        }
    )
    if fmt == "parquet":
        frame.to_parquet(target, index=False)
    else:
        frame.to_csv(target, index=False)


_FEEDBACK_README = """
From the operations worklist (--store):
  resolution (a column of the outcomes file): how each failure was closed on the worklist, as a code:
    patient-contacted, notice-outside-feed, result-found, not-a-real-failure, other
    (a person), carewatch-late or carewatch-withdrawn (Carewatch, when the feed showed
    it happened after all); empty while open, for failures not in the store, and for
    outcomes that were never failures. People's notes and names are not exported.
  {name}: per detector, failures (in the store), resolved (by a person, their latest
    resolution), not_real (of those, "not a real failure") and precision
    (= (resolved - not_real) / resolved: the share people confirmed real; empty before
    any resolution). Counts only.
"""


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column text, but the counts: the same types in every chunk."""
    return frame.astype({c: ("Int64" if c in _INTEGER_ATTRS else "string") for c in frame.columns})


def _join_chunks(chunks: list[Path], columns: list[str], target: Path, fmt: str) -> None:
    """The chunks, in order and with every column, as one CSV or Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.int64() if c in _INTEGER_ATTRS else pa.string()) for c in columns])
    if fmt == "parquet":
        with pq.ParquetWriter(target, schema) as writer:
            for chunk in chunks:
                frame = pd.read_parquet(chunk).reindex(columns=columns)
                writer.write_table(
                    pa.Table.from_pandas(_typed(frame), schema=schema, preserve_index=False)
                )
        return
    with target.open("w", encoding="utf-8", newline="") as f:
        if not chunks:
            f.write(",".join(columns) + "\n")
        for i, chunk in enumerate(chunks):
            pd.read_parquet(chunk).reindex(columns=columns).to_csv(f, index=False, header=i == 0)


def _readme(name: str, rows: int, precision: str, tz: str, dropped: list[str]) -> str:
    cut = {
        "day": f"cut to the local date ({tz})",
        "hour": f"cut to the local hour ({tz}), with the UTC offset",
        "exact": "kept exactly (UTC)",
    }[precision]
    dropped_text = ", ".join(dropped) if dropped else "(none in this ledger)"
    return f"""Carewatch QI export: the outcome ledger without identities
=========================================================

{name}: {rows} opportunities, one row each (the latest record of each; amendments
and repeated records counted once).

Replaced by keyed pseudonyms (HMAC-SHA256 under a secret key, first 20 hex digits;
the kind of id is mixed in, so equal ids of different kinds differ):
  patient, key (the opportunity's key), failure_id, and every ref_* column
  (appointment, order, encounter, document, session ids).
The same key gives the same pseudonyms in every export, so rows can be linked across
exports made with it; without the key the pseudonyms cannot be turned back into ids.

Removed:
  evidence and evidence_events (the events behind each outcome: ids, types, times), summary (a sentence that
  names ids), and every attr but site, specialty, clinic, test, priority, severity,
  capacity, booked and contact. Attrs dropped from this ledger: {dropped_text}.

Times (opened_at, due_at, closed_at, detected_at): {cut}.

Columns: failure_id, detector, outcome (met, late, missed, void, violation, open),
amended_from (the earlier outcome this record corrected), patient, key, the times,
ref_* pseudonyms, and the kept attrs.
"""
