"""Read back what wandb wrote to disk for a run, without a W&B server.

wandb records each run as an append-only transaction log, ``run-<id>.wandb``, in the run's
directory (``<dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>``, or ``run-...`` for online runs; a
``-<n>`` suffix is added when the same id starts twice in one second). The log holds every
record the SDK sent to its service: the run (identity, config), config changes, one history
record per step, summary updates, saved files, the exit code. wandb itself only reads these
files from its Go service, so this module decodes the log's framing here and the records with
wandb's own protobuf classes, through :mod:`~flyteplugins.wandb._compat`: the record schemas of
the supported wandb releases differ (a field one writes, another's classes may not know), so
unknown fields are ignored and missing ones read as unset.

Used by the tests (to assert what W&B really recorded), by the demo, and to inspect a local
offline run directory. wandb is imported only when a log is decoded.

Example:
    >>> from flyteplugins.wandb._offline import find_offline_run_dirs
    >>> find_offline_run_dirs("/nonexistent")
    []
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._compat import parse_record, record_field, record_kind, record_time
from ._log_format import LOG_FILE, OfflineRunFormatError, log_file, parse_run_dir, scan

__all__ = [
    "OfflineArtifact",
    "OfflineRun",
    "OfflineRunFormatError",
    "RunBuilder",
    "find_offline_run_dirs",
    "iter_records",
    "read_offline_run",
    "read_offline_runs",
]

logger = logging.getLogger("flyteplugins.wandb")

_LABEL_SUFFIX = "/l:"
_OUTPUT_FILE = re.compile(r"^output_(?P<label>.+)\.log$")
# wandb's own bookkeeping inside config and summary, not something the user set.
_INTERNAL_KEY = "_wandb"
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class OfflineArtifact:
    """An artifact the run logged (``run.log_artifact``), as its log recorded it.

    ``references`` holds one ``(path, ref, digest, size)`` per manifest entry; ``ref`` is the
    referenced URI (empty for a file stored in the artifact itself).

    Example:
        >>> from flyteplugins.wandb import OfflineArtifact
        >>> refs = (("m", "s3://b/m", "s3://b/m", 0),)
        >>> OfflineArtifact("m-1", "flyte-file", "d", ("latest",), {}, refs).uris
        ['s3://b/m']
    """

    name: str
    type: str
    digest: str
    aliases: tuple[str, ...]
    metadata: dict[str, Any]
    references: tuple[tuple[str, str, str, int], ...]

    @property
    def uris(self) -> list[str]:
        """The URIs the artifact references."""
        return [ref for _, ref, _, _ in self.references if ref]


@dataclass(frozen=True)
class OfflineRun:
    """What one run directory's transaction log recorded.

    Attributes:
        path: the run directory.
        run_id: the W&B run id.
        project, entity, name, group, job_type, notes: as given to ``wandb.init`` or set later
            on the run (``None`` when never set; offline runs record no default entity).
        tags: the run's tags.
        config: the final config, plain values, without wandb's internal ``_wandb`` entry.
        history: one dict per logged step, in order, with wandb's ``_step``, ``_runtime`` and
            ``_timestamp`` next to the logged keys; nested dicts are rebuilt as logged.
        summary: the final summary, including ``_step``, ``_runtime``, ``_timestamp``.
        exit_code: the code given to ``run.finish`` (0 by default), ``None`` when the log has no
            exit record: the run is still running, or its process died without finishing it.
        preempting: the run was marked as preempting (``run.mark_preempting()``), as the plugin
            does when a signal ends the task.
        resumed: the run was started with a ``resume`` setting for an existing id (offline wandb
            cannot know whether the id existed, so a resumed run is a second directory). Recorded
            by wandb 0.30 and later; ``False`` for logs of older releases.
        label: the writer's ``x_label`` (shared mode / distributed writers), when recorded: wandb
            suffixes system-metric keys with ``/l:<label>`` and names console logs
            ``output_<label>.log``.
        primary: for a labelled writer, whether it was the ``x_primary`` writer; only primary
            writers record the machine's environment. ``None`` for unlabelled runs.
        shared_mode: the run was started with ``mode="shared"``.
        files: file names (relative, ``/``-separated, sorted) present in the run's ``files/``
            directory, e.g. ``requirements.txt``, ``output.log``.
        file_records: the files wandb registered for upload, in order of registration.
        start_time: the run's start, seconds since the epoch.
        host: the host name recorded for the run.
        artifacts: the artifacts the run logged, in order.
        used_artifacts: the artifacts the log records as used by the run, in order: online,
            ``run.use_artifact(draft)`` writes an artifact record marked ``use_after_commit``
            (W&B resolves it to the version of that digest), and ``run.use_artifact(name)`` a
            use record (name and type only). Offline runs record no use (wandb refuses it).
        truncated: the log ends in an incomplete or unreadable chunk, as when it is still being
            written or its writer was killed; everything before it was read.
        offline: the directory is an offline run's (``offline-run-...``); ``run-...`` directories
            are online runs', including an online start that failed because the server could not
            be reached (its log holds the run record and an exit record, no history).
        step_metrics: the x axis declared for a metric with ``run.define_metric(name,
            step_metric=...)``, by metric name (or glob, such as ``train/*``).
        metric_goals: ``minimize`` or ``maximize`` for a metric declared with a direction:
            ``run.define_metric(name, summary="min")`` (or ``"max"``), or ``goal=`` in wandb
            releases that had it.
        bytes_read, log_size: how far into the transaction log reading got, and the log's size:
            equal unless ``truncated``.

    Example:
        >>> from pathlib import Path
        >>> from flyteplugins.wandb import OfflineRun
        >>> run = OfflineRun(path=Path("."), run_id="abc", history=[{"loss": 1.0}, {"acc": 0.5}])
        >>> run.column("loss"), run.finished
        ([1.0], False)
    """

    path: Path
    run_id: str
    project: str | None = None
    entity: str | None = None
    name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    preempting: bool = False
    resumed: bool = False
    label: str | None = None
    primary: bool | None = None
    shared_mode: bool = False
    files: list[str] = field(default_factory=list)
    file_records: list[str] = field(default_factory=list)
    start_time: float | None = None
    host: str | None = None
    truncated: bool = False
    offline: bool = True
    artifacts: list[OfflineArtifact] = field(default_factory=list)
    step_metrics: dict[str, str] = field(default_factory=dict)
    metric_goals: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0
    log_size: int = 0
    used_artifacts: list[OfflineArtifact] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the run was finished (its log has an exit record).

        Example:
            >>> from pathlib import Path
            >>> OfflineRun(path=Path("."), run_id="abc", exit_code=1).finished
            True
        """
        return self.exit_code is not None

    def column(self, key: str) -> list[Any]:
        """The values logged under ``key``, one per step that has it, in order.

        Example:
            >>> from pathlib import Path
            >>> OfflineRun(path=Path("."), run_id="a", history=[{"x": 1}, {"y": 2}, {"x": 3}]).column("x")
            [1, 3]
        """
        return [row[key] for row in self.history if key in row]


def find_offline_run_dirs(root: str | os.PathLike[str], run_id: str | None = None) -> list[Path]:
    """The run directories under ``root``, oldest first.

    ``root`` is a wandb directory (``<WANDB_DIR>/wandb``), the directory holding it (the
    ``dir`` given to ``wandb.init``), or one run directory. Offline (``offline-run-...``) and
    online (``run-...``) run directories are both returned; with ``run_id``, only that run's,
    which can be several: a resumed run, or several writers to one run, each write their own.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("offline-run-20250101_120000-abc", "offline-run-20250101_120000-abc-1",
        ...              "run-20240101_000000-xyz", "latest-run"):
        ...     (root / "wandb" / name).mkdir(parents=True)
        >>> [p.name for p in find_offline_run_dirs(root)]
        ['run-20240101_000000-xyz', 'offline-run-20250101_120000-abc', 'offline-run-20250101_120000-abc-1']
        >>> [p.name for p in find_offline_run_dirs(root / "wandb", run_id="xyz")]
        ['run-20240101_000000-xyz']
    """
    base = Path(root)
    if parse_run_dir(base) is not None:
        candidates = [base]
    else:
        candidates = []
        seen: set[Path] = set()
        for parent in (base, base / "wandb", base / ".wandb"):
            if not parent.is_dir():
                continue
            resolved = parent.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            candidates.extend(
                child for child in parent.iterdir() if child.is_dir() and not child.is_symlink()
            )
    found: list[tuple[tuple[str, int, str], Path]] = []
    for path in candidates:
        parsed = parse_run_dir(path)
        if parsed is None:
            continue
        timespec, readings = parsed
        if run_id is not None:
            readings = [reading for reading in readings if reading[0] == run_id]
            if not readings:
                continue
        found.append(((timespec, readings[0][1], path.name), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def read_offline_run(run_dir: str | os.PathLike[str], wait: float = 0.0) -> OfflineRun:
    """Read one run directory (or its ``run-<id>.wandb`` file) into an :class:`OfflineRun`.

    Safe on a log that is still being written: what has been flushed is read and
    ``truncated`` tells whether the log ended mid-record. wandb's service buffers the log
    (flushing every ``x_transaction_log_flush_interval``, 15 s by default) and writes its end
    only after ``run.finish()`` has returned, when it closes the run; ``wait`` is how many
    seconds to keep re-reading until the log holds the run's exit record.

    Raises:
        FileNotFoundError: the directory holds no ``run-*.wandb`` file.
        OfflineRunFormatError: the file is not a wandb transaction log.

    Example:
        >>> import wandb  # doctest: +SKIP
        >>> run = wandb.init(mode="offline", dir="/tmp/demo", config={"lr": 0.1})  # doctest: +SKIP
        >>> run.log({"loss": 0.5}); run.finish()  # doctest: +SKIP
        >>> (run_dir,) = find_offline_run_dirs("/tmp/demo", run.id)  # doctest: +SKIP
        >>> recorded = read_offline_run(run_dir, wait=10)  # doctest: +SKIP
        >>> recorded.config, recorded.column("loss"), recorded.exit_code  # doctest: +SKIP
        ({'lr': 0.1}, [0.5], 0)
    """
    deadline = time.monotonic() + wait
    while True:
        run = _read_once(Path(run_dir))
        if run.finished or time.monotonic() >= deadline:
            return run
        time.sleep(_POLL_SECONDS)


def read_offline_runs(root: str | os.PathLike[str], run_id: str, wait: float = 0.0) -> list[OfflineRun]:
    """Every run directory under ``root`` that wrote to ``run_id``, read, oldest first.

    A run resumed offline, and each writer of a run shared between processes, writes its own
    directory with its own history (its steps start again at 0 offline); W&B merges them when
    they are synced. The first entry is the run's start, ``[-1].exit_code`` the last exit.
    ``wait`` is as for :func:`read_offline_run`, shared by all the directories.

    Example:
        >>> read_offline_runs("/nonexistent", "abc")
        []
    """
    deadline = time.monotonic() + wait
    return [
        read_offline_run(path, wait=max(0.0, deadline - time.monotonic()))
        for path in find_offline_run_dirs(root, run_id)
    ]


def _read_once(path: Path) -> OfflineRun:
    log = log_file(path)
    match = LOG_FILE.match(log.name)
    builder = RunBuilder(log.parent, match.group("id") if match else log.stem)
    records, truncated, bytes_read, log_size = _decode(log)
    for record in records:
        builder.apply(record)
    run = builder.build(truncated)
    return dataclasses.replace(run, bytes_read=bytes_read, log_size=log_size)


def iter_records(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The raw protobuf records (``wandb.proto.wandb_internal_pb2.Record``) of a run's log.

    ``path`` is a run directory or its ``.wandb`` file. Stops quietly at an incomplete tail.

    Example:
        >>> kinds = [r.WhichOneof("record_type") for r in iter_records(run_dir)]  # doctest: +SKIP
        >>> kinds[:2]  # doctest: +SKIP
        ['header', 'run']
    """
    records, *_ = _decode(log_file(Path(path)))
    yield from records


def _decode(log: Path) -> tuple[list[Any], bool, int, int]:
    """The log's records, whether it ended in an incomplete chunk, the bytes read, its size."""
    data = log.read_bytes()
    payloads, truncated, stop = scan(data, log)
    return [parse_record(payload) for payload in payloads], truncated, stop, len(data)


def _decode_json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _item_path(item: Any) -> Sequence[str]:
    nested: Sequence[str] = record_field(item, "nested_key", ())
    return list(nested) if len(nested) else [record_field(item, "key", "")]


def _set_path(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _remove_path(target: dict[str, Any], path: Sequence[str]) -> None:
    node: Any = target
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _shared_mode_feature(telemetry: Any) -> bool:
    return bool(record_field(record_field(telemetry, "feature"), "shared_mode", False))


def _metric_goal(metric: Any) -> str | None:
    """The direction a ``define_metric`` record gives its metric: its goal, else a lone min or max summary."""
    goal = record_field(metric, "goal", 0)
    if goal == 1:
        return "minimize"
    if goal == 2:
        return "maximize"
    summary = record_field(metric, "summary")
    if summary is None:
        return None
    low, high = bool(record_field(summary, "min", False)), bool(record_field(summary, "max", False))
    if low != high:
        return "minimize" if low else "maximize"
    return None


def _apply_items(target: dict[str, Any], message: Any) -> None:
    """Apply a config or summary message's ``update`` and ``remove`` items to ``target``."""
    for item in record_field(message, "update", ()):
        _set_path(target, _item_path(item), _decode_json(record_field(item, "value_json", "")))
    for item in record_field(message, "remove", ()):
        _remove_path(target, _item_path(item))


def _or_none(text: str | None) -> str | None:
    return text or None


def _text(message: Any, name: str) -> str | None:
    return _or_none(record_field(message, name, ""))


class RunBuilder:
    """Folds a log's records, in order, into the run's final state.

    Every field is read through :func:`~flyteplugins.wandb._compat.record_field`: the logs of the
    supported wandb releases differ in their schemas (a field one release writes, another's
    classes may not know), and what is missing reads as unset. The offline reader folds every
    record with it; the report's history reader folds every record but the history rows.

    Example:
        >>> RunBuilder(Path("wandb/offline-run-20250101_120000-abc"), "abc").build(False).run_id
        'abc'
    """

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self.identity: dict[str, str | None] = {}
        self.tags: tuple[str, ...] = ()
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.preempting = False
        self.resumed = False
        self.stats_label: str | None = None
        self.has_environment = False
        self.shared_mode = False
        self.file_records: list[str] = []
        self.start_time: float | None = None
        self.host: str | None = None
        self.artifacts: list[OfflineArtifact] = []
        self.used_artifacts: list[OfflineArtifact] = []
        self.step_metrics: dict[str, str] = {}
        self.metric_goals: dict[str, str] = {}

    def apply(self, record: Any) -> None:
        kind = record_kind(record)
        body = record_field(record, kind) if kind else None
        if kind == "run":
            self._run(body)
        elif kind == "config":
            _apply_items(self.config, body)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record_field(body, "item", ()):
                _set_path(row, _item_path(item), _decode_json(record_field(item, "value_json", "")))
            self.history.append(row)
        elif kind == "summary":
            _apply_items(self.summary, body)
        elif kind == "exit":
            self.exit_code = int(record_field(body, "exit_code", 0))
        elif kind == "preempting":
            self.preempting = True
        elif kind == "files":
            for item in record_field(body, "files", ()):
                path = record_field(item, "path", "")
                if path and path not in self.file_records:
                    self.file_records.append(path)
        elif kind == "stats" and self.stats_label is None:
            for item in record_field(body, "item", ()):
                _, marker, label = str(record_field(item, "key", "")).rpartition(_LABEL_SUFFIX)
                if marker and label:
                    self.stats_label = label
                    break
        elif kind == "environment":
            self.has_environment = True
        elif kind == "telemetry":
            self.shared_mode = self.shared_mode or _shared_mode_feature(body)
        elif kind == "artifact":
            metadata = record_field(body, "metadata", "")
            manifest = record_field(body, "manifest")
            # An online run.use_artifact(draft) logs the draft marked to be used once committed.
            used = bool(record_field(body, "use_after_commit", False))
            (self.used_artifacts if used else self.artifacts).append(
                OfflineArtifact(
                    name=record_field(body, "name", ""),
                    type=record_field(body, "type", ""),
                    digest=record_field(body, "digest", ""),
                    aliases=tuple(record_field(body, "aliases", ())),
                    metadata=json.loads(metadata) if metadata else {},
                    references=tuple(
                        (
                            record_field(entry, "path", ""),
                            record_field(entry, "ref", ""),
                            record_field(entry, "digest", ""),
                            int(record_field(entry, "size", 0)),
                        )
                        for entry in record_field(manifest, "contents", ())
                    ),
                )
            )
        elif kind == "use_artifact":
            self.used_artifacts.append(
                OfflineArtifact(
                    name=record_field(body, "name", ""),
                    type=record_field(body, "type", ""),
                    digest="",
                    aliases=(),
                    metadata={},
                    references=(),
                )
            )
        elif kind == "metric":
            name = record_field(body, "name", "") or record_field(body, "glob_name", "")
            step_metric = record_field(body, "step_metric", "")
            if name and step_metric:
                self.step_metrics[name] = step_metric
            goal = _metric_goal(body)
            if name and goal:
                self.metric_goals[name] = goal

    def _run(self, run: Any) -> None:
        # Every run record is a full snapshot (wandb re-sends the run when its name, tags or
        # notes change), so identity fields are replaced, not merged.
        self.run_id = _text(run, "run_id") or self.run_id
        self.identity = {
            "project": _text(run, "project"),
            "entity": _text(run, "entity"),
            "name": _text(run, "display_name"),
            "group": _text(run, "run_group"),
            "job_type": _text(run, "job_type"),
            "notes": _text(run, "notes"),
        }
        self.tags = tuple(record_field(run, "tags", ()))
        self.host = _text(run, "host") or self.host
        start_time = record_time(run, "start_time")
        if start_time is not None:
            self.start_time = start_time
        self.resumed = (
            self.resumed or bool(record_field(run, "resume", "")) or bool(record_field(run, "resumed", False))
        )
        self.shared_mode = self.shared_mode or _shared_mode_feature(record_field(run, "telemetry"))
        _apply_items(self.config, record_field(run, "config"))
        _apply_items(self.summary, record_field(run, "summary"))

    def _files_on_disk(self) -> list[str]:
        files_dir = self.directory / "files"
        if not files_dir.is_dir():
            return []
        return sorted(p.relative_to(files_dir).as_posix() for p in files_dir.rglob("*") if p.is_file())

    def build(self, truncated: bool) -> OfflineRun:
        files = self._files_on_disk()
        label = self.stats_label
        if label is None:
            for name in files:
                match = _OUTPUT_FILE.match(name)
                if match is not None:
                    label = match.group("label")
                    break
        config = {k: v for k, v in self.config.items() if k != _INTERNAL_KEY}
        summary = {k: v for k, v in self.summary.items() if k != _INTERNAL_KEY}
        return OfflineRun(
            path=self.directory,
            run_id=self.run_id,
            project=self.identity.get("project"),
            entity=self.identity.get("entity"),
            name=self.identity.get("name"),
            group=self.identity.get("group"),
            job_type=self.identity.get("job_type"),
            tags=self.tags,
            notes=self.identity.get("notes"),
            config=config,
            history=self.history,
            summary=summary,
            exit_code=self.exit_code,
            preempting=self.preempting,
            resumed=self.resumed,
            label=label,
            primary=None if label is None else self.has_environment,
            shared_mode=self.shared_mode,
            files=files,
            file_records=self.file_records,
            start_time=self.start_time,
            host=self.host,
            truncated=truncated,
            offline=not self.directory.name.startswith("run-"),
            artifacts=self.artifacts,
            step_metrics=self.step_metrics,
            metric_goals=self.metric_goals,
            used_artifacts=self.used_artifacts,
        )
