"""The comparison planner (``_compare.plan_comparison``): rows, shared metrics, objective, caps, skips.

Pure: digests are made with ``_digest.digest_history`` from the values each child logged (the
same path a real run's log takes after it is read), so the rows are checked against the logged
values themselves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from flyteplugins.wandb._compare import (
    MissingRun,
    Objective,
    direction_of,
    plan_comparison,
)
from flyteplugins.wandb._digest import RunDigest, SeriesDigest, digest_history
from flyteplugins.wandb._history import Column, RunHistory
from flyteplugins.wandb._offline import OfflineRun


def child(
    run_id: str,
    logged: dict[str, list[Any]],
    *,
    inputs: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    name: str | None = None,
    exit_code: int | None = 0,
    truncated: bool = False,
    url: str | None = None,
) -> RunDigest:
    """The digest of a child that logged ``logged`` (one value per step for each key)."""
    rows = max((len(values) for values in logged.values()), default=0)
    columns = {key: Column(list(range(len(values))), list(values)) for key, values in logged.items()}
    columns["_step"] = Column(list(range(rows)), list(range(rows)))
    final = {key: values[-1] for key, values in logged.items() if values}
    final.update(summary or {})
    run = OfflineRun(
        path=Path("."),
        run_id=run_id,
        name=name,
        exit_code=exit_code,
        summary=final,
        truncated=truncated,
        bytes_read=100 if truncated else 0,
        log_size=200 if truncated else 0,
        config={"flyte": {"task": "fanout.train", "action": f"a-{run_id}", "inputs": inputs or {}}},
    )
    return digest_history(RunHistory(run, columns, rows=rows), url=url)


def losses(start: float, rate: float, steps: int = 50) -> list[float]:
    return [start * math.exp(-rate * step) for step in range(steps)]


def test_rows_hold_each_childs_identity_inputs_state_and_final_logged_values() -> None:
    lrs = [0.1, 0.03, 0.01, 0.003]
    digests = [
        child(f"r{i}", {"loss": losses(1.0, lr), "acc": [1 - v for v in losses(1.0, lr)]}, inputs={"lr": lr})
        for i, lr in enumerate(lrs)
    ]
    comparison = plan_comparison(digests)
    assert [row.run_id for row in comparison.rows] == ["r0", "r1", "r2", "r3"]
    for row, lr in zip(comparison.rows, lrs, strict=True):
        assert row.task == "fanout.train" and row.action == f"a-{row.run_id}"
        assert row.inputs == (("lr", lr),) and row.state == "finished"
        assert row.finals["loss"] == pytest.approx(math.exp(-lr * 49))
        assert row.finals["acc"] == pytest.approx(1 - math.exp(-lr * 49))
    assert set(comparison.metrics) == {"loss", "acc"}


def test_inputs_that_differ_come_first_and_shared_inputs_are_listed_once() -> None:
    digests = [
        child("a", {"loss": [1.0]}, inputs={"epochs": 3, "data": "x", "lr": 0.1, "seed": 1}),
        child("b", {"loss": [0.5]}, inputs={"epochs": 3, "data": "x", "lr": 0.01, "seed": 2}),
    ]
    comparison = plan_comparison(digests)
    assert comparison.differing_inputs == ("lr", "seed")
    assert comparison.same_inputs == (("epochs", 3), ("data", "x"))
    assert [name for name, _ in comparison.rows[0].inputs] == ["lr", "seed", "epochs", "data"]


def test_an_input_only_some_runs_have_differs() -> None:
    digests = [child("a", {"loss": [1.0]}, inputs={"lr": 0.1}), child("b", {"loss": [1.0]}, inputs={})]
    comparison = plan_comparison(digests)
    assert comparison.differing_inputs == ("lr",)
    assert comparison.rows[1].inputs == ()


def test_best_row_minimises_a_loss_and_maximises_an_accuracy() -> None:
    digests = [
        child("a", {"loss": [0.9, 0.4]}),
        child("b", {"loss": [0.8, 0.2]}),
        child("c", {"loss": [0.3]}),
    ]
    comparison = plan_comparison(digests)
    assert comparison.objective == Objective("loss", "minimize", "first shared metric")
    assert comparison.best_run_id == "b"
    assert [row.best for row in comparison.rows] == [False, True, False]

    digests = [child("a", {"accuracy": [0.1, 0.7]}), child("b", {"accuracy": [0.9, 0.6]})]
    comparison = plan_comparison(digests)
    assert comparison.objective == Objective("accuracy", "maximize", "first shared metric")
    assert comparison.best_run_id == "a"


def test_on_a_tie_a_finished_run_is_best_rather_than_a_failed_one() -> None:
    digests = [
        child("failed", {"acc": [0.5, 0.95]}, exit_code=1),
        child("running", {"acc": [0.6, 0.95]}, exit_code=None),
        child("finished", {"acc": [0.7, 0.95]}),
    ]
    comparison = plan_comparison(digests)
    assert comparison.objective == Objective("acc", "maximize", "first shared metric")
    assert comparison.best_run_id == "finished"


def test_a_given_objective_wins_over_the_first_shared_metric() -> None:
    digests = [child("a", {"acc": [0.9], "loss": [0.1]}), child("b", {"acc": [0.8], "loss": [0.05]})]
    assert plan_comparison(digests).objective == Objective("acc", "maximize", "first shared metric")
    sweep = Objective("loss", "minimize", "sweep metric")
    comparison = plan_comparison(digests, objective=sweep)
    assert comparison.objective is sweep and comparison.best_run_id == "b"
    assert comparison.table_metrics[0] == "loss"  # the objective is the first metric column


def test_a_direction_the_runs_declared_is_the_objective() -> None:
    from dataclasses import replace

    digests = [child("a", {"acc": [0.9], "val/err": [0.3]}), child("b", {"acc": [0.8], "val/err": [0.1]})]
    declared = [replace(d, goals={"val/err": "minimize"}) for d in digests]
    comparison = plan_comparison(declared)
    assert comparison.objective == Objective("val/err", "minimize", "define_metric summary")
    assert comparison.best_run_id == "b"
    # Read back from the digests' JSON, as the parent reads its children's.
    again = plan_comparison([RunDigest.from_json(d.to_json()) for d in declared])
    assert again.objective == comparison.objective
    # A direction declared for a glob holds for the metrics it names.
    globbed = plan_comparison([replace(d, goals={"val/*": "minimize"}) for d in digests])
    assert globbed.objective == Objective("val/err", "minimize", "define_metric summary")
    # A given objective (a sweep's metric) still wins.
    given = plan_comparison(declared, objective=Objective("acc", "maximize", "sweep metric"))
    assert given.best_run_id == "a"


def test_counters_and_x_axes_are_never_the_default_objective() -> None:
    digests = [
        child("a", {"epoch": [0, 1], "lr": [0.1, 0.1], "throughput": [5.0, 6.0], "val/f1": [0.2, 0.5]}),
        child("b", {"epoch": [0, 1], "lr": [0.2, 0.2], "throughput": [9.0, 9.0], "val/f1": [0.3, 0.4]}),
    ]
    comparison = plan_comparison(digests)
    assert comparison.objective == Objective("val/f1", "maximize", "first shared metric")
    assert comparison.best_run_id == "a"
    only_counters = plan_comparison([child("a", {"epoch": [1]}), child("b", {"epoch": [2]})])
    assert only_counters.objective is None and only_counters.best_run_id is None


@pytest.mark.parametrize(
    ("metric", "goal"),
    [
        ("loss", "minimize"),
        ("val/loss", "minimize"),
        ("train_rmse", "minimize"),
        ("eval/error-rate", "minimize"),
        ("perplexity", "minimize"),
        ("mae", "minimize"),
        ("accuracy", "maximize"),
        ("val/f1", "maximize"),
        ("reward", "maximize"),
        ("glossary_size", "maximize"),  # "loss" inside a word is not a loss
    ],
)
def test_direction_rule(metric: str, goal: str) -> None:
    assert direction_of(metric) == goal


def test_shared_metrics_are_those_at_least_two_runs_have_and_disjoint_ones_are_listed() -> None:
    digests = [
        child("a", {"loss": [1.0, 0.5], "only_a": [1.0]}),
        child("b", {"loss": [1.0, 0.4], "val/acc": [0.5]}),
        child("c", {"val/acc": [0.7], "only_c": [3.0]}),
    ]
    comparison = plan_comparison(digests)
    assert comparison.metrics == ("loss", "val/acc")
    assert comparison.unshared == (("only_a", "a"), ("only_c", "c"))
    assert [chart.key for chart in comparison.charts] == ["loss", "val/acc"]
    by_key = {chart.key: chart for chart in comparison.charts}
    assert [line.run_id for line in by_key["loss"].lines] == ["b", "a"]  # best (lowest loss) first
    assert by_key["loss"].without == 1  # c is drawn elsewhere, has no loss
    assert comparison.rows[2].finals["loss"] is None


def test_entirely_disjoint_metrics_chart_nothing_and_say_so() -> None:
    comparison = plan_comparison([child("a", {"x": [1.0]}), child("b", {"y": [2.0]})])
    assert comparison.metrics == () and comparison.charts == () and comparison.objective is None
    assert comparison.unshared == (("x", "a"), ("y", "b"))
    assert any("share no metric" in note for note in comparison.notes)


def test_a_single_run_shares_all_its_metrics() -> None:
    comparison = plan_comparison([child("a", {"loss": [1.0, 0.5], "acc": [0.2, 0.4]})])
    assert set(comparison.metrics) == {"loss", "acc"} and len(comparison.charts) == 2


def test_nan_and_infinite_finals_are_shown_not_ranked() -> None:
    digests = [
        child("diverged", {"loss": [1.0, float("nan")]}),
        child("exploded", {"loss": [1.0, 2.0]}, summary={"loss": float("inf")}),
        child("fine", {"loss": [1.0, 0.3]}),
    ]
    comparison = plan_comparison(digests)
    diverged, exploded, fine = comparison.rows
    assert fine.best
    assert diverged.finals["loss"] is not None and math.isnan(diverged.finals["loss"])  # the summary: NaN
    assert exploded.finals["loss"] == math.inf
    assert comparison.best_run_id == "fine"
    assert any("diverged" in note and "not ranked" in note for note in comparison.notes)
    assert any("diverged" in note and "not drawn" in note for note in comparison.notes)  # the NaN point
    loss = comparison.charts[0]
    assert all(all(math.isfinite(y) for y in line.ys) for line in loss.lines)


def test_no_finite_objective_value_marks_no_best_row() -> None:
    digests = [child("a", {"loss": [float("nan")]}), child("b", {"loss": [float("nan")]})]
    comparison = plan_comparison(digests, objective=Objective("loss", "minimize", "sweep metric"))
    assert comparison.best_run_id is None and not any(row.best for row in comparison.rows)
    assert any("no best run" in note for note in comparison.notes)


def test_runs_without_numeric_metrics_are_rows_that_say_so() -> None:
    digests = [child("a", {"text": ["hello"]}), child("b", {"loss": [1.0]}), child("c", {"loss": [0.5]})]
    comparison = plan_comparison(digests)
    assert "no numeric metrics" in comparison.rows[0].notes
    assert comparison.rows[0].finals == {"loss": None}
    assert [line.run_id for line in comparison.charts[0].lines] == ["c", "b"]
    assert not comparison.rows[0].drawn


def test_truncated_logs_are_noted_on_their_row() -> None:
    digests = [child("a", {"loss": [1.0, 0.5]}, truncated=True, exit_code=None), child("b", {"loss": [0.2]})]
    comparison = plan_comparison(digests)
    assert comparison.rows[0].state == "running"
    assert any("up to byte 100 of 200" in note for note in comparison.rows[0].notes)
    assert any(note.startswith("Run a: the log could be read only") for note in comparison.notes)


def test_missing_children_are_rows_with_their_reason() -> None:
    missing = [
        MissingRun("fanout.train", "a7", "failed before its run ended"),
        MissingRun("fanout.eval", None, "no W&B run (no @wandb_init)"),
    ]
    comparison = plan_comparison([child("a", {"loss": [1.0]}), child("b", {"loss": [0.5]})], missing)
    assert [(row.label, row.state, row.reason) for row in comparison.rows[2:]] == [
        ("a7", "missing", "failed before its run ended"),
        ("fanout.eval", "missing", "no W&B run (no @wandb_init)"),
    ]
    assert all(row.missing and row.run_id is None for row in comparison.rows[2:])
    only_missing = plan_comparison([], missing)
    assert len(only_missing.rows) == 2 and only_missing.charts == ()


def test_lines_are_capped_keeping_the_best_runs_and_each_run_its_colour() -> None:
    digests = [child(f"r{i:02d}", {"loss": losses(1.0, 0.001 * (i + 1)), "acc": [i / 30]}) for i in range(30)]
    comparison = plan_comparison(digests, max_lines=5)
    loss = comparison.charts[0] if comparison.charts[0].key == "loss" else comparison.charts[1]
    # The lowest final loss: the fastest decay, the last runs.
    assert [line.run_id for line in loss.lines] == ["r29", "r28", "r27", "r26", "r25"]
    assert loss.not_drawn == 25
    assert any("25 more runs are not drawn" in note for note in comparison.notes)
    colours = {row.run_id: row.colour for row in comparison.rows if row.drawn}
    for chart in comparison.charts:
        assert all(colours[line.run_id] == line.colour for line in chart.lines)
    assert [row.run_id for row in comparison.drawn_rows] == ["r29", "r28", "r27", "r26", "r25"]


def test_long_lines_are_downsampled_to_their_share_keeping_extremes() -> None:
    spike = [1.0] * 2000
    spike[777], spike[1500] = 50.0, -20.0
    digests = [child(f"r{i}", {"m": [v + i for v in spike]}) for i in range(10)]
    comparison = plan_comparison(digests, point_budget=1000)
    (chart,) = comparison.charts
    for line, i in zip(sorted(chart.lines, key=lambda line: line.run_id), range(10), strict=True):
        assert line.points <= 100
        assert max(line.ys) == 50.0 + i and min(line.ys) == -20.0 + i
        assert line.xs[0] == 0.0 and line.xs[-1] == 1999.0
    assert chart.downsampled


def test_charts_are_capped_and_in_sections() -> None:
    logged = {f"s{i % 3}/m{i:02d}": [1.0, 2.0] for i in range(30)}
    comparison = plan_comparison([child("a", logged), child("b", logged)], max_charts=10)
    assert len(comparison.charts) == 10 and len(comparison.charts_left_out) == 20
    assert [section for section, _ in comparison.sections()] == ["s0", "s1", "s2"][
        : len(comparison.sections())
    ]
    assert len(comparison.table_metrics) == 16


def test_urls_other_than_http_are_dropped() -> None:
    digests = [
        child("a", {"loss": [1.0]}, url="javascript:alert(1)"),
        child("b", {"loss": [1.0]}, url="https://wandb.ai/e/p/runs/b"),
    ]
    assert [row.url for row in plan_comparison(digests).rows] == [None, "https://wandb.ai/e/p/runs/b"]


def test_digests_read_back_from_json_plan_the_same() -> None:
    digests = [child("a", {"loss": [1.0, float("nan")]}), child("b", {"loss": losses(1.0, 0.1)})]
    again = [RunDigest.from_json(d.to_json()) for d in digests]
    first, second = plan_comparison(digests), plan_comparison(again)
    assert first.best_run_id == second.best_run_id == "b"
    assert [c.lines for c in first.charts] == [c.lines for c in second.charts]
    assert math.isnan(second.rows[0].finals["loss"] or 0.0)


def test_summary_only_metrics_are_compared_in_the_table_not_charted() -> None:
    digests = [
        RunDigest("a", summary={"best_acc": 0.8}, series=(SeriesDigest("loss", "_step", (0.0,), (1.0,)),)),
        RunDigest("b", summary={"best_acc": 0.9}, series=(SeriesDigest("loss", "_step", (0.0,), (2.0,)),)),
    ]
    comparison = plan_comparison(digests)
    assert "best_acc" in comparison.table_metrics
    assert [chart.key for chart in comparison.charts] == ["loss"]


def test_directions_declared_with_define_metric_are_read_from_the_log(wandb_root: Path) -> None:
    import wandb

    from flyteplugins.wandb._digest import digest_run
    from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

    run = wandb.init(project="goals")
    run.define_metric("val/loss", summary="min")
    run.define_metric("acc", summary="max")
    run.define_metric("both", summary="min,max")  # no single direction
    run.define_metric("plain")
    run.log({"val/loss": 0.5, "acc": 0.7, "both": 1.0, "plain": 2.0})
    run.finish()
    (run_dir,) = find_offline_run_dirs(wandb_root, run.id)
    assert read_offline_run(run_dir, wait=20).metric_goals == {"val/loss": "minimize", "acc": "maximize"}
    digest = digest_run(run_dir)
    assert digest.goals == {"val/loss": "minimize", "acc": "maximize"}
    assert RunDigest.from_json(digest.to_json()).goals == digest.goals


def test_what_every_run_shares_is_said_once() -> None:
    from dataclasses import replace

    digests = [
        replace(child("a", {"loss": [1.0]}), project="p", group="sweep-1", parent_run_id="parent"),
        replace(child("b", {"loss": [0.5]}), project="p", group="sweep-1", parent_run_id="parent"),
    ]
    assert plan_comparison(digests).common == (
        ("project", "p"),
        ("group", "sweep-1"),
        ("parent run", "parent"),
        ("task", "fanout.train"),
    )
    digests[1] = replace(digests[1], group=None)
    assert ("group", "sweep-1") not in plan_comparison(digests).common
    assert plan_comparison(digests[:1]).common == ()


def test_a_sweeps_metric_setting_is_an_objective() -> None:
    from flyteplugins.wandb._settings import SweepMetric

    assert Objective.from_sweep_metric(SweepMetric(name="val/acc", goal="maximize")) == Objective(
        "val/acc", "maximize", "sweep metric"
    )
    assert Objective.from_sweep_metric({"name": "loss"}) == Objective("loss", "minimize", "sweep metric")
    assert Objective.from_sweep_metric({"goal": "maximize"}) is None
    digests = [child("a", {"loss": [0.2], "acc": [0.9]}), child("b", {"loss": [0.1], "acc": [0.8]})]
    objective = Objective.from_sweep_metric({"name": "acc", "goal": "maximize"})
    assert plan_comparison(digests, objective=objective).best_run_id == "a"
