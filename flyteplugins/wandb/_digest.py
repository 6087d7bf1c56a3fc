"""A run's digest: what comparing runs needs of one W&B run, small enough to travel.

A parent task that fans out compares its children's runs. On a cluster every child runs in a
container of its own, so the parent cannot read the children's run folders: each child writes a
:class:`RunDigest` of its run (identity, Flyte task and inputs, state, config, summary, and each
numeric metric downsampled to a few hundred points with its extremes kept) where the parent can
find it. ``flyte wandb report RUN RUN ...`` builds the same digests from local run folders. The
comparison page is drawn from digests only, so it looks the same either way.

A digest is plain data with a versioned JSON form (:meth:`RunDigest.to_json`,
:meth:`RunDigest.from_json`); NaN and infinite summary values are kept as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (JSON has no such numbers).

Example:
    >>> from pathlib import Path
    >>> from flyteplugins.wandb._history import Column, RunHistory
    >>> from flyteplugins.wandb._offline import OfflineRun
    >>> run = OfflineRun(path=Path("."), run_id="r1", name="lr-0.1", exit_code=0,
    ...                  config={"flyte": {"task": "env.train", "action": "a1", "inputs": {"lr": 0.1}}})
    >>> history = RunHistory(run, {"loss": Column([0, 1, 2], [0.9, 0.5, 0.25])}, rows=3)
    >>> digest = digest_history(history)
    >>> digest.task, digest.inputs, digest.state, digest.final("loss")
    ('env.train', {'lr': 0.1}, 'finished', 0.25)
    >>> RunDigest.from_json(digest.to_json()) == digest
    True
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._history import RunHistory

__all__ = [
    "DIGEST_FORMAT",
    "DigestFormatError",
    "RunDigest",
    "RunState",
    "SeriesDigest",
    "digest_history",
    "digest_run",
    "run_state",
]

#: The version of the JSON form; a reader refuses a digest of a newer format.
DIGEST_FORMAT = 1
#: Metrics kept per run, and points kept per metric (a min/max envelope: extremes survive).
MAX_SERIES = 48
POINTS_PER_SERIES = 200

RunState = Literal["finished", "failed", "preempted", "running", "unknown"]


class DigestFormatError(ValueError):
    """A digest's JSON text is not a digest this version can read.

    Example:
        >>> try:
        ...     RunDigest.from_json("[]")
        ... except DigestFormatError as error:
        ...     print(error)
        not a run digest: expected a JSON object with "format" and "run_id"
    """


@dataclass(frozen=True)
class SeriesDigest:
    """One numeric metric of a run, downsampled.

    Attributes:
        key: the logged key (nested keys joined with ``.``).
        x_label: ``_step``, or the step metric declared with ``define_metric``.
        xs, ys: the kept points, in x order (first and last point and every extreme kept).
        last: the last finite value logged (in logging order), ``None`` when there is none.
        logged: finite numeric values logged; ``skipped``: values not drawn (non-numeric, NaN,
            infinite, or without an x value).

    Example:
        >>> SeriesDigest("loss", "_step", (0.0, 1.0), (1.0, 0.5), last=0.5, logged=2).points
        2
    """

    key: str
    x_label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    last: float | None = None
    logged: int = 0
    skipped: int = 0

    @property
    def points(self) -> int:
        """How many points are kept."""
        return len(self.xs)


@dataclass(frozen=True)
class RunDigest:
    """What a comparison shows of one run.

    Attributes:
        run_id, name, url: the run's id, display name, and W&B page (http/https, or ``None``).
        project, entity, group, job_type: as the run recorded them.
        parent_run_id: the W&B run of the task that started this run's task (a fan-out's parent),
            from ``config["flyte"]["parent_run"]``; ``None`` when not recorded.
        task, action: the Flyte task and action that own the run (``config["flyte"]``).
        inputs: the task's inputs as the plugin recorded them (``config["flyte"]["inputs"]``).
        state: ``finished`` (exit code 0), ``failed`` (another exit code), ``preempted`` (marked
            preempting), ``running`` (no exit record yet) or ``unknown``.
        exit_code: the run's exit code, ``None`` without an exit record.
        config: the run's config without the plugin's ``flyte`` entries (plain JSON values).
        summary: the run's final summary without wandb's ``_`` keys (plain JSON values).
        series: the numeric metrics, at most :data:`MAX_SERIES`, sorted by key.
        notes: what was left out or could not be read while making the digest.
        goals: ``minimize`` or ``maximize`` by metric, for the metrics the run declared a direction
            for (``define_metric(name, summary="min")``); what a comparison ranks runs by first.

    Example:
        >>> RunDigest("r1", summary={"acc": 0.9}).final("acc")
        0.9
    """

    run_id: str
    name: str | None = None
    url: str | None = None
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    job_type: str | None = None
    parent_run_id: str | None = None
    task: str | None = None
    action: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    state: RunState = "unknown"
    exit_code: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    series: tuple[SeriesDigest, ...] = ()
    notes: tuple[str, ...] = ()
    goals: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the run is named on a page: its display name, else its id.

        Example:
            >>> RunDigest("r1").label, RunDigest("r1", name="lr-0.1").label
            ('r1', 'lr-0.1')
        """
        return self.name or self.run_id

    def series_of(self, key: str) -> SeriesDigest | None:
        """The metric ``key``'s series, or ``None``.

        Example:
            >>> RunDigest("r1").series_of("loss") is None
            True
        """
        for series in self.series:
            if series.key == key:
                return series
        return None

    def final(self, key: str) -> float | None:
        """The metric's final value: the summary's when it is a finite number, else the last logged.

        Example:
            >>> RunDigest("r1", summary={"loss": float("nan")}).final("loss") is None
            True
        """
        value = _finite(self.summary.get(key))
        if value is not None:
            return value
        series = self.series_of(key)
        return series.last if series is not None else None

    def to_json(self) -> str:
        """The digest as compact JSON text (see the module's docstring).

        Example:
            >>> json.loads(RunDigest("r1").to_json())["run_id"]
            'r1'
        """
        data: dict[str, Any] = {
            "format": DIGEST_FORMAT,
            "run_id": self.run_id,
            "name": self.name,
            "url": self.url,
            "project": self.project,
            "entity": self.entity,
            "group": self.group,
            "job_type": self.job_type,
            "parent_run_id": self.parent_run_id,
            "task": self.task,
            "action": self.action,
            "inputs": _plain(self.inputs),
            "state": self.state,
            "exit_code": self.exit_code,
            "config": _plain(self.config),
            "summary": _plain(self.summary),
            "series": [
                {
                    "key": s.key,
                    "x": s.x_label,
                    "xs": list(s.xs),
                    "ys": list(s.ys),
                    "last": s.last,
                    "logged": s.logged,
                    "skipped": s.skipped,
                }
                for s in self.series
            ],
            "notes": list(self.notes),
            "goals": dict(self.goals),
        }
        return json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunDigest:
        """Read a digest written by :meth:`to_json`.

        Raises:
            DigestFormatError: not JSON, not a digest, a newer format, or a malformed field.

        Example:
            >>> RunDigest.from_json('{"format": 1, "run_id": "r1"}').run_id
            'r1'
        """
        try:
            data = json.loads(text)
        except ValueError as error:
            raise DigestFormatError(f"not a run digest: not JSON ({error})") from None
        if not isinstance(data, dict) or "format" not in data or not isinstance(data.get("run_id"), str):
            raise DigestFormatError('not a run digest: expected a JSON object with "format" and "run_id"')
        if not isinstance(data["format"], int) or data["format"] > DIGEST_FORMAT:
            raise DigestFormatError(
                f"run digest format {data['format']!r} is newer than this plugin reads ({DIGEST_FORMAT}): "
                "upgrade flyteplugins-wandb where the page is made"
            )
        try:
            series = tuple(
                SeriesDigest(
                    key=str(s["key"]),
                    x_label=str(s.get("x", "_step")),
                    xs=tuple(float(x) for x in s["xs"]),
                    ys=tuple(float(y) for y in s["ys"]),
                    last=None if s.get("last") is None else float(s["last"]),
                    logged=int(s.get("logged", 0)),
                    skipped=int(s.get("skipped", 0)),
                )
                for s in data.get("series") or ()
            )
            state = data.get("state", "unknown")
            return cls(
                run_id=data["run_id"],
                name=_opt_str(data.get("name")),
                url=_opt_str(data.get("url")),
                project=_opt_str(data.get("project")),
                entity=_opt_str(data.get("entity")),
                group=_opt_str(data.get("group")),
                job_type=_opt_str(data.get("job_type")),
                parent_run_id=_opt_str(data.get("parent_run_id")),
                task=_opt_str(data.get("task")),
                action=_opt_str(data.get("action")),
                inputs=dict(data.get("inputs") or {}),
                state=state if state in ("finished", "failed", "preempted", "running") else "unknown",
                exit_code=None if data.get("exit_code") is None else int(data["exit_code"]),
                config=dict(data.get("config") or {}),
                summary=dict(data.get("summary") or {}),
                series=series,
                notes=tuple(str(n) for n in data.get("notes") or ()),
                goals={
                    str(k): str(v)
                    for k, v in dict(data.get("goals") or {}).items()
                    if v in ("minimize", "maximize")
                },
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DigestFormatError(f"malformed run digest for run {data['run_id']!r}: {error!r}") from None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats as strings, other objects as their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def run_state(exit_code: int | None, preempting: bool) -> RunState:
    """A run's state from its log: its exit code and whether it was marked preempting.

    Example:
        >>> run_state(0, False), run_state(1, False), run_state(143, True), run_state(None, False)
        ('finished', 'failed', 'preempted', 'running')
    """
    if preempting:
        return "preempted"
    if exit_code is None:
        return "running"
    return "finished" if exit_code == 0 else "failed"


def _last_finite(values: list[Any]) -> float | None:
    for value in reversed(values):
        number = _finite(value)
        if number is not None:
            return number
    return None


def digest_history(
    history: RunHistory,
    *,
    url: str | None = None,
    max_series: int = MAX_SERIES,
    points: int = POINTS_PER_SERIES,
) -> RunDigest:
    """The digest of a run read with :func:`~flyteplugins.wandb._history.read_history`. Pure.

    Example:
        >>> from pathlib import Path
        >>> from flyteplugins.wandb._history import Column, RunHistory
        >>> from flyteplugins.wandb._offline import OfflineRun
        >>> run = OfflineRun(path=Path("."), run_id="r1")
        >>> cols = {"acc": Column(list(range(1000)), [i / 1000 for i in range(1000)])}
        >>> digest = digest_history(RunHistory(run, cols, rows=1000), points=50)
        >>> s = digest.series[0]
        >>> s.points <= 50, s.ys[0], s.ys[-1], s.last, s.logged
        (True, 0.0, 0.999, 0.999, 1000)
    """
    from ._chart_model import ChartPlanner

    run = history.run
    model = ChartPlanner().plan(
        history.columns,
        history.steps(),
        run.step_metrics,
        max_charts=max_series,
        point_budget=points * max(1, min(max_series, len(history.columns))),
    )
    series: list[SeriesDigest] = []
    for chart in sorted(model.charts, key=lambda c: c.key):
        xs, ys = chart.xs, chart.ys
        if len(xs) > points:
            from ._chart_model import envelope

            xs, ys = envelope(xs, ys, max(1, points // 2 - 1))
        column = history.columns.get(chart.key)
        series.append(
            SeriesDigest(
                key=chart.key,
                x_label=chart.x_label,
                xs=tuple(xs),
                ys=tuple(ys),
                last=_last_finite(column.values) if column is not None else None,
                logged=chart.logged,
                skipped=chart.skipped,
            )
        )
    notes: list[str] = []
    if model.left_out:
        notes.append(f"{len(model.left_out)} metrics left out (at most {max_series} per run)")
    if run.truncated:
        notes.append(f"the log could be read only up to byte {run.bytes_read} of {run.log_size}")
    config = {k: v for k, v in run.config.items() if k != "flyte" and not k.startswith("flyte/")}
    entry = run.config.get("flyte")
    flyte: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
    inputs = flyte.get("inputs")
    parent = flyte.get("parent_run")
    return RunDigest(
        run_id=run.run_id,
        name=run.name,
        url=url,
        project=run.project,
        entity=run.entity,
        group=run.group,
        job_type=run.job_type,
        parent_run_id=str(parent) if parent is not None else None,
        task=_opt_str(flyte.get("task")),
        action=_opt_str(flyte.get("action")),
        inputs=dict(inputs) if isinstance(inputs, Mapping) else {},
        state=run_state(run.exit_code, run.preempting),
        exit_code=run.exit_code,
        config=_plain(config),
        summary=_plain({k: v for k, v in run.summary.items() if not str(k).startswith("_")}),
        series=tuple(series),
        notes=tuple(notes),
        goals=dict(run.metric_goals),
    )


def digest_run(run_dir: str | os.PathLike[str], *, url: str | None = None) -> RunDigest:
    """The digest of one local run folder (online or offline); safe on a damaged log.

    Raises:
        FileNotFoundError: the folder holds no ``run-*.wandb`` file.
        OfflineRunFormatError: the file is not a wandb transaction log.

    Example:
        >>> digest_run("wandb/latest-run").state  # doctest: +SKIP
        'finished'
    """
    from ._history import read_history

    return digest_history(read_history(run_dir), url=url)
