"""wandb's run files on disk: the run folder's name, its transaction log, and the log's framing.

A run folder is ``offline-run-<YYYYmmdd_HHMMSS>-<id>`` (``run-...`` for online runs; a ``-<n>``
suffix when the same id starts twice in one second, or a writer's label) and holds the
append-only transaction log ``run-<id>.wandb``. The log is LevelDB's log format as wandb uses it;
:func:`frames` is the one reading of that framing, shared by the offline reader
(:mod:`~flyteplugins.wandb._offline`, which folds the records into a run), the report's
incremental history reader (:mod:`~flyteplugins.wandb._history`) and the check for the exit record
at a log's end. Records are decoded elsewhere, with wandb's own protobuf classes.

Example:
    >>> FILE_HEADER.size, BLOCK
    (7, 32768)
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from pathlib import Path

__all__ = [
    "BLOCK",
    "DAMAGED",
    "ENDED",
    "FILE_HEADER",
    "LOG_FILE",
    "RUN_DIR",
    "UNFINISHED",
    "OfflineRunFormatError",
    "frames",
    "log_file",
    "parse_run_dir",
    "scan",
]

logger = logging.getLogger("flyteplugins.wandb")

# The log's framing (LevelDB's log format as wandb uses it): a 7-byte file header, then 32 KiB
# blocks of chunks, each chunk a 7-byte header (CRC-32 of type byte + payload, length, type) and
# its payload. A record too long for the rest of a block is split into FIRST/MIDDLE/LAST chunks;
# a block tail shorter than a chunk header is zero padding.
FILE_HEADER = struct.Struct("<4sHB")
_IDENT = b":W&B"
_MAGIC = 0xBEE1
_VERSION = 0
_CHUNK_HEADER = struct.Struct("<IHB")
BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_CRC_SEED = {kind: zlib.crc32(bytes([kind])) for kind in (_FULL, _FIRST, _MIDDLE, _LAST)}

RUN_DIR = re.compile(r"^(?P<mode>offline-run|run)-(?P<time>\d{8}_\d{6})-(?P<rest>.+)$")
LOG_FILE = re.compile(r"^run-(?P<id>.+)\.wandb$")


class OfflineRunFormatError(ValueError):
    """A file is not a wandb transaction log this reader understands.

    Example:
        >>> from flyteplugins.wandb import OfflineRunFormatError
        >>> issubclass(OfflineRunFormatError, ValueError)
        True
    """


def parse_run_dir(path: Path) -> tuple[str, list[tuple[str, int]]] | None:
    """A run directory's timespec and its possible ``(run id, same-second suffix)`` readings.

    Example:
        >>> parse_run_dir(Path("wandb/offline-run-20250101_120000-abc"))
        ('20250101_120000', [('abc', 0)])
    """
    match = RUN_DIR.match(path.name)
    if match is None:
        return None
    rest = match.group("rest")
    # Ids may contain "-", so "<id>-1" is ambiguous; the log's name (run-<id>.wandb) settles it.
    for log in sorted(path.glob("run-*.wandb")) if path.is_dir() else []:
        log_match = LOG_FILE.match(log.name)
        if log_match is None:
            continue
        run_id = log_match.group("id")
        tail = rest[len(run_id) + 1 :]
        if rest == run_id:
            return match.group("time"), [(run_id, 0)]
        if rest.startswith(run_id + "-") and tail:
            # "-<n>": wandb's own suffix; any other tail: a writer's label (x_sync_dir_suffix).
            return match.group("time"), [(run_id, int(tail) if tail.isdigit() else 0)]
    # No log yet (the service creates it just after the directory): keep both readings.
    readings = [(rest, 0)]
    head, _, tail = rest.rpartition("-")
    if head and tail.isdigit():
        readings.append((head, int(tail)))
    return match.group("time"), readings


def log_file(path: Path) -> Path:
    """The transaction log of a run directory (``path`` itself when it is a file).

    Raises:
        FileNotFoundError: no such directory, or no ``run-*.wandb`` file in it.

    Example:
        >>> log_file(Path("/nonexistent"))
        Traceback (most recent call last):
        ...
        FileNotFoundError: no wandb run directory at /nonexistent
    """
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no wandb run directory at {path}")
    logs = sorted(path.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"no run-*.wandb transaction log in {path}")
    parsed = parse_run_dir(path)
    if parsed is not None:
        for log in logs:
            if log.name == f"run-{parsed[1][0][0]}.wandb":
                return log
    return logs[0]


def scan(data: bytes, source: Path) -> tuple[list[bytes], bool, int]:
    """Split a log's bytes into record payloads; whether it ended in an incomplete chunk; where
    reading stopped (the end of the last complete record).

    Raises:
        OfflineRunFormatError: not a wandb transaction log, or a version this reader does not know.

    Example:
        >>> scan(b"", Path("run-x.wandb"))
        ([], True, 0)
    """
    if len(data) < FILE_HEADER.size:
        # Created but not yet written to: the header comes with the first flush.
        return [], True, 0
    ident, magic, version = FILE_HEADER.unpack_from(data)
    if ident != _IDENT or magic != _MAGIC:
        raise OfflineRunFormatError(f"{source} is not a wandb transaction log")
    if version != _VERSION:
        raise OfflineRunFormatError(f"{source}: unsupported transaction log version {version}")
    records, ending, stop = frames(data, 0, FILE_HEADER.size)
    if ending == DAMAGED:
        _log_stop(source, stop, len(data))
    if ending == ENDED:
        return [payload for payload, _ in records], False, len(data)
    return [payload for payload, _ in records], True, records[-1][1] if records else FILE_HEADER.size


# How frames stopped: every byte read; at a chunk or record the writer has not finished (yet);
# at a chunk that fails its checks (zeroes, a length past its block, a checksum).
ENDED, UNFINISHED, DAMAGED = 0, 1, 2


def frames(data: bytes, offset: int, first: int = 0) -> tuple[list[tuple[bytes, int]], int, int]:
    """The complete records in ``data`` from index ``first`` (a record boundary, or a block
    boundary: the rest of a record that started before it is skipped), each with the log position
    just after it; how reading stopped (``ENDED``, ``UNFINISHED``, ``DAMAGED``); and where.

    ``data[0]`` is at position ``offset`` of the log: blocks are counted from the log's start.
    The one reading of the log's framing: the offline reader, the report's reader (which reads a
    growing log piece by piece) and the check for the exit record at the log's end use it.
    """
    out: list[tuple[bytes, int]] = []
    pending: bytearray | None = None
    pos = first
    end = len(data)
    header = _CHUNK_HEADER.size
    while True:
        block_left = BLOCK - (offset + pos) % BLOCK
        if block_left < header:
            pos += block_left
            continue
        if pos >= end:
            return out, ENDED if pending is None else UNFINISHED, offset + pos
        if pos + header > end:
            return out, UNFINISHED, offset + pos
        checksum, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        chunk_end = pos + header + length
        if kind not in _CRC_SEED or chunk_end > end or length > block_left - header:
            return out, DAMAGED, offset + pos
        payload = data[pos + header : chunk_end]
        if zlib.crc32(payload, _CRC_SEED[kind]) != checksum:
            return out, DAMAGED, offset + pos
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


def _log_stop(source: Path, pos: int, end: int) -> None:
    logger.debug("%s: stopped reading at byte %d of %d (incomplete or damaged chunk)", source, pos, end)
