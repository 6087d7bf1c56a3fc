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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._history import Column

__all__ = [
    "DEFAULT_MAX_CHARTS",
    "DEFAULT_POINT_BUDGET",
    "Chart",
    "ChartModel",
    "ChartPlanner",
    "declared_for",
    "envelope",
    "integer_ticks",
    "plan_charts",
    "section_of",
]

# The page stays well under 1 MB: about 40 bytes of SVG path per drawn point. A chart's plot area
# is about 370 pixels wide: a minimum and a maximum for every two or three pixel columns (a line
# is 1.5 pixels wide) draws the same line as more points would, and drawing costs about 7 us per
# point, at the end of the task.
DEFAULT_POINT_BUDGET = 16_000
DEFAULT_MAX_CHARTS = 48
_MAX_POINTS_PER_CHART = 300
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
        x_axes: declared step metrics (``define_metric(..., step_metric=...)``) that are the x
            axis of some chart: used only as axes, not drawn as charts of their own.

    Example:
        >>> ChartModel().sections()
        []
    """

    charts: list[Chart] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    not_numeric: list[str] = field(default_factory=list)
    skipped_values: int = 0
    x_axes: list[str] = field(default_factory=list)

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
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
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


def integer_ticks(xs: Sequence[float], count: int = 5) -> list[int] | None:
    """Whole-number axis ticks when every x value is an integer (steps, epochs); else ``None``.

    At most ``count + 1`` ticks, evenly spaced by 1, 2, 2.5 or 5 times a power of ten (a whole
    number, never less than 1), within the values' range: no fractional step such as 0.6, and no
    tick twice.

    Example:
        >>> integer_ticks([0.0, 1.0, 2.0, 3.0]), integer_ticks([0.0, 19999.0])
        ([0, 1, 2, 3], [0, 5000, 10000, 15000])
        >>> integer_ticks([8.0, 1207.0])
        [250, 500, 750, 1000]
        >>> integer_ticks([7.0]), integer_ticks([0.0, 0.5]), integer_ticks([])
        ([7], None, None)
    """
    if not xs or not all(x.is_integer() for x in xs):
        return None
    low, high = int(min(xs)), int(max(xs))
    span = high - low
    if span == 0:
        return [low]
    wanted = span / max(1, count)
    magnitude = 10 ** max(0, math.floor(math.log10(wanted)))
    steps = (1, 2, 2.5, 5, 10) if magnitude >= 10 else (1, 2, 5, 10)
    step = int(next(m * magnitude for m in steps if m * magnitude >= wanted))
    first = -(-low // step) * step  # the first multiple of step at or above low
    return list(range(first, high + 1, step))


def declared_for(key: str, declared: Mapping[str, str]) -> str | None:
    """What ``define_metric`` declared for metric ``key``: by its name, else by a glob naming it.

    Example:
        >>> declared_for("val/loss", {"val/*": "epoch"}), declared_for("loss", {"val/*": "epoch"})
        ('epoch', None)
    """
    if key in declared:
        return declared[key]
    for pattern, value in declared.items():
        if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(key, pattern):
            return value
    return None


_NUMBER_TYPES = (int, float)
_NUMBER_SET = frozenset(_NUMBER_TYPES)


@dataclass
class _Series:
    """One metric's points so far, in logged order: what an incremental plan has already read."""

    x_label: str
    consumed: int = 0  # the column's values read so far
    last_row: int = -1
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    skipped: int = 0
    numeric: bool = False  # some value is a finite number (drawn or not)
    ordered: bool = True  # xs never go down


def _finite_numbers(xs: list[Any], ys: list[Any]) -> tuple[list[float], list[float]]:
    """The (x, y) pairs where both are finite numbers (not bools), as floats."""
    numbers = _NUMBER_TYPES
    isfinite = math.isfinite
    try:
        # Mostly every value is a number: checked in bulk, in C (a sum is finite only if each
        # term is).
        if (
            {type(x) for x in xs} <= _NUMBER_SET
            and {type(y) for y in ys} <= _NUMBER_SET
            and isfinite(sum(xs))
            and isfinite(sum(ys))
        ):
            return list(map(float, xs)), list(map(float, ys))
        # Inline checks rather than a function call per value: this runs over every logged
        # value. (type() rather than isinstance: bool is an int to Python, but W&B does not
        # chart it.)
        pairs = [
            (float(x), float(y))
            for x, y in zip(xs, ys, strict=True)
            if type(y) in numbers and type(x) in numbers and isfinite(y) and isfinite(x)
        ]
    except OverflowError:  # an integer too large for a float: one at a time
        checked = [(_number(x), _number(y)) for x, y in zip(xs, ys, strict=True)]
        pairs = [(x, y) for x, y in checked if x is not None and y is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _extend(series: _Series, column: Column, x_of: Callable[[Sequence[int]], list[Any]]) -> None:
    """Add the column's values after ``series.consumed`` to the series."""
    start = series.consumed
    values = column.values[start:]
    if not values:
        return
    rows = column.rows[start:]
    xs_all = x_of(rows)
    new_xs, new_ys = _finite_numbers(xs_all, values)
    if series.ordered and new_xs:
        previous = series.xs[-1] if series.xs else new_xs[0]
        series.ordered = previous <= new_xs[0] and not any(b < a for a, b in itertools.pairwise(new_xs))
    series.xs.extend(new_xs)
    series.ys.extend(new_ys)
    series.skipped += len(values) - len(new_ys)
    series.numeric = series.numeric or bool(new_ys) or any(_number(value) is not None for value in values)
    series.consumed = start + len(values)
    series.last_row = rows[-1]


class ChartPlanner:
    """Plans a growing run's charts again and again, reading only the values added since the last plan.

    A helper that follows a run's log while the task runs plans the charts each time it has read
    more; each plan costs what was added, not the whole history. :meth:`plan` gives exactly what
    :func:`plan_charts` gives for the same columns (which it calls with a fresh planner): columns
    only grow (rows are never rewritten), and a column that did not grow as expected, or whose
    x axis changed (a ``define_metric`` read later), is read again from its start.

    Example:
        >>> planner = ChartPlanner()
        >>> cols = {"loss": Column([0, 1], [2.0, 1.0])}
        >>> planner.plan(cols, steps=[0, 1]).charts[0].ys
        [2.0, 1.0]
        >>> cols["loss"].rows.append(2); cols["loss"].values.append(0.5)
        >>> planner.plan(cols, steps=[0, 1, 2]).charts[0].ys
        [2.0, 1.0, 0.5]
    """

    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}
        # step metric -> (its values read so far, row -> value)
        self._x_maps: dict[str, tuple[int, dict[int, Any]]] = {}

    def _x_map(self, step_metric: str, column: Column) -> dict[int, Any]:
        done, mapping = self._x_maps.get(step_metric, (0, {}))
        if done > len(column.values):
            done, mapping = 0, {}
        mapping.update(zip(column.rows[done:], column.values[done:], strict=True))
        self._x_maps[step_metric] = (len(column.values), mapping)
        return mapping

    def _points(
        self, key: str, column: Column, x_label: str, x_of: Callable[[Sequence[int]], list[Any]]
    ) -> _Series:
        series = self._series.get(key)
        consumed = series.consumed if series is not None else 0
        if (
            series is None
            or series.x_label != x_label
            or consumed > len(column.values)
            or (consumed and column.rows[consumed - 1] != series.last_row)
        ):
            series = self._series[key] = _Series(x_label)
        _extend(series, column, x_of)
        return series

    def extend(
        self,
        columns: Mapping[str, Column],
        steps: Sequence[Any],
        step_metrics: Mapping[str, str] | None = None,
    ) -> dict[str, _Series]:
        """Read the values added to the columns since the last call (or plan), without planning.

        A helper that follows a log calls it as the log grows, so that little is left to read
        when the page is drawn. Returns each metric's points so far.

        Example:
            >>> sorted(ChartPlanner().extend({"loss": Column([0], [1.0]), "_step": Column([0], [0])}, [0]))
            ['loss']
        """
        step_metrics = step_metrics or {}
        count = len(steps)

        def by_step(rows: Sequence[int]) -> list[Any]:
            first, last = rows[0], rows[-1]
            if last - first == len(rows) - 1 and last < count:
                return list(steps[first : last + 1])  # a key logged at every step (rows n, n+1, ...)
            return [steps[row] if row < count else None for row in rows]

        def by_metric(mapping: Mapping[int, Any]) -> Callable[[Sequence[int]], list[Any]]:
            return lambda rows: [mapping.get(row) for row in rows]

        series_of: dict[str, _Series] = {}
        for key, column in columns.items():
            if key.startswith("_"):
                continue
            step_metric = declared_for(key, step_metrics)
            x_column = columns.get(step_metric) if step_metric else None
            if step_metric and x_column is not None and step_metric != key:
                x_of = by_metric(self._x_map(step_metric, x_column))
                series_of[key] = self._points(key, column, step_metric, x_of)
            else:
                series_of[key] = self._points(key, column, "_step", by_step)
        for key in list(self._series):
            if key not in series_of:
                del self._series[key]
        return series_of

    def plan(
        self,
        columns: Mapping[str, Column],
        steps: Sequence[Any],
        step_metrics: Mapping[str, str] | None = None,
        max_charts: int = DEFAULT_MAX_CHARTS,
        point_budget: int = DEFAULT_POINT_BUDGET,
    ) -> ChartModel:
        """The charts of the columns as they are now (see :func:`plan_charts`).

        Example:
            >>> ChartPlanner().plan({"_step": Column([0], [0])}, steps=[0]).charts
            []
        """
        series_of = self.extend(columns, steps, step_metrics)
        # A declared step metric that is some charted metric's x axis is shown as that axis only.
        x_axes = {series.x_label for series in series_of.values() if series.numeric} - {"_step"}
        candidates: list[str] = []
        not_numeric: list[str] = []
        for key, series in series_of.items():
            if key in x_axes:
                continue
            (candidates if series.numeric else not_numeric).append(key)
        candidates.sort(key=lambda k: (section_of(k) != UNGROUPED, section_of(k), k))
        shown, left_out = candidates[:max_charts], candidates[max_charts:]
        per_chart = max(_MIN_POINTS_PER_CHART, min(_MAX_POINTS_PER_CHART, point_budget // max(1, len(shown))))
        charts: list[Chart] = []
        skipped_total = 0
        for key in shown:
            series = series_of[key]
            xs, ys = series.xs, series.ys
            if not series.ordered:
                # A declared step metric need not grow with the rows: draw the line in x order.
                pairs = sorted(zip(xs, ys, strict=True))
                xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            xs, ys = envelope(xs, ys, per_chart // 2 - 1)
            charts.append(Chart(key, section_of(key), series.x_label, xs, ys, len(series.xs), series.skipped))
            skipped_total += series.skipped
        return ChartModel(charts, left_out, sorted(not_numeric), skipped_total, sorted(x_axes))


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
    return ChartPlanner().plan(columns, steps, step_metrics, max_charts, point_budget)
