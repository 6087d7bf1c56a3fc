"""A run's metric history, read column by column from its transaction log, for the report.

:func:`~flyteplugins.wandb._offline.read_offline_run` rebuilds every logged step as a dict and
folds every summary record, which costs about a second for 20,000 steps of 10 metrics. The
report only needs columns and the final summary, so :class:`HistoryReader` reads the same log
with the same framing and checks, but:

- history records are read as flat lists of keys and JSON values, and a column's values are
  decoded with one ``json.loads``;
- the summary records wandb's service derives from each history row are decoded only where
  they still hold a key's last value (see :class:`HistoryReader`);
- every other record (run, config, metrics, exit, summaries set by hand, ...) goes through the
  offline reader's own fold, so identity, config and ``define_metric`` step metrics are read
  exactly as there.

Example:
    >>> from flyteplugins.wandb._history import Column
    >>> Column(rows=[0, 2], values=[0.5, 0.25]).values
    [0.5, 0.25]
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from ._compat import flat_records, parse_record, record_kind, record_type_number
from ._log_format import BLOCK, FILE_HEADER, LOG_FILE, frames, log_file, scan
from ._offline import OfflineRun, RunBuilder

__all__ = ["Column", "HistoryReader", "RunHistory", "log_has_exit", "read_history"]


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
        return _row_steps(self.rows, self.columns.get("_step"))


def _row_steps(rows: int, column: Column | None) -> list[Any]:
    steps: list[Any] = list(range(rows))
    if column is not None:
        if len(column.rows) == rows:
            return list(column.values)  # every row has its _step (wandb writes one in each)
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


_Held = tuple[int, bytes, int, int, int]


class HistoryReader:
    """Reads a run's log for the report, incrementally: each :meth:`update` reads what was added.

    wandb writes the log while the run goes on (in buffered batches), so a reader that follows
    the log during the task has little left to read when it ends. Only complete records are
    consumed; an incomplete or damaged chunk at the end is retried on the next update and, in the
    :meth:`result`, reported as where reading stopped.

    What it costs is what makes the report affordable at the end of a long task, so:

    - history records are read as two flat lists, keys and JSON values
      (:func:`~flyteplugins.wandb._compat.flat_records`), and a row's values are decoded later,
      one ``json.loads`` per column;
    - wandb's service writes, just before each history record, the summary update it derives
      from that row (two records in three of a long log). Such a record, whose keys are all in
      the row after it, is not decoded: its place is noted, and :meth:`result` decodes only the
      ones that still hold a key's last summary value (for a metric logged at every step, the
      last one). Every other summary record (set by hand, run time, ...) is folded as it is read.

    Example:
        >>> reader = HistoryReader("/nonexistent/offline-run-20250101_120000-abc")
        >>> reader.update()
        False
    """

    def __init__(self, run_dir: str | os.PathLike[str], row_summaries: bool = True) -> None:

        self.run_dir = Path(run_dir)
        self._trust_rows = row_summaries
        self._log_file: Path | None = None
        self._done = FILE_HEADER.size  # the end of the last complete record
        self._size = 0
        self._builder: Any = None
        self._index = 0  # records read
        self._rows = 0  # history rows read
        self._pending: list[dict[str, str]] = []  # rows read, not decoded into columns yet
        self._columns: dict[str, Column] = {}
        # Summary records other than the service's row summaries: key -> (record, JSON or None).
        self._summary: dict[str, tuple[int, str | None]] = {}
        self._last_summary: tuple[bytes, list[tuple[str, str | None]]] | None = None
        # The row summary before each history row: its record number and place (-1: none).
        self._row_summary = array("q")
        self._row_summary_at = array("q")
        self._row_summary_end = array("q")
        # A summary record waiting for the record after it: its number, payload, place (start and
        # end in the log) and where its kind starts (after the record's number).
        self._held: _Held | None = None

    def update(self) -> bool:
        """Read what was added to the log since the last update; ``False`` while there is no log.

        Raises:
            OfflineRunFormatError: the file is not a wandb transaction log.
        """

        if self._log_file is None:
            try:
                self._log_file = log_file(self.run_dir)
            except FileNotFoundError:
                return False
            match = LOG_FILE.match(self._log_file.name)
            self._run_id = match.group("id") if match else self._log_file.stem
        if self._builder is None:
            self._builder = RunBuilder(self._log_file.parent, self._run_id)
        with open(self._log_file, "rb") as handle:
            if self._done == FILE_HEADER.size:
                _check_header(handle.read(FILE_HEADER.size), self._log_file)
            handle.seek(self._done)
            data = handle.read()
            self._size = handle.tell()
        flat = flat_records()
        history, summary = (flat.history, flat.summary) if flat is not None else (-1, -1)
        mark = flat.sdk_mark if flat is not None else b""
        if not self._trust_rows:
            summary = -1  # every summary record goes the general way, and is folded
        start = self._done
        for payload, end in frames(data, self._done)[0]:
            number, kind_at = record_type_number(payload)
            held = self._held
            if number == history:
                row = _flat_row(flat, payload)
                self._held = None
                self._before_row(held, row, flat, mark)
                self._pending.append(row)
                self._rows += 1
            elif number == summary:
                if held is not None:
                    self._held = None
                    self._fold_summary(held)
                if mark and mark in payload:
                    # Sent by the SDK (set by hand): never the service's row summary.
                    self._fold_summary((self._index, payload, start, end, kind_at))
                else:
                    self._held = (self._index, payload, start, end, kind_at)
            else:
                self._consume(payload, start, end)
            self._index += 1
            self._done = start = end
        return True

    def _before_row(self, held: _Held | None, row: dict[str, str], flat: Any, mark: bytes) -> None:
        """Place the summary record read just before a history row: the row's summary, or folded.

        With ``mark``, the held record is the service's own (the SDK's are folded when read);
        without it, its keys are checked against the row.
        """
        if held is not None and self._trust_rows and (mark or _row_summary_of(flat, held[1], row)):
            self._row_summary.append(held[0])
            self._row_summary_at.append(held[2])
            self._row_summary_end.append(held[3])
            return
        if held is not None:
            self._fold_summary(held)
        self._row_summary.append(-1)
        self._row_summary_at.append(-1)
        self._row_summary_end.append(-1)

    def _consume(self, payload: bytes, start: int, end: int) -> None:
        """A record read the general way (every kind but the common history and summary ones)."""
        record = parse_record(payload)
        kind = record_kind(record)
        held, self._held = self._held, None
        if kind == "history":
            # (only where flat reading is not available)
            row = {_key(item): item.value_json for item in record.history.item}
            self._before_row(held, row, None, b"")
            self._pending.append(row)
            self._rows += 1
            return
        if held is not None:
            self._fold_summary(held)
        if kind == "summary":
            self._held = (self._index, payload, start, end, record_type_number(payload)[1])
        else:
            self._builder.apply(record)

    def _fold_summary(self, held: _Held) -> None:
        index, payload, kind_at = held[0], held[1], held[4]
        # The record without its number: the service's repeated run-time updates are equal.
        tail = payload[kind_at:]
        last = self._last_summary
        if last is not None and last[0] == tail:
            items = last[1]
        else:
            items = _summary_items(payload)
            self._last_summary = (tail, items)
        for key, text in items:
            self._summary[key] = (index, text)

    def last_step(self) -> int | None:
        """The ``_step`` of the last history row read; ``None`` before the first.

        Example:
            >>> HistoryReader("/nonexistent").last_step() is None
            True
        """
        if self._pending:
            text = self._pending[-1].get("_step")
            try:
                step = json.loads(text) if text else None
            except ValueError:
                return None
        else:
            column = self._columns.get("_step")
            step = column.values[-1] if column is not None and column.values else None
        return step if isinstance(step, int) and not isinstance(step, bool) else None

    def decode(self) -> None:
        """Decode the rows read since the last call into columns: one ``json.loads`` per column.

        A reader that follows a log calls it after each update, so that little is left to
        decode at the end.
        """
        rows, self._pending = self._pending, []
        if not rows:
            return
        first = self._rows - len(rows)
        # Rows with the same keys (most of them) become columns together, transposed in C.
        groups: dict[frozenset[str], list[int]] = {}
        for number, row in enumerate(rows):
            keys = frozenset(row)
            group = groups.get(keys)
            if group is None:
                groups[keys] = [number]
            else:
                group.append(number)
        parts: dict[str, list[tuple[Sequence[int], Sequence[str]]]] = {}
        for numbers in groups.values():
            # In the first row's own (logged) order: a frozenset's order changes with the hash seed,
            # and the page must be the same for the same run.
            names = tuple(rows[numbers[0]])
            members = rows if len(numbers) == len(rows) else [rows[number] for number in numbers]
            if len(names) == 1:
                transposed: list[Sequence[str]] = [[row[names[0]] for row in members]]
            else:
                transposed = list(zip(*map(itemgetter(*names), members), strict=True))
            for name, texts in zip(names, transposed, strict=True):
                parts.setdefault(name, []).append((numbers, texts))
        for key, key_parts in parts.items():
            numbers_: Sequence[int]
            if len(key_parts) == 1:
                numbers_, texts = key_parts[0]
            else:  # a key in rows of several shapes: back in row order
                pairs = sorted((n, t) for ns, ts in key_parts for n, t in zip(ns, ts, strict=True))
                numbers_, texts = [n for n, _ in pairs], [t for _, t in pairs]
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = Column()
            if len(numbers_) == len(rows):
                column.rows.extend(range(first, first + len(rows)))
            else:
                column.rows.extend([first + number for number in numbers_])
            column.values.extend(_decode_values(list(texts)))

    def so_far(self) -> tuple[dict[str, Column], list[Any], dict[str, str]]:
        """What a chart planner needs of the history read so far, without building the run.

        The decoded columns (the reader's own, which it keeps growing: not copies), the
        ``_step`` of each row, and the step metrics declared so far. Cheap enough to call after
        each :meth:`update`.

        Example:
            >>> HistoryReader("/nonexistent").so_far()
            ({}, [], {})
        """
        self.decode()
        step_metrics = dict(self._builder.step_metrics) if self._builder is not None else {}
        return self._columns, _row_steps(self._rows, self._columns.get("_step")), step_metrics

    def result(self) -> RunHistory:
        """What has been read so far, as the report shows it.

        Raises:
            FileNotFoundError: the directory holds no ``run-*.wandb`` file.
        """
        if self._log_file is None or self._builder is None:
            log_file(self.run_dir)  # raises FileNotFoundError with the reason
            raise FileNotFoundError(f"{self.run_dir}: update() has not read the log")
        self.decode()
        summary = dict(self._summary)
        if self._held is not None:  # the last record read: nothing after it tells what it is
            for key, text in _summary_items(self._held[1]):
                summary[key] = (self._held[0], text)
        if not self._resolve_row_summaries(summary):
            # A summary taken for the one the service derives from the row after it does not
            # have that row's step: fold every summary record instead.
            exact = HistoryReader(self.run_dir, row_summaries=False)
            exact.update()
            return exact.result()
        columns = {
            key: Column(list(column.rows), list(column.values)) for key, column in self._columns.items()
        }
        # A log shorter than its header has just been created: nothing is written yet.
        truncated = self._done < self._size or self._size < FILE_HEADER.size
        run = self._builder.build(truncated)
        merged = dict(run.summary)
        for key, (_, text) in summary.items():
            if key == "_wandb" or key.startswith("_wandb."):
                continue
            if text is None:
                merged.pop(key, None)
            else:
                merged[key] = _decode_values([text])[0]
        run = dataclasses.replace(run, summary=merged, bytes_read=self._done, log_size=self._size)
        return RunHistory(run=run, columns=columns, rows=self._rows)

    def _resolve_row_summaries(self, summary: dict[str, tuple[int, str | None]]) -> bool:
        """Add to ``summary`` each key's value from the last row summary that has it, if later.

        A row summary's keys are all in its row, so a key's last row summary value is in the
        row summary of one of the rows that have the key: the last of them, unless wandb left
        the key out there (a summary set by hand, ``summary="none"``): then the one before.
        ``False`` when a row summary read does not have its row's ``_step``.
        """
        read: dict[int, dict[str, str | None]] = {}
        steps = self._columns.get("_step") or Column()

        def step_of(row: int) -> Any:
            # wandb writes a _step in every row: the column's rows are 0, 1, 2, ...
            if row < len(steps.rows) and steps.rows[row] == row:
                return steps.values[row]
            return dict(zip(steps.rows, steps.values, strict=True)).get(row)

        for key, column in self._columns.items():
            if key == "_wandb" or key.startswith("_wandb."):
                continue
            since = summary[key][0] if key in summary else -1
            for row in reversed(column.rows):
                index = self._row_summary[row]
                if index < 0:
                    continue
                if index < since:
                    break
                items = read.get(row)
                if items is None:
                    items = read[row] = dict(self._read_row_summary(row))
                    step = items.get("_step")
                    if step is None or _decode_values([step])[0] != step_of(row):
                        return False
                if key in items:
                    summary[key] = (index, items[key])
                    break
        return True

    def _read_row_summary(self, row: int) -> list[tuple[str, str | None]]:
        assert self._log_file is not None
        start, end = self._row_summary_at[row], self._row_summary_end[row]
        with open(self._log_file, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
        records = frames(data, start)[0]
        return _summary_items(records[0][0]) if records else []


def _flat_row(flat: Any, payload: bytes) -> dict[str, str]:
    """A history record's keys and JSON values."""
    message = flat.message
    message.ParseFromString(payload)
    items = message.history.item
    keys, values = items.nested_key, items.value_json
    if len(keys) == len(values) and not items.key:
        return dict(zip(keys, values, strict=True))
    plain = items.key
    if not keys and len(plain) == len(values):
        return dict(zip(plain, values, strict=True))
    # Nested keys (several parts for one item): item by item.
    return {_key(item): item.value_json for item in parse_record(payload).history.item}


def _row_summary_of(flat: Any, payload: bytes, row: dict[str, str]) -> bool:
    """Whether a summary record is one the service derived from the row after it: updates only,
    all of them keys of that row."""
    if flat is None:
        record = parse_record(payload).summary
        if len(record.remove):
            return False
        return all(_key(item) in row for item in record.update)
    message = flat.message
    message.ParseFromString(payload)
    summary = message.summary
    update = summary.update
    keys = update.nested_key
    if summary.remove or update.key or len(keys) != len(update.value_json):
        return False
    return row.keys() >= set(keys)


def _summary_items(payload: bytes) -> list[tuple[str, str | None]]:
    """A summary record's updates (key, JSON) and removals (key, ``None``), in order."""
    record = parse_record(payload).summary
    items: list[tuple[str, str | None]] = [(_key(item), item.value_json) for item in record.update]
    items.extend((_key(item), None) for item in record.remove)
    return items


def _check_header(header: bytes, source: Path) -> None:
    # The offline reader's own checks (identity, magic, version) on the header alone.
    scan(header, source)


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
    reader = HistoryReader(run_dir)
    # Reading creates a few objects per logged value and no reference cycle: the cyclic
    # collector would only walk the growing heap again and again (a third more time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        reader.update()
        return reader.result()
    finally:
        if enabled:
            gc.enable()


def log_has_exit(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run's log already ends with its exit record, reading only its last blocks.

    wandb's service writes the end of the log just after ``run.finish()`` returns; this is how
    the report waits for it without reading a long log twice.

    Example:
        >>> log_has_exit(run_dir)  # doctest: +SKIP
        True
    """
    log = log_file(Path(run_dir))
    size = log.stat().st_size
    if size <= FILE_HEADER.size:
        return False
    # The exit record is tiny: it is in the last block, or split over the last two.
    start = max(0, (size - 1) // BLOCK - 1) * BLOCK
    with open(log, "rb") as handle:
        handle.seek(start)
        tail = handle.read()
    # Reading starts at a block boundary: the rest of a record that started before is skipped.
    records, _, _ = frames(tail, start, FILE_HEADER.size if start == 0 else 0)
    for payload, _ in records:
        try:
            if record_kind(parse_record(payload)) == "exit":
                return True
        except Exception:
            continue
    return False
