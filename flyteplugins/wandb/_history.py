"""A run's metric history, read column by column from its transaction log, for the report.

:func:`~flyteplugins.wandb._offline.read_offline_run` rebuilds every logged step as a dict, which
costs about a second for 20,000 steps of 10 metrics (plus two summary records per step). The
report only needs columns, so :func:`read_history` reads the same log with the same framing
(``_offline._scan``) and the same record classes, but:

- it keeps each metric's values as the JSON text wandb wrote and decodes a whole column with one
  ``json.loads``;
- every other record (run, config, metrics, exit, ...) goes through the offline reader's own
  fold, so identity, config and ``define_metric`` step metrics are read exactly as there.

Example:
    >>> from flyteplugins.wandb._history import Column
    >>> Column(rows=[0, 2], values=[0.5, 0.25]).values
    [0.5, 0.25]
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._offline import OfflineRun

__all__ = ["Column", "RunHistory", "log_has_exit", "read_history"]

_REMOVED = object()


@dataclass
class Column:
    """One logged key: the rows (step records, counted from 0) that have it and its values there.

    Example:
        >>> Column(rows=[0, 1], values=[1.0, "text"]).rows
        [0, 1]
    """

    rows: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class RunHistory:
    """What the report shows of one run directory: its identity and state, and its history.

    Attributes:
        run: identity, config, summary, state and reading position (its ``history`` is empty:
            the history is in ``columns``).
        columns: each logged key (nested keys joined with ``.``) and its values, in step order.
        rows: how many history records (logged steps) were read.

    Example:
        >>> from pathlib import Path
        >>> RunHistory(OfflineRun(path=Path("."), run_id="r"), {}, 0).rows
        0
    """

    run: OfflineRun
    columns: dict[str, Column]
    rows: int

    def steps(self) -> list[Any]:
        """The ``_step`` of each history row (the row's number when it has none).

        Example:
            >>> from pathlib import Path
            >>> run = OfflineRun(path=Path("."), run_id="r")
            >>> RunHistory(run, {"_step": Column([1], [5])}, 2).steps()
            [0, 5]
        """
        steps: list[Any] = list(range(self.rows))
        column = self.columns.get("_step")
        if column is not None:
            for row, value in zip(column.rows, column.values, strict=True):
                steps[row] = value
        return steps


def _decode_values(texts: list[str]) -> list[Any]:
    """Decode a column's JSON texts in one go (one at a time when a text is not JSON)."""
    try:
        decoded: list[Any] = json.loads("[" + ",".join(texts) + "]")
        if len(decoded) == len(texts):
            return decoded
    except ValueError:
        pass
    out: list[Any] = []
    for text in texts:
        try:
            out.append(json.loads(text) if text else None)
        except ValueError:
            out.append(text)
    return out


def _key(item: Any) -> str:
    nested = item.nested_key
    size = len(nested)
    # Joining protobuf's repeated container is slow; nearly every key has one part.
    if size == 1:
        return str(nested[0])
    return ".".join(list(nested)) if size else str(item.key)


def read_history(run_dir: str | os.PathLike[str]) -> RunHistory:
    """Read one run directory (online or offline) for the report; safe on a damaged log.

    What could be read before an incomplete or damaged record is returned, with
    ``run.truncated`` set and ``run.bytes_read`` / ``run.log_size`` saying where reading stopped.

    Raises:
        FileNotFoundError: the directory holds no ``run-*.wandb`` file.
        OfflineRunFormatError: the file is not a wandb transaction log.

    Example:
        >>> history = read_history(run_dir)  # doctest: +SKIP
        >>> history.columns["loss"].values[:3]  # doctest: +SKIP
        [0.9, 0.7, 0.55]
    """
    from wandb.proto import wandb_internal_pb2

    from ._offline import _LOG_FILE, _log_file, _RunBuilder, _scan

    log_file = _log_file(Path(run_dir))
    match = _LOG_FILE.match(log_file.name)
    builder = _RunBuilder(log_file.parent, match.group("id") if match else log_file.stem)
    data = log_file.read_bytes()
    payloads, truncated, bytes_read = _scan(data, log_file)

    records = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    kinds = [record.WhichOneof("record_type") for record in records]
    # wandb's service mirrors each history record into a summary record written just before it,
    # with the same keys and values (the last value of a metric is its summary). Those mirrors are
    # half of a long log; they are recognised (a summary record with as many entries as the
    # history record that follows it) and taken from the history instead. Not when a metric
    # declares another summary (define_metric(summary="min"), goal=...): then every summary
    # record is read.
    mirrors = not any(
        kind == "metric" and (record.metric.HasField("summary") or record.metric.goal)
        for kind, record in zip(kinds, records, strict=True)
    )
    texts: dict[str, tuple[list[int], list[str]]] = {}
    # key -> (position in the log, JSON text or None when removed), from non-mirror summary records.
    summary: dict[str, tuple[int, str | None]] = {}
    row_position: list[int] = []
    row = 0
    for index, (kind, record) in enumerate(zip(kinds, records, strict=True)):
        if kind == "history":
            for item in record.history.item:
                nested = item.nested_key
                key = nested[0] if len(nested) == 1 else _key(item)
                column = texts.get(key)
                if column is None:
                    column = texts[key] = ([], [])
                column[0].append(row)
                column[1].append(item.value_json)
            row_position.append(index)
            row += 1
        elif kind == "summary":
            update = record.summary.update
            if (
                mirrors
                and index + 1 < len(records)
                and kinds[index + 1] == "history"
                and not len(record.summary.remove)
                and len(update) == len(records[index + 1].history.item)
            ):
                continue
            for item in update:
                summary[_key(item)] = (index, item.value_json)
            for item in record.summary.remove:
                summary[_key(item)] = (index, None)
        else:
            builder.apply(record)
    run = builder.build(truncated)
    columns = {key: Column(rows, _decode_values(values)) for key, (rows, values) in texts.items()}
    merged = dict(run.summary)
    latest: dict[str, tuple[int, Any]] = {}
    if mirrors:
        for key, decoded in columns.items():
            latest[key] = (row_position[decoded.rows[-1]], decoded.values[-1])
    for key, (position, text) in summary.items():
        if key not in latest or position > latest[key][0]:
            latest[key] = (position, _REMOVED if text is None else _decode_values([text])[0])
    for key, (_, value) in latest.items():
        if key == "_wandb" or key.startswith("_wandb."):
            continue
        if value is _REMOVED:
            merged.pop(key, None)
        else:
            merged[key] = value
    run = dataclasses.replace(run, summary=merged, bytes_read=bytes_read, log_size=len(data))
    return RunHistory(run=run, columns=columns, rows=row)


def log_has_exit(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run's log already ends with its exit record, reading only its last blocks.

    wandb's service writes the end of the log just after ``run.finish()`` returns; this is how
    the report waits for it without reading a long log twice.

    Example:
        >>> log_has_exit(run_dir)  # doctest: +SKIP
        True
    """
    from wandb.proto import wandb_internal_pb2

    from ._offline import _BLOCK, _CHUNK_HEADER, _CRC_SEED, _FILE_HEADER, _FIRST, _FULL, _LAST, _log_file

    log_file = _log_file(Path(run_dir))
    size = log_file.stat().st_size
    if size <= _FILE_HEADER.size:
        return False
    # The exit record is tiny: it is in the last block, or split over the last two.
    start = max(0, (size - 1) // _BLOCK - 1) * _BLOCK
    with open(log_file, "rb") as handle:
        handle.seek(start)
        tail = handle.read()
    pos = _FILE_HEADER.size if start == 0 else 0
    pending: bytearray | None = None
    found = False
    record = wandb_internal_pb2.Record()
    while pos + _CHUNK_HEADER.size <= len(tail):
        block_left = _BLOCK - (start + pos) % _BLOCK
        if block_left < _CHUNK_HEADER.size:
            pos += block_left
            continue
        checksum, length, kind = _CHUNK_HEADER.unpack_from(tail, pos)
        end = pos + _CHUNK_HEADER.size + length
        if kind not in _CRC_SEED or end > len(tail):
            break
        payload = tail[pos + _CHUNK_HEADER.size : end]
        pos = end
        if zlib.crc32(payload, _CRC_SEED[kind]) != checksum:
            break
        if kind == _FULL:
            whole: bytes | None = payload
        elif kind == _FIRST:
            pending, whole = bytearray(payload), None
        elif pending is not None:
            pending += payload
            whole = bytes(pending) if kind == _LAST else None
            if kind == _LAST:
                pending = None
        else:
            whole = None  # the rest of a record that started before the tail
        if whole is not None:
            record.Clear()
            try:
                record.ParseFromString(whole)
            except Exception:
                continue
            found = found or record.WhichOneof("record_type") == "exit"
    return found
