"""Pure: which charts a run's report shows, and the points each one draws.

From the logged columns (:class:`~flyteplugins.wandb._history.Column`) to a :class:`ChartModel`:
one line chart per numeric metric, grouped into sections by the part of its name before the
first ``/`` (as W&B's workspace groups panels), with ``_step`` on the x axis or the step metric
declared with ``run.define_metric(name, step_metric=...)``. Non-numeric, NaN and infinite values
are skipped and counted; keys wandb adds itself (``_step``, ``_runtime``, ...) are not charted.

Long series are reduced with a min/max envelope: the x range is cut into buckets of equal
numbers of points and each bucket keeps its lowest and highest point (in x order), and the
series keeps its first and last point. Every extreme of the series survives, so a spike is
never smoothed away, and the drawn line stays within the logged values.

Example:
    >>> from flyteplugins.wandb._history import Column
    >>> model = plan_charts({"train/loss": Column([0, 1, 2], [3.0, float("nan"), 1.0])}, steps=[0, 1, 2])
    >>> [(c.key, c.xs, c.ys, c.skipped) for c in model.charts]
    [('train/loss', [0.0, 2.0], [3.0, 1.0], 1)]
    >>> model.charts[0].section
    'train'
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._history import Column

__all__ = [
    "DEFAULT_MAX_CHARTS",
    "DEFAULT_POINT_BUDGET",
    "Chart",
    "ChartModel",
    "envelope",
    "plan_charts",
    "section_of",
]

# The page stays well under 1 MB: about 40 bytes of SVG path per drawn point. A chart's plot area
# is about 370 pixels wide: a minimum and a maximum for every other pixel column draws the same
# line as more points would, and drawing costs time per point.
DEFAULT_POINT_BUDGET = 16_000
DEFAULT_MAX_CHARTS = 48
_MAX_POINTS_PER_CHART = 500
_MIN_POINTS_PER_CHART = 100
# The section W&B puts metrics without a "/" prefix in.
UNGROUPED = "Charts"


@dataclass(frozen=True)
class Chart:
    """One metric's line: its points as drawn, and what was left out.

    Attributes:
        key: the logged key.
        section: the section it is shown in (the key's prefix before the first ``/``).
        x_label: ``_step`` or the declared step metric.
        xs, ys: the drawn points (after the envelope), in x order.
        logged: how many numeric, finite values were logged (before the envelope).
        skipped: values that were not drawn: non-numeric, NaN, infinite, or without an x value.

    Example:
        >>> Chart("loss", "Charts", "_step", [0.0], [1.0], logged=1, skipped=0).downsampled
        False
    """

    key: str
    section: str
    x_label: str
    xs: list[float]
    ys: list[float]
    logged: int
    skipped: int

    @property
    def downsampled(self) -> bool:
        """Whether fewer points are drawn than were logged.

        Example:
            >>> Chart("loss", "Charts", "_step", [0.0, 9.0], [1.0, 0.1], logged=10, skipped=0).downsampled
            True
        """
        return len(self.xs) < self.logged


@dataclass(frozen=True)
class ChartModel:
    """The charts of one run, in display order, and what was not charted.

    Attributes:
        charts: the charts drawn, sorted by section (ungrouped first) then key.
        left_out: numeric metrics not drawn because of the cap on the number of charts.
        not_numeric: keys that were logged but have no numeric value to draw (media, text, ...).
        skipped_values: values skipped across all charts (non-numeric, NaN, infinite).

    Example:
        >>> ChartModel().sections()
        []
    """

    charts: list[Chart] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    not_numeric: list[str] = field(default_factory=list)
    skipped_values: int = 0

    def sections(self) -> list[tuple[str, list[Chart]]]:
        """The charts by section, in display order.

        Example:
            >>> c = Chart("a/x", "a", "_step", [], [], 0, 0)
            >>> [(name, len(charts)) for name, charts in ChartModel([c]).sections()]
            [('a', 1)]
        """
        out: list[tuple[str, list[Chart]]] = []
        for chart in self.charts:
            if not out or out[-1][0] != chart.section:
                out.append((chart.section, []))
            out[-1][1].append(chart)
        return out


def section_of(key: str) -> str:
    """The section a metric is shown in: its name before the first ``/``, else ``Charts``.

    Example:
        >>> section_of("train/loss"), section_of("eval/top/1"), section_of("loss")
        ('train', 'eval', 'Charts')
    """
    head, sep, tail = key.partition("/")
    return head if sep and head and tail else UNGROUPED


def _number(value: Any) -> float | None:
    # bool is an int to Python, but W&B does not chart it as a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def envelope(xs: Sequence[float], ys: Sequence[float], buckets: int) -> tuple[list[float], list[float]]:
    """Reduce a series to at most ``2 * buckets + 2`` points, keeping each bucket's min and max.

    The first and last points are always kept, and so is every bucket's lowest and highest
    value, in x order: the series' global extremes are among the points kept.

    Example:
        >>> xs = list(range(10)); ys = [0, 5, 1, 1, 1, -7, 1, 1, 2, 0]
        >>> envelope(xs, ys, 2)
        ([0, 1, 5, 8, 9], [0, 5, -7, 2, 0])
    """
    count = len(xs)
    if buckets < 1 or count <= 2 * buckets + 2:
        return list(xs), list(ys)
    keep = {0, count - 1}
    size = count / buckets
    values = list(ys)
    for bucket in range(buckets):
        start, stop = int(bucket * size), min(count, int((bucket + 1) * size))
        if start >= stop:
            continue
        # min/max/index over a slice run in C: an order of magnitude faster than a key function.
        segment = values[start:stop]
        keep.add(start + segment.index(min(segment)))
        keep.add(start + segment.index(max(segment)))
    order = sorted(keep)
    return [xs[i] for i in order], [ys[i] for i in order]


def _step_metric_for(key: str, step_metrics: Mapping[str, str]) -> str | None:
    if key in step_metrics:
        return step_metrics[key]
    for pattern, step_metric in step_metrics.items():
        if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(key, pattern):
            return step_metric
    return None


_NUMBER_TYPES = (int, float)


def _points(
    column: Column, x_values: Mapping[int, Any] | Sequence[Any]
) -> tuple[list[float], list[float], int]:
    xs_all: list[Any]
    if isinstance(x_values, Mapping):
        xs_all = [x_values.get(row) for row in column.rows]
    elif len(column.rows) == len(x_values):
        xs_all = list(x_values)  # a key logged at every step (rows are 0, 1, 2, ...)
    else:
        count = len(x_values)
        xs_all = [x_values[row] if row < count else None for row in column.rows]
    isfinite = math.isfinite
    numbers = _NUMBER_TYPES
    # Inline checks rather than a function call per value: this runs over every logged value.
    # (type() rather than isinstance: bool is an int to Python, but W&B does not chart it.)
    pairs = [
        (float(x), float(y))
        for x, y in zip(xs_all, column.values, strict=True)
        if type(y) in numbers and type(x) in numbers and isfinite(y) and isfinite(x)
    ]
    skipped = len(column.values) - len(pairs)
    if any(b < a for a, b in itertools.pairwise(p[0] for p in pairs)):
        # A declared step metric need not grow with the rows: draw the line in x order.
        pairs.sort()
    return [p[0] for p in pairs], [p[1] for p in pairs], skipped


def plan_charts(
    columns: Mapping[str, Column],
    steps: Sequence[Any],
    step_metrics: Mapping[str, str] | None = None,
    max_charts: int = DEFAULT_MAX_CHARTS,
    point_budget: int = DEFAULT_POINT_BUDGET,
) -> ChartModel:
    """Decide the charts of a run: one per numeric metric, capped, each reduced to its share of points.

    ``steps`` is the ``_step`` of each history row; ``step_metrics`` maps metric names (or globs)
    to the metric used as their x axis. At most ``max_charts`` charts are drawn (the rest are
    named in ``left_out``); together they draw at most about ``point_budget`` points.

    Example:
        >>> cols = {"acc": Column([0, 1], [0.5, "n/a"]), "img": Column([0], [{"_type": "image-file"}])}
        >>> model = plan_charts(cols, steps=[0, 1])
        >>> [c.key for c in model.charts], model.not_numeric, model.skipped_values
        (['acc'], ['img'], 1)
    """
    step_metrics = step_metrics or {}
    candidates: list[str] = []
    not_numeric: list[str] = []
    for key, column in columns.items():
        if key.startswith("_"):
            continue
        if any(_number(value) is not None for value in column.values):
            candidates.append(key)
        else:
            not_numeric.append(key)
    candidates.sort(key=lambda k: (section_of(k) != UNGROUPED, section_of(k), k))
    shown, left_out = candidates[:max_charts], candidates[max_charts:]
    per_chart = max(_MIN_POINTS_PER_CHART, min(_MAX_POINTS_PER_CHART, point_budget // max(1, len(shown))))
    charts: list[Chart] = []
    skipped_total = 0
    for key in shown:
        step_metric = _step_metric_for(key, step_metrics)
        x_column = columns.get(step_metric) if step_metric else None
        if step_metric and x_column is not None and step_metric != key:
            xs, ys, skipped = _points(columns[key], dict(zip(x_column.rows, x_column.values, strict=True)))
            x_label = step_metric
        else:
            xs, ys, skipped = _points(columns[key], steps)
            x_label = "_step"
        logged = len(xs)
        xs, ys = envelope(xs, ys, per_chart // 2 - 1)
        charts.append(Chart(key, section_of(key), x_label, xs, ys, logged, skipped))
        skipped_total += skipped
    return ChartModel(charts, left_out, sorted(not_numeric), skipped_total)
