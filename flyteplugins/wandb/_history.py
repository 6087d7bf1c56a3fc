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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._offline import OfflineRun

__all__ = ["Column", "RunHistory", "read_history"]


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

    texts: dict[str, tuple[list[int], list[str]]] = {}
    summary: dict[str, str | None] = {}
    row = 0
    record = wandb_internal_pb2.Record()
    for payload in payloads:
        record.Clear()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                key = _key(item)
                column = texts.get(key)
                if column is None:
                    column = texts[key] = ([], [])
                column[0].append(row)
                column[1].append(item.value_json)
            row += 1
        elif kind == "summary":
            # Last write wins; the JSON is decoded once at the end, for the keys that remain.
            for item in record.summary.update:
                summary[_key(item)] = item.value_json
            for item in record.summary.remove:
                summary.pop(_key(item), None)
        else:
            builder.apply(record)
    run = builder.build(truncated)
    merged = dict(run.summary)
    for key, text in summary.items():
        if key != "_wandb" and not key.startswith("_wandb."):
            merged[key] = _decode_values([text or "null"])[0]
    columns = {key: Column(rows, _decode_values(values)) for key, (rows, values) in texts.items()}
    run = dataclasses.replace(run, summary=merged, bytes_read=bytes_read, log_size=len(data))
    return RunHistory(run=run, columns=columns, rows=row)
