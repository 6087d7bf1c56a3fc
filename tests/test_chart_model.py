"""The report's chart model: which charts, grouped how, and the points drawn (before and after
the envelope)."""

from __future__ import annotations

import math
import random

from flyteplugins.wandb._chart_model import UNGROUPED, envelope, integer_ticks, plan_charts, section_of
from flyteplugins.wandb._history import Column


def _column(values: list[object]) -> Column:
    return Column(rows=list(range(len(values))), values=list(values))


def test_short_series_are_drawn_exactly_as_logged() -> None:
    values = [0.9, 0.5, 0.25, 0.125]
    model = plan_charts({"loss": _column(values)}, steps=[0, 1, 2, 3])
    (chart,) = model.charts
    assert (chart.xs, chart.ys, chart.logged, chart.downsampled) == ([0, 1, 2, 3], values, 4, False)


def test_envelope_keeps_every_extreme_and_only_logged_points() -> None:
    rng = random.Random(7)
    for count in (1, 2, 50, 1_001, 20_000):
        xs = [float(i) for i in range(count)]
        ys = [rng.gauss(0, 1) for _ in range(count)]
        if count > 10:
            ys[count // 3] = 50.0  # a spike that smoothing would hide
            ys[count // 2] = -50.0
        out_x, out_y = envelope(xs, ys, 100)
        assert len(out_x) <= max(count, 202)
        assert out_x == sorted(out_x)
        assert max(out_y) == max(ys) and min(out_y) == min(ys)
        assert (out_x[0], out_x[-1]) == (xs[0], xs[-1])
        logged = dict(zip(xs, ys, strict=True))
        assert all(logged[x] == y for x, y in zip(out_x, out_y, strict=True))


def test_envelope_keeps_each_buckets_min_and_max() -> None:
    xs = list(range(1_000))
    ys = [math.sin(x / 7.0) * (x % 13) for x in xs]
    out_x, _ = envelope(xs, ys, 10)
    kept = set(out_x)
    for bucket in range(10):
        indexes = range(bucket * 100, (bucket + 1) * 100)
        assert min(indexes, key=ys.__getitem__) in kept
        assert max(indexes, key=ys.__getitem__) in kept


def test_long_series_are_downsampled_to_their_share_of_points() -> None:
    steps = list(range(20_000))
    columns = {f"m{k}": _column([math.sin(s / (k + 5)) for s in steps]) for k in range(10)}
    model = plan_charts(columns, steps)
    assert len(model.charts) == 10
    for chart in model.charts:
        assert chart.logged == 20_000 and chart.downsampled
        assert len(chart.xs) <= 500
        assert max(chart.ys) == max(columns[chart.key].values)
        assert min(chart.ys) == min(columns[chart.key].values)


def test_non_numeric_nan_and_infinite_values_are_skipped_and_counted() -> None:
    values: list[object] = [1.0, float("nan"), "text", float("inf"), None, True, 2, {"_type": "image-file"}]
    model = plan_charts({"acc": _column(values)}, steps=list(range(len(values))))
    (chart,) = model.charts
    assert (chart.xs, chart.ys) == ([0, 6], [1.0, 2.0])
    assert chart.skipped == 6 and model.skipped_values == 6


def test_keys_without_numbers_and_wandb_keys_are_not_charted() -> None:
    columns = {
        "_runtime": _column([1.0, 2.0]),
        "_timestamp": _column([1.0, 2.0]),
        "samples": _column([{"_type": "table-file"}, {"_type": "table-file"}]),
        "loss": _column([1.0, 0.5]),
    }
    model = plan_charts(columns, steps=[0, 1])
    assert [c.key for c in model.charts] == ["loss"]
    assert model.not_numeric == ["samples"]


def test_metrics_are_grouped_by_their_prefix_like_wandb() -> None:
    assert section_of("train/loss") == "train"
    assert section_of("eval/top/1") == "eval"
    assert section_of("loss") == UNGROUPED
    assert section_of("/odd") == UNGROUPED
    columns = {key: _column([1.0]) for key in ("val/acc", "lr", "train/loss", "train/acc", "epoch")}
    model = plan_charts(columns, steps=[0])
    assert [(name, [c.key for c in charts]) for name, charts in model.sections()] == [
        (UNGROUPED, ["epoch", "lr"]),
        ("train", ["train/acc", "train/loss"]),
        ("val", ["val/acc"]),
    ]


def test_many_metrics_are_capped_and_the_rest_named() -> None:
    columns = {f"m{k:03d}": _column([float(k)]) for k in range(60)}
    model = plan_charts(columns, steps=[0], max_charts=48)
    assert len(model.charts) == 48
    assert model.left_out == [f"m{k:03d}" for k in range(48, 60)]


def test_declared_step_metric_is_the_x_axis() -> None:
    # run.define_metric("val/*", step_metric="epoch"): validation logged once per epoch.
    columns = {
        "epoch": Column(rows=[0, 3, 6], values=[0, 1, 2]),
        "val/acc": Column(rows=[0, 3, 6], values=[0.5, 0.7, 0.8]),
        "train/loss": Column(rows=list(range(7)), values=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]),
    }
    model = plan_charts(columns, steps=[0, 1, 2, 3, 4, 5, 6], step_metrics={"val/*": "epoch"})
    by_key = {c.key: c for c in model.charts}
    assert (by_key["val/acc"].x_label, by_key["val/acc"].xs) == ("epoch", [0, 1, 2])
    assert (by_key["train/loss"].x_label, by_key["train/loss"].xs) == ("_step", list(range(7)))
    # epoch is the x axis of val/acc: an axis only, not a chart of its own.
    assert sorted(by_key) == ["train/loss", "val/acc"] and model.x_axes == ["epoch"]
    assert "epoch" not in model.not_numeric and "epoch" not in model.left_out


def test_a_declared_step_metric_without_charted_metrics_is_charted() -> None:
    # define_metric("val/*", step_metric="epoch") but nothing under val/ logged: epoch is a metric.
    columns = {"epoch": Column(rows=[0, 1], values=[0, 1]), "loss": Column(rows=[0, 1], values=[1.0, 0.5])}
    model = plan_charts(columns, steps=[0, 1], step_metrics={"val/*": "epoch"})
    assert [c.key for c in model.charts] == ["epoch", "loss"] and model.x_axes == []


def test_integer_axes_get_whole_number_ticks_without_duplicates() -> None:
    for low, high in [(0, 3), (0, 1), (0, 7), (1, 4), (0, 49), (0, 19_999), (3, 3), (-5, 5), (10, 1_234_567)]:
        for count in (2, high - low + 1) if high > low else (1,):
            xs = sorted(
                {
                    float(low),
                    float(high),
                    *(float(low + (high - low) * i // max(1, count - 1)) for i in range(count)),
                }
            )
            ticks = integer_ticks(xs)
            assert ticks is not None and ticks == sorted(set(ticks)), (low, high, ticks)
            assert all(isinstance(t, int) and low <= t <= high for t in ticks)
            assert 1 <= len(ticks) <= 6
            if high - low >= 2:
                assert len(ticks) >= 3
    # The issue's axis (0, 0.6, 1.4, 2.2 for steps 0-3) and a fractional one.
    assert integer_ticks([0.0, 1.0, 2.0, 3.0]) == [0, 1, 2, 3]
    assert integer_ticks([0.0, 0.5, 1.0]) is None


def _grow(columns: dict[str, Column], source: dict[str, Column], rows: int) -> list[int]:
    """Copy into ``columns`` every value of ``source`` logged before row ``rows``; the steps so far."""
    for key, column in source.items():
        target = columns.setdefault(key, Column())
        while len(target.rows) < len(column.rows) and column.rows[len(target.rows)] < rows:
            target.rows.append(column.rows[len(target.rows)])
            target.values.append(column.values[len(target.values)])
    return list(range(rows))


def test_planning_a_growing_run_again_gives_what_planning_it_once_gives() -> None:
    # The helper that follows a run's log plans after each read; each plan must be exactly the
    # plan of the whole history read so far: values, skipped counts, x axes, cap, envelope.
    rng = random.Random(7)
    total = 3_000
    source: dict[str, Column] = {
        "epoch": Column(rows=list(range(0, total, 100)), values=list(range(total // 100))),
        "val/acc": Column(
            rows=list(range(0, total, 100)), values=[rng.random() for _ in range(total // 100)]
        ),
        # Goes down now and then: drawn in x order.
        "lr": Column(rows=list(range(total)), values=[1.0] * total),
        "odd": Column(
            rows=list(range(1, total, 2)),
            values=[rng.choice([1.0, "x", math.nan, True, 2]) for _ in range(1, total, 2)],
        ),
    }
    for k in range(6):
        source[f"train/m{k}"] = Column(
            rows=list(range(total)), values=[rng.gauss(0, 1) for _ in range(total)]
        )
    source["epoch_like"] = Column(rows=list(range(total)), values=[rng.randrange(50) for _ in range(total)])
    from flyteplugins.wandb._chart_model import ChartPlanner

    planner = ChartPlanner()
    columns: dict[str, Column] = {}
    rows = 0
    step_metrics: dict[str, str] = {}
    plans = 0
    while rows < total:
        rows = min(total, rows + rng.randrange(1, 400))
        if rows > total // 2:
            # A define_metric read halfway through changes two metrics' x axes.
            step_metrics = {"val/*": "epoch", "lr": "epoch_like"}
        steps = _grow(columns, source, rows)
        incremental = planner.plan(columns, steps, step_metrics, max_charts=8, point_budget=1_000)
        fresh = plan_charts(columns, steps, step_metrics, max_charts=8, point_budget=1_000)
        assert incremental == fresh
        plans += 1
    assert plans > 5
    final = planner.plan(columns, list(range(total)), step_metrics, max_charts=8, point_budget=1_000)
    by_key = {c.key: c for c in final.charts}
    assert by_key["lr"].x_label == "epoch_like" and by_key["lr"].xs == sorted(by_key["lr"].xs)
    assert by_key["odd"].skipped > 0 and final.left_out


def test_planner_reads_a_column_again_when_it_was_replaced() -> None:
    from flyteplugins.wandb._chart_model import ChartPlanner

    planner = ChartPlanner()
    planner.plan({"loss": Column([0, 1, 2], [3.0, 2.0, 1.0])}, steps=[0, 1, 2])
    # The log was read again from its start (a reader that starts over): other rows.
    model = planner.plan({"loss": Column([0, 2, 4, 5], [5.0, 4.0, 3.0, 2.0])}, steps=list(range(6)))
    assert (model.charts[0].xs, model.charts[0].ys) == ([0.0, 2.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0])


def test_planner_sorts_a_series_whose_new_values_go_back_in_x() -> None:
    from flyteplugins.wandb._chart_model import ChartPlanner

    planner = ChartPlanner()
    columns = {"epoch": Column([0, 1, 2], [0, 1, 2]), "acc": Column([0, 1, 2], [0.1, 0.2, 0.3])}
    planner.plan(columns, [0, 1, 2], {"acc": "epoch"})
    # Each read is in order, but the second starts below where the first ended.
    columns["epoch"].rows += [3, 4]
    columns["epoch"].values += [1.5, 3]
    columns["acc"].rows += [3, 4]
    columns["acc"].values += [0.25, 0.4]
    (chart,) = [c for c in planner.plan(columns, [0, 1, 2, 3, 4], {"acc": "epoch"}).charts if c.key == "acc"]
    assert chart.xs == [0.0, 1.0, 1.5, 2.0, 3.0]
    assert chart.ys == [0.1, 0.2, 0.25, 0.3, 0.4]


def test_integers_too_large_for_a_float_are_skipped_and_counted() -> None:
    model = plan_charts({"big": _column([1, 10**400, 3]), "all_big": _column([10**400])}, steps=[0, 1, 2])
    (chart,) = model.charts
    assert (chart.key, chart.ys, chart.skipped) == ("big", [1.0, 3.0], 1)
    assert model.not_numeric == ["all_big"]
