"""Reading the outcome ledger: every record once, the latest per ``failure_id``.

The ledger is what ``carewatch run`` writes as ``outcomes.jsonl`` (and ``open.jsonl`` for
opportunities not decided yet), or what the Kafka workers publish on the outcomes topic.
The same opportunity can appear several times: a ``missed`` later amended to ``late`` or
``met`` (withdrawn), a record re-sent after a crash, two runs over overlapping input. QI
counts each opportunity once, as its latest record says: the one with the newest
``detected_at`` (the watermark when it was decided); between equal times a decided
record beats an open one, and then the later input (later file, later line) wins.

Only the columns QI needs are read (pyarrow's JSON reader, block by block, so a ledger
of millions of records stays within a small memory budget); a record that is not JSON,
or lacks ``failure_id``, ``detector``, ``outcome`` or a time, stops the read with a
one-line ``InputError`` naming the file and line.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from detectors.errors import InputError
from detectors.records import OUTCOMES

__all__ = ["BY_FIELDS", "Ledger", "latest_mask", "ledger_files", "read_ledger"]

#: The attrs a measure can be broken down by.
BY_FIELDS: tuple[str, ...] = ("site", "specialty", "clinic")
#: What an absent attr is shown as.
NOT_RECORDED = "(not recorded)"

_TS = pa.timestamp("us", tz="UTC")
_SCHEMA = pa.schema(
    [
        ("failure_id", pa.string()),
        ("detector", pa.string()),
        ("outcome", pa.string()),
        ("due_at", _TS),
        ("opened_at", _TS),
        ("detected_at", _TS),
        ("attrs", pa.struct([(name, pa.string()) for name in BY_FIELDS])),
    ]
)
_PARSE = pa_json.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
# bytes per block: 1 MiB parsed fastest (a fifth faster than 8 MiB: it stays in the
# cache); a record longer than that is read again with blocks of 64 MiB
_BLOCK = 1 << 20
_BIG_BLOCK = 64 << 20
_GROUP_ROWS = 250_000
_KNOWN_OUTCOMES = frozenset((*OUTCOMES, "open"))


@dataclass
class Ledger:
    """The latest record of every opportunity, as a frame with one row each.

    Columns: ``failure_id``, ``detector``, ``outcome`` (met, late, missed, void,
    violation, open), ``due`` (UTC: ``due_at``, or ``opened_at`` for a violation with no
    deadline), ``site``, ``specialty``, ``clinic`` (categoricals; "(not recorded)" where
    the record has none). ``horizon`` is the newest ``detected_at`` (UTC): how far the
    watermark had got, so periods ending after it are not complete.
    """

    frame: pd.DataFrame
    horizon: pd.Timestamp | None
    records_read: int
    sources: list[str] = field(default_factory=list)

    @property
    def superseded(self) -> int:
        """Records replaced by a later record of the same opportunity."""
        return self.records_read - len(self.frame)


def ledger_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files behind the command line's LEDGER arguments: a file as it is; a run's
    output directory gives its ``outcomes.jsonl`` and ``open.jsonl`` (``.gz`` too)."""
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = [
                path / name
                for name in ("outcomes.jsonl", "outcomes.jsonl.gz", "open.jsonl", "open.jsonl.gz")
                if (path / name).is_file()
            ]
            if not any(p.name.startswith("outcomes") for p in found):
                raise InputError(
                    f"{path} holds no outcomes.jsonl: name the outcome ledger a "
                    "`carewatch run --out DIR` wrote, or that directory"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"ledger {path} does not exist")
    if not files:
        raise InputError("no ledger given: name outcomes.jsonl files or run directories")
    return files


def read_ledger(inputs: Sequence[str | os.PathLike[str]]) -> Ledger:
    """Read LEDGER files or run directories (``ledger_files``) into one ``Ledger``."""
    files = ledger_files(inputs)
    cols = _read_columns(files)
    total = len(cols["detected"]) if cols else 0
    if not total:
        return Ledger(_empty_frame(), None, 0, [str(f) for f in files])
    keep = _latest(cols)
    frame = pd.DataFrame(
        {
            "failure_id": np.asarray(cols["failure_id"])[keep],
            "detector": cols["detector"][keep],
            "outcome": cols["outcome"][keep],
            "due": pd.to_datetime(np.asarray(cols["due"])[keep], unit="us", utc=True),
            **{name: cols[name][keep] for name in BY_FIELDS},
        }
    )
    horizon = pd.Timestamp(int(np.asarray(cols["detected"]).max()), unit="us", tz="UTC")
    return Ledger(frame.reset_index(drop=True), horizon, total, [str(f) for f in files])


def latest_mask(files: Sequence[Path]) -> np.ndarray:
    """For every record of ``files`` in input order (blank lines skipped), whether it is
    the latest of its opportunity: what a second, streaming pass over the same files
    keeps (``streams.qi.export``)."""
    cols = _read_columns(files)
    total = len(cols["detected"]) if cols else 0
    mask = np.zeros(total, dtype=bool)
    if total:
        mask[_latest(cols)] = True
    return mask


def _read_columns(files: Sequence[Path]) -> dict[str, np.ndarray | pd.Categorical]:
    parts: list[dict[str, np.ndarray | pd.Categorical]] = []
    for path in files:
        parts.extend(_read_file(path))
    cols: dict[str, np.ndarray | pd.Categorical] = {}
    for name in list(parts[0]) if parts else []:
        # column by column, letting go of the pieces: the peak holds one column twice
        pieces = [p.pop(name) for p in parts]
        if isinstance(pieces[0], pd.Categorical):
            cols[name] = pd.api.types.union_categoricals(pieces)
        else:
            cols[name] = np.concatenate(pieces)
        del pieces
    parts.clear()
    return cols


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "failure_id": pd.Series([], dtype=object),
            "detector": pd.Categorical([]),
            "outcome": pd.Categorical([]),
            "due": pd.Series([], dtype="datetime64[us, UTC]"),
            **{name: pd.Categorical([]) for name in BY_FIELDS},
        }
    )


def _latest(cols: dict[str, np.ndarray | pd.Categorical]) -> np.ndarray:
    """Positions of the latest record per failure_id, in input order."""
    fid = _id_keys(cols["failure_id"])
    decided = np.asarray(cols["outcome"] != "open", dtype=np.int8)
    # lexsort is stable: between equal keys the later input stays later
    order = np.lexsort((decided, cols["detected"], fid))
    ids = fid[order]
    last = np.ones(len(ids), dtype=bool)
    last[:-1] = ids[:-1] != ids[1:]
    return np.sort(order[last])


def _id_keys(ids: np.ndarray) -> np.ndarray:
    """Sortable keys of failure ids: the 64-bit number a 16-hex-digit id spells (every
    built-in id), else the id's rank among the distinct ids."""
    if ids.dtype.kind == "u":
        return ids
    return pd.factorize(ids)[0]


def _hex_ids(arr: pa.Array) -> np.ndarray | None:
    """16-hex-digit ids as uint64, straight from the Arrow buffers; None if any is not."""
    arr = arr.cast(pa.string())
    if arr.null_count:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    if len(arr) == 0 or not (np.diff(offsets) == 16).all():
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    digits = _HEX[data]
    if (digits == 255).any():
        return None
    nibbles = digits.reshape(-1, 16).astype(np.uint64)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return (nibbles << shifts).sum(axis=1, dtype=np.uint64)


_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _open_stream(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None)


def _read_file(path: Path, block: int = _BLOCK) -> list[dict[str, np.ndarray | pd.Categorical]]:
    """The file's records, block by block (``block`` bytes at a time)."""
    parts: list[dict[str, np.ndarray | pd.Categorical]] = []
    try:
        reader = pa_json.open_json(
            _open_stream(path),
            read_options=pa_json.ReadOptions(block_size=block, use_threads=False),
            parse_options=_PARSE,
        )
        # parse in small blocks (fast), convert in large groups (per-group costs add up)
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= _GROUP_ROWS:
                parts.append(_columns(_combine(pending), path))
                pending, rows = [], 0
        if pending:
            parts.append(_columns(_combine(pending), path))
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as exc:
        if "Empty JSON stream" in str(exc):  # an empty ledger: a run that decided nothing
            return parts
        if "straddling" in str(exc) and block < _BIG_BLOCK:  # a record longer than a block
            return _read_file(path, _BIG_BLOCK)
        raise _explain(path, exc) from None
    return parts


def _combine(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    combined = pa.Table.from_batches(batches).combine_chunks().to_batches()
    return combined[0] if combined else batches[0]


def _columns(batch: pa.RecordBatch, path: Path) -> dict[str, np.ndarray | pd.Categorical]:
    for name in ("failure_id", "detector", "outcome", "detected_at"):
        if batch.column(name).null_count:
            raise _missing(path, name)
    due = batch.column("due_at")
    if due.null_count:
        due = pa.compute.coalesce(due, batch.column("opened_at"))
        if due.null_count:
            raise _missing(path, "due_at or opened_at")
    outcome = _categorical(batch.column("outcome"))
    unknown = set(outcome.categories) - _KNOWN_OUTCOMES
    if unknown:
        raise InputError(
            f"ledger {path}: unknown outcome {sorted(unknown)[0]!r}; expected one of "
            f"{', '.join(sorted(_KNOWN_OUTCOMES))} (is it an outcomes file?)"
        )
    ids = batch.column("failure_id")
    hexed = _hex_ids(ids)
    attrs = batch.column("attrs")
    out: dict[str, np.ndarray | pd.Categorical] = {
        "failure_id": hexed if hexed is not None else np.asarray(ids.to_pylist(), dtype=object),
        "detector": _categorical(batch.column("detector")),
        "outcome": outcome,
        "due": due.cast(pa.int64()).to_numpy(),
        "detected": batch.column("detected_at").cast(pa.int64()).to_numpy(),
    }
    for name in BY_FIELDS:
        child = attrs.field(name) if attrs.null_count == 0 else pa.compute.struct_field(attrs, name)
        out[name] = _categorical(pa.compute.fill_null(child, NOT_RECORDED))
    return out


def _categorical(arr: pa.Array) -> pd.Categorical:
    enc = arr.dictionary_encode()
    return pd.Categorical.from_codes(
        enc.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        categories=pd.Index(enc.dictionary.to_pylist(), dtype=object),
    )


def _missing(path: Path, name: str) -> InputError:
    return InputError(
        f"ledger {path}: a record has no {name}; QI reads the outcome ledger "
        "(outcomes.jsonl of `carewatch run`), whose records all have it"
    )


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each outcome record of ``path`` (gzip too), line by
    line; a one-line ``InputError`` at the first line that is not one. The line itself is
    never shown: it may hold a patient's identifiers."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise InputError(f"ledger {path} line {number}: not JSON") from None
                if not isinstance(rec, dict):
                    raise InputError(f"ledger {path} line {number}: not a JSON object")
                if not rec.get("failure_id"):
                    raise InputError(f"ledger {path} line {number}: not an outcome record")
                yield number, rec
    except (OSError, EOFError) as err:
        raise InputError(f"ledger {path}: cannot read it: {err}") from None


def _explain(path: Path, exc: BaseException) -> InputError:
    """A one-line error naming the first bad line (found again line by line)."""
    try:
        for _ in read_records(path):
            pass
    except InputError as found:
        return found
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"ledger {path}: cannot read it as JSON Lines: {first}")
