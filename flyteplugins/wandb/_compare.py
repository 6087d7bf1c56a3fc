"""Pure: what a comparison of several runs shows (a fan-out's children, or runs named on the command line).

From :class:`~flyteplugins.wandb._digest.RunDigest` values (and the children that have none, as
:class:`MissingRun`) to a :class:`Comparison`: one table row per run, the metrics the runs share,
the objective and the best row, and one overlaid chart per shared metric. Drawing it is
``_report_compare.py``'s job; this module decides.

The rules, stated on the page as well:

- **Shared metrics.** A metric is shared when at least two of the runs have it (a logged numeric
  series or a numeric summary value); with a single run, all of its metrics are. Shared metrics
  get a table column (their final value) and, when logged as a series, an overlaid chart. A metric
  that only one run has is listed under the table, not charted: runs of different tasks rarely
  mean the same thing by it.
- **Final value.** The run's summary value when it is a number (NaN and infinities included: a run
  that diverged shows it), else the last finite value it logged.
- **Objective.** The one given (a sweep's ``metric``), else the first shared metric the runs
  declared a direction for with ``define_metric(name, summary="min")`` (or ``"max"``; ``goal=`` in
  older wandb releases), else
  the first shared metric (in chart order) with a final value, preferring one whose name says what
  it measures (:func:`objective_candidates`: an error such as ``loss``, or a score such as
  ``accuracy``) and never a counter (``epoch``, ``step``, ``lr``, ...) or an x axis; it is minimised
  when its name says it is an error (:func:`direction_of`: ``loss``, ``error``, ``err``, ``mse``,
  ``mae``, ``rmse``, ``perplexity``, ...) and maximised otherwise. The best row has the best finite
  final value.
- **Inputs.** The Flyte inputs whose values differ between runs come first (and are the table's
  columns); the inputs every run has with the same value are listed once.
- **Lines.** Each chart draws at most ``max_lines`` runs, the same runs in every chart (best by the
  objective first, then in the given order) so that a run keeps its colour; each line keeps at most
  its share of ``point_budget`` points (a min/max envelope: extremes kept). How many runs were not
  drawn is said under the chart.

Example:
    >>> from flyteplugins.wandb._digest import RunDigest, SeriesDigest
    >>> def child(run_id, lr, loss):
    ...     series = SeriesDigest("loss", "_step", (0.0, 1.0), (1.0, loss), last=loss, logged=2)
    ...     return RunDigest(run_id, task="env.train", inputs={"lr": lr, "epochs": 2},
    ...                      summary={"loss": loss}, series=(series,), state="finished")
    >>> comparison = plan_comparison([child("a", 0.1, 0.5), child("b", 0.01, 0.2)])
    >>> comparison.metrics, comparison.differing_inputs, comparison.same_inputs
    (('loss',), ('lr',), (('epochs', 2),))
    >>> comparison.objective
    Objective(metric='loss', goal='minimize', source='first shared metric')
    >>> comparison.best_run_id, [len(chart.lines) for chart in comparison.charts]
    ('b', [2])
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._chart_model import UNGROUPED, declared_for, envelope, section_of
from ._digest import RunDigest
from ._report import safe_url

__all__ = [
    "DEFAULT_MAX_CHARTS",
    "DEFAULT_MAX_LINES",
    "DEFAULT_POINT_BUDGET",
    "Comparison",
    "ComparisonChart",
    "ComparisonRow",
    "Line",
    "MissingRun",
    "Objective",
    "direction_of",
    "objective_candidates",
    "plan_comparison",
]

#: Runs drawn per chart (the same runs in every chart).
DEFAULT_MAX_LINES = 20
#: Overlaid charts drawn; further shared metrics are in the table only.
DEFAULT_MAX_CHARTS = 24
#: Points drawn on the whole page, shared out between the lines (each keeps 40 to 200): drawing
#: costs about 10 us per point, and a chart 370 pixels wide shows no more with more points.
DEFAULT_POINT_BUDGET = 12_000
_MIN_POINTS_PER_LINE = 40
_MAX_POINTS_PER_LINE = 200
#: Metric columns in the table; further shared metrics are named under it.
MAX_METRIC_COLUMNS = 16

Goal = Literal["minimize", "maximize"]

# Words that make a metric an error to minimise (matched as whole words of its name).
_MINIMISED = re.compile(
    r"(?:^|[^a-z0-9])(loss|losses|error|errors|err|mse|mae|rmse|msle|mape|nll|perplexity|ppl|wer|cer|"
    r"regret|cost|distance|dist|fid|latency)(?:$|[^a-z0-9])"
)
# Words that make a metric a score (preferred, with errors, as the objective when none is given).
_SCORES = re.compile(
    r"(?:^|[^a-z0-9])(acc|accuracy|top1|top5|f1|f1_score|auc|auroc|roc_auc|precision|recall|reward|return|"
    r"score|map|bleu|rouge|iou|dice|r2|ndcg|mrr)(?:$|[^a-z0-9])"
)
# Counters and settings: logged, shared, but not what a run is judged by.
_COUNTERS = re.compile(
    r"(?:^|[^a-z0-9])(epoch|epochs|step|steps|global_step|iteration|iterations|iter|batch|batches|lr|"
    r"learning_rate|time|runtime|timestamp|duration|samples|examples|tokens|seen)(?:$|[^a-z0-9])"
)
_NON_FINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class MissingRun:
    """A run the comparison should have and has no digest for: a row that says why, never an error.

    Example:
        >>> MissingRun("env.train", "a3", "failed before its run ended").reason
        'failed before its run ended'
    """

    task: str | None
    action: str | None
    reason: str


@dataclass(frozen=True)
class Objective:
    """The metric that ranks the runs, its direction, and where that came from.

    Attributes:
        metric: the metric's key.
        goal: ``minimize`` or ``maximize``.
        source: ``sweep metric``, ``define_metric summary``, ``first shared metric``, ...

    Example:
        >>> Objective("val/acc", "maximize", "sweep metric").describe()
        'val/acc, maximized (sweep metric)'
    """

    metric: str
    goal: Goal
    source: str

    def describe(self) -> str:
        """The objective as the page states it.

        Example:
            >>> Objective("loss", "minimize", "first shared metric").describe()
            'loss, minimized (first shared metric)'
        """
        return f"{self.metric}, {self.goal}d ({self.source})"

    @classmethod
    def from_sweep_metric(cls, metric: Any) -> Objective | None:
        """The objective a sweep's ``metric`` setting gives: a ``{"name", "goal"}`` mapping (as in a
        sweep config) or an object with ``name`` and ``goal``; ``None`` when it names no metric.

        A sweep's goal defaults to ``minimize``, as in W&B.

        Example:
            >>> Objective.from_sweep_metric({"name": "val/acc", "goal": "maximize"})
            Objective(metric='val/acc', goal='maximize', source='sweep metric')
            >>> Objective.from_sweep_metric(None) is None
            True
        """
        if isinstance(metric, Mapping):
            name, goal = metric.get("name"), metric.get("goal")
        else:
            name, goal = getattr(metric, "name", None), getattr(metric, "goal", None)
        if not isinstance(name, str) or not name:
            return None
        return cls(name, "maximize" if goal == "maximize" else "minimize", "sweep metric")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` for this objective.

        Example:
            >>> Objective("loss", "minimize", "x").better(0.1, 0.2)
            True
        """
        return a < b if self.goal == "minimize" else a > b


@dataclass(frozen=True)
class ComparisonRow:
    """One run of the comparison (or a child that has no run to show).

    Attributes:
        run_id: the W&B run id (``None`` for a missing run).
        label: how the run is named: its W&B name, else its id (for a missing run, its action or task).
        url: the run's W&B page, only when it is an http(s) address.
        task, action: the Flyte task and action that own the run.
        inputs: the task's inputs, the differing ones first (key order of the comparison).
        state: ``finished``, ``failed``, ``preempted``, ``running``, ``unknown``, or ``missing``.
        finals: the final value of each shared metric (``None``: the run has none; may be NaN).
        best: whether this is the best row for the objective.
        drawn: whether the run is drawn in the charts (see ``max_lines``).
        colour: the run's colour index in the charts (``None`` when not drawn).
        reason: why a missing run has no digest.
        notes: what could not be read of this run.

    Example:
        >>> ComparisonRow("r1", "lr-0.1").missing
        False
    """

    run_id: str | None
    label: str
    url: str | None = None
    task: str | None = None
    action: str | None = None
    inputs: tuple[tuple[str, Any], ...] = ()
    state: str = "unknown"
    finals: Mapping[str, float | None] = field(default_factory=dict)
    best: bool = False
    drawn: bool = False
    colour: int | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def missing(self) -> bool:
        """Whether this row is a child without a digest.

        Example:
            >>> ComparisonRow(None, "a3", state="missing", reason="no W&B run").missing
            True
        """
        return self.run_id is None


@dataclass(frozen=True)
class Line:
    """One run's line in an overlaid chart.

    Example:
        >>> Line("r1", "lr-0.1", 0, (0.0, 1.0), (1.0, 0.5), logged=2).points
        2
    """

    run_id: str
    label: str
    colour: int
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    logged: int = 0
    best: bool = False

    @property
    def points(self) -> int:
        """How many points are drawn.

        Example:
            >>> Line("r1", "r1", 0, (), ()).points
            0
        """
        return len(self.xs)


@dataclass(frozen=True)
class ComparisonChart:
    """One shared metric, one line per drawn run.

    Attributes:
        key, section, x_label: the metric, its ``/`` section, its x axis (``_step`` or the step
            metric most runs declared).
        lines: the drawn runs' lines, best first.
        not_drawn: runs that have this metric but are not drawn (the cap on lines).
        without: runs drawn elsewhere that did not log this metric.

    Example:
        >>> ComparisonChart("loss", "Charts", "_step", ()).downsampled
        False
    """

    key: str
    section: str
    x_label: str
    lines: tuple[Line, ...]
    not_drawn: int = 0
    without: int = 0

    @property
    def downsampled(self) -> bool:
        """Whether some line draws fewer points than its run logged.

        Example:
            >>> line = Line("r", "r", 0, (0.0, 9.0), (1.0, 0.0), logged=10)
            >>> ComparisonChart("loss", "Charts", "_step", (line,)).downsampled
            True
        """
        return any(line.points < line.logged for line in self.lines)


@dataclass(frozen=True)
class Comparison:
    """What the comparison page shows.

    Attributes:
        rows: one per run, in the given order, then the missing children.
        metrics: the shared metrics, in chart order (ungrouped first, then by section).
        table_metrics: the shared metrics that get a table column (at most 16, the objective first).
        unshared: metrics only one run has, with that run's label.
        differing_inputs: input names whose values differ between runs (the table's columns).
        same_inputs: inputs every run has with the same value.
        objective: the metric that ranks the runs, or ``None`` when there is none.
        best_run_id: the best run by the objective.
        charts: the overlaid charts, at most ``DEFAULT_MAX_CHARTS``.
        charts_left_out: shared, logged metrics not charted (the cap on charts).
        max_lines: runs drawn per chart.
        notes: what was skipped and why (plain text).
        common: what every run has the same (``project``, ``group``, ``job type``, ``parent run``,
            ``task``), as ``(name, value)`` pairs: a fan-out's children share their parent's run.

    Example:
        >>> plan_comparison([]).notes
        ('There are no runs to compare.',)
    """

    rows: tuple[ComparisonRow, ...] = ()
    metrics: tuple[str, ...] = ()
    table_metrics: tuple[str, ...] = ()
    unshared: tuple[tuple[str, str], ...] = ()
    differing_inputs: tuple[str, ...] = ()
    same_inputs: tuple[tuple[str, Any], ...] = ()
    objective: Objective | None = None
    best_run_id: str | None = None
    charts: tuple[ComparisonChart, ...] = ()
    charts_left_out: tuple[str, ...] = ()
    max_lines: int = DEFAULT_MAX_LINES
    notes: tuple[str, ...] = ()
    common: tuple[tuple[str, str], ...] = ()

    @property
    def drawn_rows(self) -> tuple[ComparisonRow, ...]:
        """The rows drawn in the charts, by colour (the legend).

        Example:
            >>> plan_comparison([]).drawn_rows
            ()
        """
        drawn = [row for row in self.rows if row.colour is not None]
        return tuple(sorted(drawn, key=lambda row: row.colour or 0))

    def sections(self) -> list[tuple[str, list[ComparisonChart]]]:
        """The charts by ``/`` section, in display order.

        Example:
            >>> plan_comparison([]).sections()
            []
        """
        out: list[tuple[str, list[ComparisonChart]]] = []
        for chart in self.charts:
            if not out or out[-1][0] != chart.section:
                out.append((chart.section, []))
            out[-1][1].append(chart)
        return out


def direction_of(metric: str) -> Goal:
    """Whether a metric is minimised or maximised when nothing says: errors are minimised.

    The metric's name is split into words (at ``/``, ``_``, ``.``, ``-`` and spaces); a word such
    as ``loss``, ``error``, ``err``, ``mse``, ``mae``, ``rmse``, ``nll``, ``perplexity``, ``wer``
    or ``cost`` makes it an error. Everything else (accuracy, f1, reward, ...) is maximised.

    Example:
        >>> direction_of("val/loss"), direction_of("train_rmse"), direction_of("accuracy")
        ('minimize', 'minimize', 'maximize')
    """
    return "minimize" if _MINIMISED.search(metric.lower()) else "maximize"


def objective_candidates(metrics: Sequence[str], x_axes: Sequence[str] = ()) -> list[str]:
    """The metrics that can be the objective when none is given, most telling first.

    Errors (see :func:`direction_of`) and scores (``accuracy``, ``f1``, ``auc``, ``reward``, ...)
    first, then other metrics; counters and settings (``epoch``, ``step``, ``lr``, ``runtime``,
    ...) and the runs' x axes (``x_axes``) are never candidates. Order is kept within each group.

    Example:
        >>> objective_candidates(["epoch", "lr", "throughput", "val/accuracy", "train/loss"])
        ['val/accuracy', 'train/loss', 'throughput']
    """
    named: list[str] = []
    others: list[str] = []
    for metric in metrics:
        lowered = metric.lower()
        if metric in x_axes or _COUNTERS.search(lowered.rsplit("/", 1)[-1]):
            continue
        (named if _MINIMISED.search(lowered) or _SCORES.search(lowered) else others).append(metric)
    return named + others


def _number(value: Any) -> float | None:
    """A summary value as a number: finite numbers, and NaN/infinities (also as the digest's strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str) and value in _NON_FINITE_TEXT:
        return _NON_FINITE_TEXT[value]
    return None


def _final(digest: RunDigest, key: str) -> float | None:
    number = _number(digest.summary.get(key))
    if number is not None:
        return number
    series = digest.series_of(key)
    return series.last if series is not None else None


def _metrics_of(digest: RunDigest) -> list[str]:
    keys = {series.key for series in digest.series if series.logged or series.points}
    keys.update(str(k) for k, v in digest.summary.items() if _number(v) is not None)
    return [k for k in keys if not k.startswith("_")]


def _chart_order(key: str) -> tuple[bool, str, str]:
    section = section_of(key)
    return (section != UNGROUPED, section, key)


def _same(a: Any, b: Any) -> bool:
    try:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


_ABSENT = object()


def _inputs(digests: Sequence[RunDigest]) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """The input names that differ between runs (first-seen order) and the inputs all share."""
    names: list[str] = []
    for digest in digests:
        names.extend(str(k) for k in digest.inputs if str(k) not in names)
    differing: list[str] = []
    same: list[tuple[str, Any]] = []
    for name in names:
        values = [digest.inputs.get(name, _ABSENT) for digest in digests]
        first = values[0]
        if len(digests) > 1 and any(v is _ABSENT for v in values):
            differing.append(name)
        elif all(_same(first, v) for v in values[1:]):
            same.append((name, first))
        else:
            differing.append(name)
    return tuple(differing), tuple(same)


def _declared_objective(digests: Sequence[RunDigest], metrics: Sequence[str]) -> Objective | None:
    """The first shared metric (chart order) a run declared a direction for (``RunDigest.goals``).

    When runs disagree on a metric's direction, the most runs win (a tie: minimised). A direction
    declared for a glob (``define_metric("val/*", summary="min")``) holds for the metrics it names.
    """
    for metric in metrics:
        votes = [declared_for(metric, digest.goals) for digest in digests]
        lower, higher = votes.count("minimize"), votes.count("maximize")
        if lower or higher:
            goal: Goal = "minimize" if lower >= higher else "maximize"
            return Objective(metric, goal, "define_metric summary")
    return None


def plan_comparison(
    digests: Sequence[RunDigest],
    missing: Sequence[MissingRun] = (),
    objective: Objective | None = None,
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_charts: int = DEFAULT_MAX_CHARTS,
    point_budget: int = DEFAULT_POINT_BUDGET,
) -> Comparison:
    """Decide the comparison of ``digests`` (see the module's docstring for the rules). Pure.

    ``missing``: children without a digest (each a row that says why). ``objective``: the metric
    that ranks the runs (a sweep's ``metric``), else found as the module's docstring says.

    Example:
        >>> from flyteplugins.wandb._digest import RunDigest
        >>> comparison = plan_comparison([RunDigest("a", summary={"acc": 0.8}, state="finished"),
        ...                               RunDigest("b", summary={"acc": 0.9}, state="finished")],
        ...                              missing=[MissingRun("env.train", "a3", "no W&B run")])
        >>> [(row.label, row.state, row.finals.get("acc"), row.best) for row in comparison.rows]
        [('a', 'finished', 0.8, False), ('b', 'finished', 0.9, True), ('a3', 'missing', None, False)]
    """
    notes: list[str] = []
    if not digests and not missing:
        return Comparison(notes=("There are no runs to compare.",))
    metrics, unshared = _shared_metrics(digests)
    if len(digests) > 1 and unshared and not metrics:
        notes.append("The runs share no metric: each metric below the table was logged by one run only.")
    finals = [{key: _final(digest, key) for key in metrics} for digest in digests]
    if objective is None:
        objective = _declared_objective(digests, metrics) or _default_objective(digests, metrics, finals)
    ranked, best_index = _rank(digests, objective, metrics, finals, notes)

    # The runs drawn: the best by the objective first, the same in every chart (colours stay).
    with_series = [i for i in ranked if any(s.points for s in digests[i].series)]
    drawn = with_series[: max(0, max_lines)]
    colour_of = {index: colour for colour, index in enumerate(drawn)}
    if len(with_series) > len(drawn):
        notes.append(
            f"The charts draw {len(drawn)} of {len(with_series)} runs (best by the objective first): "
            f"{len(with_series) - len(drawn)} more runs are not drawn; their final values are in the table."
        )

    # Table columns: the objective first, then chart order, at most MAX_METRIC_COLUMNS.
    ordered = list(metrics)
    if objective is not None and objective.metric in ordered:
        ordered.remove(objective.metric)
        ordered.insert(0, objective.metric)
    table_metrics = tuple(ordered[:MAX_METRIC_COLUMNS])
    if len(ordered) > len(table_metrics):
        notes.append(
            f"The table shows {len(table_metrics)} of {len(ordered)} shared metrics; the others are "
            "charted below."
        )

    # Charts: shared metrics logged as a series by at least one drawn run.
    charted = [key for key in metrics if any(digests[i].series_of(key) is not None for i in drawn)]
    shown, left_out = charted[: max(0, max_charts)], charted[max(0, max_charts) :]
    if left_out:
        notes.append(f"{len(left_out)} shared metrics are not charted (at most {max_charts} charts).")
    line_count = sum(1 for key in shown for i in drawn if digests[i].series_of(key) is not None)
    per_line = max(_MIN_POINTS_PER_LINE, min(_MAX_POINTS_PER_LINE, point_budget // max(1, line_count)))
    charts = [_chart(key, digests, drawn, colour_of, best_index, per_line, notes) for key in shown]

    differing, same = _inputs(digests)
    rows = [
        _row(index, digest, differing, same, finals[index], table_metrics, objective, notes)
        for index, digest in enumerate(digests)
    ]
    rows = [
        replace(row, best=index == best_index, drawn=index in colour_of, colour=colour_of.get(index))
        for index, row in enumerate(rows)
    ]
    for child in missing:
        label = child.action or child.task or "(unknown child)"
        rows.append(
            ComparisonRow(
                run_id=None,
                label=label,
                task=child.task,
                action=child.action,
                state="missing",
                reason=child.reason,
            )
        )
        notes.append(f"{label}: no run to compare ({child.reason}).")
    if objective is not None and objective.metric not in metrics:
        notes.append(f"The objective {objective.metric} is not a metric the runs share.")
    return Comparison(
        rows=tuple(rows),
        metrics=metrics,
        table_metrics=table_metrics,
        unshared=unshared,
        differing_inputs=differing,
        same_inputs=same,
        objective=objective,
        best_run_id=digests[best_index].run_id if best_index is not None else None,
        charts=tuple(charts),
        charts_left_out=tuple(left_out),
        max_lines=max_lines,
        notes=tuple(notes),
        common=_common(digests),
    )


def _common(digests: Sequence[RunDigest]) -> tuple[tuple[str, str], ...]:
    """The identity every run shares (with more than one run): project, group, job type, parent run, task."""
    if len(digests) < 2:
        return ()
    fields = (
        ("project", "project"),
        ("group", "group"),
        ("job type", "job_type"),
        ("parent run", "parent_run_id"),
        ("task", "task"),
    )
    common: list[tuple[str, str]] = []
    for name, attribute in fields:
        values = {getattr(digest, attribute) for digest in digests}
        if len(values) == 1 and (value := values.pop()):
            common.append((name, str(value)))
    return tuple(common)


def _shared_metrics(digests: Sequence[RunDigest]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The metrics at least two runs have (all, with one run), in chart order; the others with their run."""
    has: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        for key in _metrics_of(digest):
            has.setdefault(key, []).append(index)
    threshold = 2 if len(digests) > 1 else 1
    metrics = tuple(sorted((k for k, runs in has.items() if len(runs) >= threshold), key=_chart_order))
    unshared = tuple(sorted((k, digests[runs[0]].label) for k, runs in has.items() if len(runs) < threshold))
    return metrics, unshared


def _default_objective(
    digests: Sequence[RunDigest], metrics: Sequence[str], finals: Sequence[Mapping[str, float | None]]
) -> Objective | None:
    """The first candidate shared metric (see :func:`objective_candidates`) that has a finite final value."""
    x_axes = sorted({s.x_label for digest in digests for s in digest.series if s.x_label != "_step"})
    for key in objective_candidates(metrics, x_axes):
        if any((value := f.get(key)) is not None and math.isfinite(value) for f in finals):
            return Objective(key, direction_of(key), "first shared metric")
    return None


def _rank(
    digests: Sequence[RunDigest],
    objective: Objective | None,
    metrics: Sequence[str],
    finals: Sequence[Mapping[str, float | None]],
    notes: list[str],
) -> tuple[list[int], int | None]:
    """The runs' indexes, best first (runs without a finite value last, in the given order), and the best."""
    if objective is None:
        return list(range(len(digests))), None
    scored: list[tuple[float, bool, int]] = []
    for index, digest in enumerate(digests):
        metric = objective.metric
        value = finals[index].get(metric) if metric in metrics else _final(digest, metric)
        if value is not None and math.isfinite(value):
            # On a tie, a run that finished ranks before one that failed or is still running.
            score = value if objective.goal == "minimize" else -value
            scored.append((score, digest.state != "finished", index))
        elif value is not None:
            notes.append(f"Run {digest.label}: its final {metric} is {value} (not ranked).")
    scored.sort()
    if not scored:
        notes.append(f"No run has a finite final value of {objective.metric}: no best run is marked.")
        return list(range(len(digests))), None
    ranked = [index for _, _, index in scored]
    kept = set(ranked)
    return ranked + [i for i in range(len(digests)) if i not in kept], ranked[0]


def _chart(
    key: str,
    digests: Sequence[RunDigest],
    drawn: Sequence[int],
    colour_of: Mapping[int, int],
    best_index: int | None,
    per_line: int,
    notes: list[str],
) -> ComparisonChart:
    """One shared metric's chart: a line per drawn run that logged it, at most ``per_line`` points each."""
    lines: list[Line] = []
    x_labels: dict[str, int] = {}
    for index in drawn:
        series = digests[index].series_of(key)
        if series is None:
            continue
        xs, ys = series.xs, series.ys
        if len(xs) > per_line:
            kept_xs, kept_ys = envelope(xs, ys, max(1, per_line // 2 - 1))
            xs, ys = tuple(kept_xs), tuple(kept_ys)
        x_labels[series.x_label] = x_labels.get(series.x_label, 0) + 1
        lines.append(
            Line(
                run_id=digests[index].run_id,
                label=digests[index].label,
                colour=colour_of[index],
                xs=tuple(xs),
                ys=tuple(ys),
                logged=max(series.logged, series.points),
                best=index == best_index,
            )
        )
    having = sum(1 for digest in digests if digest.series_of(key) is not None)
    # The x axis most of the drawn runs use.
    x_label = max(x_labels.items(), key=lambda item: item[1])[0] if x_labels else "_step"
    if len(x_labels) > 1:
        notes.append(f"The runs chart {key} against different x axes ({', '.join(sorted(x_labels))}).")
    return ComparisonChart(
        key=key,
        section=section_of(key),
        x_label=x_label,
        lines=tuple(lines),
        not_drawn=having - len(lines),
        without=len(drawn) - len(lines),
    )


def _row(
    index: int,
    digest: RunDigest,
    differing: Sequence[str],
    same: Sequence[tuple[str, Any]],
    finals: Mapping[str, float | None],
    table_metrics: Sequence[str],
    objective: Objective | None,
    notes: list[str],
) -> ComparisonRow:
    """A run's row, and what was skipped of it (added to ``notes`` as well)."""
    run_notes = list(digest.notes)
    if not _metrics_of(digest):
        run_notes.append("no numeric metrics")
    skipped = sum(series.skipped for series in digest.series)
    if skipped:
        run_notes.append(f"{skipped:,} logged values not drawn (not numbers, NaN or infinite)")
    ranked_by = objective.metric if objective is not None else None
    non_finite = [
        key
        for key in table_metrics
        if key != ranked_by and (value := finals.get(key)) is not None and not math.isfinite(value)
    ]
    if non_finite:
        run_notes.append("final value not finite: " + ", ".join(non_finite))
    notes.extend(f"Run {digest.label}: {note}." for note in run_notes)
    inputs = [(name, digest.inputs.get(name, _ABSENT)) for name in differing] + list(same)
    return ComparisonRow(
        run_id=digest.run_id,
        label=digest.label,
        url=safe_url(digest.url),
        task=digest.task,
        action=digest.action,
        inputs=tuple((name, value) for name, value in inputs if value is not _ABSENT),
        state=digest.state,
        finals={key: finals.get(key) for key in table_metrics},
        notes=tuple(run_notes),
    )
