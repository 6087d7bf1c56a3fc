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

from ._compat import parse_record, record_has, record_kind
from ._offline import OfflineRun

__all__ = ["Column", "HistoryReader", "RunHistory", "log_has_exit", "read_history"]

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


class HistoryReader:
    """Reads a run's log for the report, incrementally: each :meth:`update` reads what was added.

    wandb writes the log while the run goes on (in buffered batches), so a reader that follows
    the log during the task has little left to read when it ends. Only complete records are
    consumed; an incomplete or damaged chunk at the end is retried on the next update and, in the
    :meth:`result`, reported as where reading stopped.

    Example:
        >>> reader = HistoryReader("/nonexistent/offline-run-20250101_120000-abc")
        >>> reader.update()
        False
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self._log_file: Path | None = None
        self._reset()

    def _reset(self) -> None:
        from ._offline import _FILE_HEADER

        self._done = _FILE_HEADER.size  # the end of the last complete record
        self._size = 0
        self._builder: Any = None
        self._texts: dict[str, tuple[list[int], list[str]]] = {}
        self._decoded: dict[str, Column] = {}
        # key -> (position in the log, JSON text or None when removed), from non-mirror summaries.
        self._summary: dict[str, tuple[int, str | None]] = {}
        self._row_position: list[int] = []
        self._rows = 0
        self._index = 0
        self._held: Any = None  # a summary record waiting for the record after it
        self._mirrors = True
        self._skipped_mirrors = 0

    def update(self) -> bool:
        """Read what was added to the log since the last update; ``False`` while there is no log.

        Raises:
            OfflineRunFormatError: the file is not a wandb transaction log.
        """
        from ._offline import _LOG_FILE, _log_file, _RunBuilder

        if self._log_file is None:
            try:
                self._log_file = _log_file(self.run_dir)
            except FileNotFoundError:
                return False
            match = _LOG_FILE.match(self._log_file.name)
            self._run_id = match.group("id") if match else self._log_file.stem
        if self._builder is None:
            self._builder = _RunBuilder(self._log_file.parent, self._run_id)
        with open(self._log_file, "rb") as handle:
            if self._done == _header_size():
                _check_header(handle.read(_header_size()), self._log_file)
            handle.seek(self._done)
            data = handle.read()
            self._size = handle.tell()
        for payload, end in _complete_records(data, self._done):
            self._consume(payload)
            self._done = end
        if not self._mirrors and self._skipped_mirrors:
            # A metric declared another summary after mirrors were skipped: read again, exactly.
            self._reset()
            self._mirrors = False
            return self.update()
        return True

    def _consume(self, payload: bytes) -> None:
        record = parse_record(payload)
        kind = record_kind(record)
        held, self._held = self._held, None
        if held is not None:
            self._fold_summary(held, mirror=kind == "history" and _mirrors_history(held[1], record))
        index = self._index
        self._index += 1
        if kind == "history":
            texts = self._texts
            for item in record.history.item:
                nested = item.nested_key
                key = nested[0] if len(nested) == 1 else _key(item)
                column = texts.get(key)
                if column is None:
                    column = texts[key] = ([], [])
                column[0].append(self._rows)
                column[1].append(item.value_json)
            self._row_position.append(index)
            self._rows += 1
        elif kind == "summary":
            # wandb's service mirrors each history record into a summary record written just
            # before it; whether this is one is known from the record after it.
            self._held = (index, record)
        else:
            if kind == "metric" and (record_has(record.metric, "summary") or record.metric.goal):
                self._mirrors = False
            self._builder.apply(record)

    def _fold_summary(self, held: tuple[int, Any], mirror: bool) -> None:
        index, record = held
        if mirror and self._mirrors:
            self._skipped_mirrors += 1
            return
        for item in record.summary.update:
            self._summary[_key(item)] = (index, item.value_json)
        for item in record.summary.remove:
            self._summary[_key(item)] = (index, None)

    def decode(self) -> None:
        """Decode the values read since the last call: one ``json.loads`` per column and batch.

        A reader that follows a log calls it after each update, so that little is left to
        decode at the end.
        """
        for key, (_, texts) in self._texts.items():
            done = self._decoded.get(key)
            if done is None:
                done = self._decoded[key] = Column()
            if len(done.values) < len(texts):
                done.values.extend(_decode_values(texts[len(done.values) :]))

    def result(self) -> RunHistory:
        """What has been read so far, as the report shows it.

        Raises:
            FileNotFoundError: the directory holds no ``run-*.wandb`` file.
        """
        if self._log_file is None or self._builder is None:
            from ._offline import _log_file

            _log_file(self.run_dir)  # raises FileNotFoundError with the reason
            raise FileNotFoundError(f"{self.run_dir}: update() has not read the log")
        summary = dict(self._summary)
        if self._held is not None:
            index, record = self._held
            for item in record.summary.update:
                summary[_key(item)] = (index, item.value_json)
            for item in record.summary.remove:
                summary[_key(item)] = (index, None)
        self.decode()
        columns = {
            key: Column(list(rows), list(self._decoded[key].values)) for key, (rows, _) in self._texts.items()
        }
        # A log shorter than its header has just been created: nothing is written yet.
        truncated = self._done < self._size or self._size < _header_size()
        run = self._builder.build(truncated)
        merged = dict(run.summary)
        latest: dict[str, tuple[int, Any]] = {}
        if self._mirrors:
            for key, column in columns.items():
                latest[key] = (self._row_position[column.rows[-1]], column.values[-1])
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
        run = dataclasses.replace(run, summary=merged, bytes_read=self._done, log_size=self._size)
        return RunHistory(run=run, columns=columns, rows=self._rows)


def _header_size() -> int:
    from ._offline import _FILE_HEADER

    return int(_FILE_HEADER.size)


def _check_header(header: bytes, source: Path) -> None:
    from ._offline import _scan

    # The offline reader's own checks (identity, magic, version) on the header alone.
    _scan(header, source)


def _mirrors_history(summary: Any, history: Any) -> bool:
    """Whether a summary record is the service's mirror of the history record after it."""
    return not len(summary.summary.remove) and len(summary.summary.update) == len(history.history.item)


def _complete_records(data: bytes, offset: int) -> list[tuple[bytes, int]]:
    """The complete records in ``data`` (read from ``offset`` of the log, a record boundary),
    each with the log position just after it; stops at the first incomplete or damaged chunk."""
    from ._offline import _BLOCK, _CHUNK_HEADER, _CRC_SEED, _FIRST, _FULL, _LAST

    out: list[tuple[bytes, int]] = []
    pending: bytearray | None = None
    pos = 0
    end = len(data)
    header = _CHUNK_HEADER.size
    while True:
        block_left = _BLOCK - (offset + pos) % _BLOCK
        if block_left < header:
            pos += block_left
            continue
        if pos + header > end:
            return out
        checksum, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        chunk_end = pos + header + length
        if kind not in _CRC_SEED or chunk_end > end or length > block_left - header:
            return out
        payload = data[pos + header : chunk_end]
        if zlib.crc32(payload, _CRC_SEED[kind]) != checksum:
            return out
        pos = chunk_end
        if kind == _FULL:
            pending = None
            out.append((payload, offset + pos))
        elif kind == _FIRST:
            pending = bytearray(payload)
        elif pending is not None:
            pending += payload
            if kind == _LAST:
                out.append((bytes(pending), offset + pos))
                pending = None


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
    reader.update()
    return reader.result()


def log_has_exit(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run's log already ends with its exit record, reading only its last blocks.

    wandb's service writes the end of the log just after ``run.finish()`` returns; this is how
    the report waits for it without reading a long log twice.

    Example:
        >>> log_has_exit(run_dir)  # doctest: +SKIP
        True
    """
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
            try:
                record = parse_record(whole)
            except Exception:
                continue
            found = found or record_kind(record) == "exit"
    return found
