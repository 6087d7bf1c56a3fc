"""The report page, rendered from real offline runs' transaction logs (real wandb, no server)."""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flyteplugins.wandb._chart_model import plan_charts
from flyteplugins.wandb._history import Column, RunHistory, read_history
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run
from flyteplugins.wandb._report import (
    ReportContext,
    _flatten,
    read_when_finished,
    render_page,
    render_report,
    safe_url,
)

HOSTILE_KEY = "<script>alert('k')</script>/$\\alpha$ & \"q\""


def make_run(
    wandb_root: Path, log: Callable[[Any], None], *, config: dict[str, Any] | None = None, **init: Any
) -> Path:
    """A finished offline run written by real wandb; returns its directory."""
    import wandb

    run = wandb.init(project="reports", config=config or {}, **init)
    log(run)
    run.finish()
    (run_dir,) = find_offline_run_dirs(wandb_root, run.id)
    return run_dir


def _losses(run: Any) -> None:
    for step in range(50):
        run.log({"train/loss": 1.0 / (step + 1), "train/acc": step / 50, "lr": 0.1})
    run.log({"eval/accuracy": 0.9, "note": "done", "train/loss": float("nan")})


def test_history_reader_agrees_with_the_offline_reader(wandb_root: Path) -> None:
    run_dir = make_run(wandb_root, _losses, config={"lr": 0.1, "layers": [64, 32]})
    full = read_offline_run(run_dir, wait=10)
    history = read_when_finished(run_dir, wait=10)
    assert history.rows == len(full.history) == 51
    for key in ("train/loss", "train/acc", "lr", "eval/accuracy", "note", "_step"):
        assert history.columns[key].values == full.column(key), key
    assert history.run.summary == full.summary
    assert history.run.config == full.config
    assert (history.run.finished, history.run.truncated) == (True, False)
    assert history.run.bytes_read == history.run.log_size > 0


def _every_kind_of_summary(run: Any) -> None:
    run.define_metric("acc", summary="max")
    run.define_metric("val/loss", summary="min")
    run.define_metric("quiet", summary="none")
    run.summary["tmp"] = 1
    for step in range(60):
        if step == 30:
            # From now on wandb leaves it out of the summary it derives from each row.
            run.define_metric("late_quiet", summary="none")
        row: dict[str, Any] = {"loss": 1.0 / (step + 1), "acc": (step % 17) / 17, "quiet": step}
        row["late_quiet"] = step
        if step % 7 == 0 and step < 40:
            row["val/loss"] = 2.0 - step / 30  # sparse, and not logged at the end
        if step % 11 == 0:
            row["opt"] = {"lr": 0.1 / (step + 1), "momentum": 0.9}  # nested: several key parts
        if step == 20:
            run.summary["best"] = 0.25  # set by hand mid-run
            run.summary.update({"loss": 0.125})  # until the next row with a loss
            del run.summary["tmp"]
        if step % 5 == 0:
            run.log({"partial": step}, commit=False)
        run.log(row)
    run.log({"text": "done", "none": None}, step=70)


@pytest.mark.smoke  # the flat reading of records depends on wandb's protobuf schema
def test_history_reader_reads_every_kind_of_summary_as_the_offline_reader(wandb_root: Path) -> None:
    # The reader decodes only the summary records it needs; the offline reader folds them all.
    run_dir = make_run(wandb_root, _every_kind_of_summary)
    full = read_offline_run(run_dir, wait=10)
    history = read_when_finished(run_dir, wait=10)
    assert history.rows == len(full.history)
    keys = {key for row in full.history for key in row}
    assert {"loss", "acc", "val/loss", "quiet", "opt", "partial", "text", "_step"} <= keys
    for key in keys - {"opt"}:
        assert history.columns[key].values == full.column(key), key
    # A nested value is logged as one item per leaf ("opt.lr"): read the slow way, item by item.
    assert history.columns["opt.lr"].values == [opt["lr"] for opt in full.column("opt")]
    assert len(history.columns["opt.momentum"].values) == 6
    # Nested keys are dotted in the reader, nested in the offline reader: the page shows them dotted.
    assert dict(_flatten(history.run.summary)) == dict(_flatten(full.summary))
    assert history.run.summary["acc"] == {"max": 16 / 17}
    assert history.run.summary["best"] == 0.25
    assert "tmp" not in history.run.summary and "quiet" not in history.run.summary


@pytest.mark.smoke  # the flat reading of records depends on wandb's protobuf schema
def test_a_row_summary_that_is_not_its_rows_falls_back_to_folding_every_summary(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flyteplugins.wandb import _history

    run_dir = make_run(wandb_root, _every_kind_of_summary)
    read_when_finished(run_dir, wait=10)  # wandb's service writes the log's end after finish()
    exact = _history.HistoryReader(run_dir, row_summaries=False)
    exact.update()
    expected = exact.result().run.summary
    # As if wandb wrote a row's summary after the row: the one before a row has another step.
    read = _history.HistoryReader._read_row_summary
    monkeypatch.setattr(
        _history.HistoryReader,
        "_read_row_summary",
        lambda self, row: [(k, "-1" if k == "_step" else v) for k, v in read(self, row)],
    )
    assert read_history(run_dir).run.summary == expected
    assert dict(_flatten(expected)) == dict(_flatten(read_offline_run(run_dir).summary))


def test_explicit_summary_values_win_over_the_last_logged_value(wandb_root: Path) -> None:
    def log(run: Any) -> None:
        for step in range(5):
            run.log({"loss": 5 - step})
        run.summary["loss"] = 0.5  # the best, set by hand after training
        run.summary["best_epoch"] = 3
        run.log({"other": 1})

    run_dir = make_run(wandb_root, log)
    history = read_when_finished(run_dir, wait=10)
    full = read_offline_run(run_dir, wait=10)
    assert history.run.summary["loss"] == full.summary["loss"] == 0.5
    assert history.run.summary["best_epoch"] == 3
    assert history.run.summary == full.summary


def test_page_structure(wandb_root: Path) -> None:
    run_dir = make_run(wandb_root, _losses, config={"lr": 0.1, "optimizer": {"name": "adam"}}, name="r1")
    page = render_report(
        read_when_finished(run_dir, wait=10), ReportContext(url="https://wandb.ai/e/reports/runs/x")
    )
    assert page.startswith('<section class="fw-report"')
    assert "<h2>Weights &amp; Biases</h2>" in page
    assert 'href="https://wandb.ai/e/reports/runs/x"' in page
    assert "wandb sync " + str(run_dir) in page
    # One figure per numeric metric, each with its inline SVG; sections by prefix.
    figures = re.findall(r'<figure data-metric="([^"]+)">', page)
    assert figures == ["lr", "eval/accuracy", "train/acc", "train/loss"]
    assert page.count("<svg") == 4
    assert [h for h in re.findall(r"<h4>([^<]+)</h4>", page)] == ["Charts", "eval", "train"]
    # Config and summary tables, nested config flattened; the NaN was skipped and counted.
    assert "<td>optimizer.name</td><td>adam</td>" in page
    assert "<td>eval/accuracy</td><td>0.9</td>" in page
    assert "Logged but not charted (no numeric values): note" in page
    assert "1 logged values are not drawn" in page
    # Self-contained: no script, nothing fetched.
    assert "<script" not in page.lower() and "http://www.w3.org/2000/svg" in page
    assert not re.search(r'(src|href)="(?!https://wandb\.ai/)', page)
    assert render_page(page).startswith("<!doctype html>")


def _path_points(svg: str) -> list[tuple[float, float]]:
    (d,) = re.findall(r'<path d="M([^"]+)" class="line reactive nofill"', svg)
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", d)]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def test_drawn_points_are_the_logged_values_before_and_after_downsampling() -> None:
    steps = list(range(20_000))
    ys = [math.sin(s / 300) + (3.0 if s == 12_345 else 0.0) - (4.0 if s == 777 else 0.0) for s in steps]
    short = [0.5, 0.25, 1.0, 0.75]
    run = OfflineRun(path=Path("/tmp/x"), run_id="r")
    history = RunHistory(
        run,
        {"long": Column(steps, ys), "short": Column([0, 1, 2, 3], short), "_step": Column(steps, steps)},
        len(steps),
    )
    model = plan_charts(history.columns, history.steps())
    charts = {c.key: c for c in model.charts}
    page = render_report(history)
    svgs = dict(re.findall(r'<figure data-metric="([^"]+)">.*?(<svg.*?</svg>)', page, flags=re.S))

    # Before downsampling: every logged point, in the same vertical order as the values.
    points = _path_points(svgs["short"])
    assert len(points) == len(short)
    assert [p[1] for p in sorted(points, key=lambda p: p[1])] == [
        points[i][1] for i in sorted(range(4), key=lambda i: -short[i])
    ]
    # After: the drawn points are logged points, and the spike and the dip are among them.
    long_chart = charts["long"]
    assert long_chart.downsampled and len(long_chart.xs) <= 500
    assert all(ys[int(x)] == y for x, y in zip(long_chart.xs, long_chart.ys, strict=True))
    assert {12_345, 777} <= {int(x) for x in long_chart.xs}
    points = _path_points(svgs["long"])
    assert len(points) == len(long_chart.xs)
    top = min(range(len(points)), key=lambda i: points[i][1])
    bottom = max(range(len(points)), key=lambda i: points[i][1])
    assert (long_chart.xs[top], long_chart.xs[bottom]) == (12_345, 777)


def _decay(steps: list[int], k: int) -> Column:
    return Column(steps, [math.exp(-s / 5000) + 0.01 * math.sin(s * k) for s in steps])


def test_twenty_thousand_steps_of_ten_metrics_stay_under_a_megabyte() -> None:
    steps = list(range(20_000))
    columns = {
        f"group{k % 3}/metric{k}": Column(
            steps, [math.exp(-s / 5000) + 0.01 * math.sin(s * k) for s in steps]
        )
        for k in range(10)
    }
    history = RunHistory(OfflineRun(path=Path("/tmp/x"), run_id="r"), columns, len(steps))
    page = render_page(render_report(history))
    assert page.count("<svg") == 10
    assert len(page.encode()) < 1_000_000


def test_very_many_metrics_are_capped_with_a_note() -> None:
    columns = {f"m{k:03d}": Column([0, 1], [1.0, 2.0]) for k in range(60)}
    page = render_report(RunHistory(OfflineRun(path=Path("/tmp/x"), run_id="r"), columns, 2))
    assert page.count("<figure") == 48
    assert "48 charts are shown; 12 more metrics are left out: m048, m049" in page


def test_hostile_names_and_values_are_escaped(wandb_root: Path) -> None:
    def log(run: Any) -> None:
        run.log({HOSTILE_KEY: 1.0, "ok": 2.0})
        run.log({HOSTILE_KEY: 3.0, "ok": 1.0})

    run_dir = make_run(
        wandb_root,
        log,
        name="<img src=x onerror=alert('name')>",
        config={"<b>key</b>": "\"><script>alert('config')</script>", "api_key": "sekrit-value"},
        tags=["<i>tag</i>"],
    )
    page = render_report(
        read_when_finished(run_dir, wait=10),
        ReportContext(url="javascript:alert('url')", notes=("<u>note</u>",)),
    )
    assert "<script" not in page.lower()
    assert "<img" not in page and "<b>key" not in page and "<i>tag" not in page and "<u>note" not in page
    assert "javascript:" not in page
    assert "&lt;script&gt;alert(&#x27;k&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(&#x27;name&#x27;)&gt;" in page
    # A value under a credential-like name is hidden; matplotlib-style $math$ stays literal text.
    assert "sekrit-value" not in page and "<td>api_key</td><td>&lt;hidden&gt;</td>" in page
    assert "$\\alpha$" in page
    # The chart's accessible name is its metric, escaped; pygal's random ids are gone.
    title = "&lt;script&gt;alert(&#x27;k&#x27;)&lt;/script&gt;/$\\alpha$ &amp; &quot;q&quot;"
    assert f"<title>{title}</title>" in page
    assert 'id="chart-' not in page and page == render_report(
        read_when_finished(run_dir, wait=10),
        ReportContext(url="javascript:alert('url')", notes=("<u>note</u>",)),
    )


def test_only_http_links_are_used() -> None:
    assert safe_url("https://wandb.ai/a/b/runs/c") == "https://wandb.ai/a/b/runs/c"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example/x", "file:///etc/passwd", ""):
        assert safe_url(bad) is None


def test_a_truncated_log_shows_what_was_read_and_where_reading_stopped(
    wandb_root: Path, tmp_path: Path
) -> None:
    def log(run: Any) -> None:
        for step in range(400):
            run.log({"loss": 1.0 / (step + 1), "text": "x" * 200})

    run_dir = make_run(wandb_root, log)
    read_offline_run(run_dir, wait=10)
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    (log_file,) = copy.glob("run-*.wandb")
    size = log_file.stat().st_size
    with open(log_file, "r+b") as handle:
        handle.truncate(int(size * 0.6) + 3)  # mid-record
    history = read_history(copy)
    assert history.run.truncated and 0 < history.run.bytes_read < int(size * 0.6) + 3
    assert 0 < history.rows < 400
    page = render_report(history)
    assert f"reading stopped at byte {history.run.bytes_read:,} of {int(size * 0.6) + 3:,}" in page
    assert f"The page shows the {history.rows:,} steps read" in page
    assert '<figure data-metric="loss">' in page


def test_a_file_that_is_not_a_log_gives_a_page_that_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "offline-run-20250101_120000-abc"
    run_dir.mkdir()
    (run_dir / "run-abc.wandb").write_bytes(b"definitely not a wandb log")
    page = render_report(run_dir)
    assert "The run&#x27;s files could not be read" in page and "not a wandb transaction log" in page


def test_a_run_without_numeric_metrics_says_so(wandb_root: Path) -> None:
    run_dir = make_run(wandb_root, lambda run: run.log({"status": "started"}))
    page = render_report(read_when_finished(run_dir, wait=10))
    assert "No numeric metrics were logged to this run." in page and "<svg" not in page


def test_without_the_drawing_library_the_page_says_how_to_get_charts(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    run_dir = make_run(wandb_root, _losses)
    monkeypatch.setitem(sys.modules, "pygal", None)  # as if the "report" extra were not installed
    page = render_report(read_when_finished(run_dir, wait=10))
    assert "<svg" not in page and '<figure data-metric="train/loss">' in page
    assert "pip install &#x27;flyteplugins-wandb[report]&#x27;" in page


def test_declared_step_metric_is_the_charts_x_axis(wandb_root: Path) -> None:
    def log(run: Any) -> None:
        run.define_metric("epoch")
        run.define_metric("val/*", step_metric="epoch")
        for epoch in range(3):
            for _ in range(4):
                run.log({"train/loss": 1.0})
            run.log({"val/acc": 0.5 + epoch / 10, "epoch": epoch})

    run_dir = make_run(wandb_root, log)
    history = read_when_finished(run_dir, wait=10)
    assert history.run.step_metrics.get("val/*") == "epoch"
    charts = {
        c.key: c for c in plan_charts(history.columns, history.steps(), history.run.step_metrics).charts
    }
    assert (charts["val/acc"].x_label, charts["val/acc"].xs) == ("epoch", [0, 1, 2])
    assert charts["train/loss"].x_label == "_step"


def test_waiting_for_the_exit_record_reads_only_the_logs_end(wandb_root: Path, tmp_path: Path) -> None:
    from flyteplugins.wandb._history import log_has_exit

    run_dir = make_run(wandb_root, _losses)
    history = read_when_finished(run_dir, wait=10)
    assert history.run.finished and log_has_exit(run_dir)
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    (log_file,) = copy.glob("run-*.wandb")
    with open(log_file, "r+b") as handle:
        handle.truncate(log_file.stat().st_size - 20)  # the exit record cut off
    assert not log_has_exit(copy)
    started = time.monotonic()
    assert not read_when_finished(copy, wait=0.3).run.finished
    assert time.monotonic() - started < 5


def _x_tick_labels(svg: str) -> list[str]:
    (axis,) = re.findall(r'<g class="axis x[^"]*">(.*?)</g></g>', svg, flags=re.S)
    return re.findall(r'<text x="[^"]+" y="[^"]+" class="major">([^<]*)</text>', axis)


def _svgs(page: str) -> dict[str, str]:
    return dict(re.findall(r'<figure data-metric="([^"]+)">.*?(<svg.*?</svg>)', page, flags=re.S))


def test_integer_axes_have_whole_number_ticks_and_the_step_metric_is_only_an_axis(wandb_root: Path) -> None:
    def log(run: Any) -> None:
        run.define_metric("epoch")
        run.define_metric("val/*", step_metric="epoch")
        for epoch in range(4):
            run.log({"train/loss": 1.0 / (epoch + 1)})
            run.log({"val/acc": 0.5 + epoch / 10, "epoch": epoch})
        for _ in range(1_200):
            run.log({"long": 1.0})

    history = read_when_finished(make_run(wandb_root, log), wait=10)
    page = render_report(history)
    svgs = _svgs(page)
    # epoch is val/acc's x axis, not a chart; every other metric is one.
    assert sorted(svgs) == ["long", "train/loss", "val/acc"]
    assert ">epoch</text>" in svgs["val/acc"] and '<figure data-metric="epoch">' not in page
    # Whole-number ticks, no duplicates (pygal's own scale gave 0, 0.6, 1.4, 2.2 for epochs 0-3).
    assert _x_tick_labels(svgs["val/acc"]) == ["0", "1", "2", "3"]
    for key in ("train/loss", "long"):
        labels = _x_tick_labels(svgs[key])
        assert len(labels) >= 2 and len(set(labels)) == len(labels)
        assert all(re.fullmatch(r"\d+(\.\d+)?k|\d+", label) for label in labels), labels
    # "long" is logged at steps 8 to 1207.
    assert _x_tick_labels(svgs["long"]) == ["250", "500", "750", "1000"]


def test_values_show_on_hover_as_svg_titles(wandb_root: Path) -> None:
    def log(run: Any) -> None:
        for step in range(3):
            run.log({"short": [0.5, 0.25, 1.0][step], "long": 1.0})
        for step in range(3, 2_000):
            run.log({"long": 1.0 / step})

    page = render_report(read_when_finished(make_run(wandb_root, log), wait=10))
    svgs = _svgs(page)
    # A short series: one hover column per point, named by its step and value.
    hits = re.findall(r'<g class="fw-hits"[^>]*>(.*?)</g>', svgs["short"])
    assert re.findall(r"<title>([^<]*)</title>", hits[0]) == ["_step 0: 0.5", "_step 1: 0.25", "_step 2: 1"]
    # A long one: 40 columns, each naming its range of steps and the values drawn there.
    (hits,) = re.findall(r'<g class="fw-hits"[^>]*>(.*?)</g>', svgs["long"])
    titles = re.findall(r"<title>([^<]*)</title>", hits)
    assert len(titles) == 40 and titles[0].startswith("_step 0 to ")
    assert re.fullmatch(r"_step 19\d\d to 1999: 0\.0005 to 0\.000\d+", titles[-1]), titles[-1]
    # The columns tile the plot from its left edge to its right edge, without gaps.
    rects = [(float(x), float(w)) for x, w in re.findall(r'<rect x="([\d.]+)" width="([\d.]+)"', hits)]
    assert rects[0][0] == 0 and all(abs(a[0] + a[1] - b[0]) < 0.11 for a, b in itertools.pairwise(rects))


def test_hover_titles_escape_hostile_axis_names() -> None:
    from flyteplugins.wandb._chart_model import Chart
    from flyteplugins.wandb._chart_svg import line_chart_svg

    hostile = "</title><script>alert('x')</script>"
    svg = line_chart_svg(Chart("m", "Charts", hostile, [0.0, 1.0], [1.0, 2.0], logged=2, skipped=0))
    assert "<script" not in svg
    assert "<title>&lt;/title&gt;&lt;script&gt;alert('x')&lt;/script&gt; 0: 1</title>" in svg


def test_sections_with_one_or_two_charts_use_the_width() -> None:
    columns = {
        "a/one": Column([0, 1], [1.0, 2.0]),
        "b/one": Column([0, 1], [1.0, 2.0]),
        "b/two": Column([0, 1], [1.0, 2.0]),
        **{f"c/m{k}": Column([0, 1], [1.0, 2.0]) for k in range(3)},
    }
    page = render_report(RunHistory(OfflineRun(path=Path("/tmp/x"), run_id="r"), columns, 2))
    sections = re.findall(r'<div class="([^"]+)"><h4>([^<]+)</h4><div class="fw-grid">', page)
    assert sections == [("fw-section fw-one", "a"), ("fw-section fw-two", "b"), ("fw-section", "c")]
    assert ".fw-section.fw-one{flex:1 1 360px;max-width:560px}" in page
    assert "repeat(auto-fit,minmax(min(100%,360px),1fr))" in page


# --- lineage ----------------------------------------------------------------------------------------


def _hostile_lineage(run: Any) -> None:
    import wandb

    from flyteplugins.wandb._compat import add_reference_entry

    logged = wandb.Artifact("model.pt-daf95b633703", type="<b>flyte-file</b>")
    for i, uri in enumerate(
        ["javascript:alert('uri')", "https://blobs.example/m.pt?x=<y>&z=1", "s3://bucket/<img src=x>"]
    ):
        add_reference_entry(logged, f"ref{i}", uri)
    run.log_artifact(logged, aliases=["<b onmouseover=alert('alias')>", "train-model"])
    # What an online run.use_artifact(draft) writes (the plugin's consumers, online): the SDK's own
    # path, taken here offline (offline, the public use_artifact refuses).
    used = wandb.Artifact("data.csv-5f56d9c73ed5", type="flyte-file")
    add_reference_entry(used, "data.csv", "s3://bucket/r0/data.csv")
    run._log_artifact(used, use_after_commit=True)
    run.log({"loss": 1.0})


def test_the_page_shows_the_runs_lineage_escaped(wandb_root: Path) -> None:
    run_dir = make_run(
        wandb_root,
        _hostile_lineage,
        notes="Flyte action a0 of run r1 (task env.train): https://flyte.example/runs/r1?i=a0"
        " <script>x</script>",
        config={
            "flyte": {
                "run": "r1",
                "action": "a0",
                "task": "env.train",
                "mode": "remote",
                "attempt": 0,
                "url": "https://flyte.example/runs/r1?i=a0",
                "inputs": {"lr": 0.1},
            },
            "flyte/a1": {
                "run": "r1",
                "action": "a1",
                "task": "<script>alert('task')</script>",
                "url": "javascript:alert('writer')",
                "metadata": "/tmp/flyte/<r1>/a1",
                "used": {
                    "data": {"artifact": "<img src=x onerror=alert(1)>", "uri": "javascript:alert('used')"},
                    "model": {"artifact": "model.pt-daf95b633703", "uri": "https://blobs.example/m.pt"},
                },
            },
        },
    )
    history = read_when_finished(run_dir, wait=10)
    full = read_offline_run(run_dir, wait=10)
    # The report's reader has what the offline reader has: notes, artifacts logged and used.
    assert history.run.notes == full.notes is not None
    assert history.run.artifacts == full.artifacts and len(full.artifacts) == 1
    assert history.run.used_artifacts == full.used_artifacts and len(full.used_artifacts) == 1
    page = render_report(history)
    lineage = page[page.index("<h3>Lineage</h3>") : page.index("<h3>Metrics</h3>")]

    # Nothing active: no script, no javascript: link, no injected element.
    assert "<script" not in page.lower() and "<img" not in page and "<b onmouseover" not in page
    assert not re.search(r'href="(?!https?://)', page)
    assert "onerror=alert(1)" in lineage  # shown, as text
    # The notes' line back to Flyte, its address a link.
    assert (
        '<b>Run notes:</b> Flyte action a0 of run r1 (task env.train): <a href="https://flyte.example/runs/r1?i=a0"'
        in lineage
    )
    assert "&lt;script&gt;x&lt;/script&gt;" in lineage
    # Each writer's entry: the owner first, its Flyte page a link; a javascript: URL only as text.
    assert re.findall(r"<tr><td><code>([^<]+)</code></td><td>(started|wrote)", lineage) == [
        ("flyte", "started"),
        ("flyte/a1", "wrote"),
    ]
    assert (
        '<a href="https://flyte.example/runs/r1?i=a0" target="_blank" '
        'rel="noopener noreferrer">Flyte page</a>' in lineage
    )
    assert "task &lt;script&gt;alert(&#x27;task&#x27;)&lt;/script&gt;" in lineage
    assert "<code>javascript:alert(&#x27;writer&#x27;)</code>" in lineage
    # The artifact logged: name, type, aliases, references (only http(s) ones as links).
    assert "<td>model.pt-daf95b633703</td><td>&lt;b&gt;flyte-file&lt;/b&gt;</td>" in lineage
    (aliases,) = re.findall(r"<td>&lt;b&gt;flyte-file&lt;/b&gt;</td><td>([^<]*)</td>", lineage)
    assert sorted(aliases.split(", ")) == [
        "&lt;b onmouseover=alert(&#x27;alias&#x27;)&gt;",
        "latest",
        "train-model",
    ]
    assert "<li><code>javascript:alert(&#x27;uri&#x27;)</code></li>" in lineage
    assert '<li><a href="https://blobs.example/m.pt?x=&lt;y&gt;&amp;z=1"' in lineage
    assert "<li><code>s3://bucket/&lt;img src=x&gt;</code></li>" in lineage
    # What was used: the writers' inputs (config "used") and what the SDK recorded (online).
    assert "<h4>Artifacts and blobs used (3)</h4>" in lineage
    assert (
        "<td>data</td><td>&lt;img src=x onerror=alert(1)&gt;</td>"
        "<td><code>javascript:alert(&#x27;used&#x27;)</code></td>" in lineage
    )
    assert '<td>model</td><td>model.pt-daf95b633703</td><td><a href="https://blobs.example/m.pt"' in lineage
    assert (
        "data.csv-5f56d9c73ed5 (flyte-file)" in lineage and "<code>s3://bucket/r0/data.csv</code>" in lineage
    )
    # A draft used online is not listed as logged.
    assert "<h4>Artifacts logged (1)</h4>" in lineage


def test_a_run_without_lineage_has_no_lineage_section(wandb_root: Path) -> None:
    run_dir = make_run(wandb_root, _losses, config={"flyte": "a user's own value"})
    page = render_report(read_when_finished(run_dir, wait=10))
    assert "<h3>Lineage</h3>" not in page and "<td>flyte</td><td>a user&#x27;s own value</td>" in page


def test_the_owner_config_key_is_the_one_lineage_writes() -> None:
    from flyteplugins.wandb._lineage import CONFIG_KEY
    from flyteplugins.wandb._run_lineage import OWNER_KEY

    assert OWNER_KEY == CONFIG_KEY


def _append_records(log_file: Path, payloads: list[bytes]) -> None:
    """Append records to a transaction log in its framing (LevelDB's log format: 32 KiB blocks of
    checksummed chunks), as wandb's service writes them."""
    import struct
    import zlib

    data = bytearray(log_file.read_bytes())
    for payload in payloads:
        left = 32 * 1024 - len(data) % (32 * 1024)
        if left < 7 + len(payload):  # keep the test simple: one whole chunk, in a fresh block
            data += b"\0" * left
        data += struct.pack("<IHB", zlib.crc32(payload, zlib.crc32(bytes([1]))), len(payload), 1) + payload
    log_file.write_bytes(bytes(data))


def test_online_use_records_are_read_as_used_once_each(wandb_root: Path, tmp_path: Path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = make_run(wandb_root, _hostile_lineage)
    read_offline_run(run_dir, wait=10)
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    (log_file,) = copy.glob("run-*.wandb")
    # Online, use_artifact(draft) also writes a use record naming the committed version, and
    # use_artifact("name:v1") writes only that record. Real records (wandb's own protobuf classes),
    # framed into a copy of a real log: this W&B service path needs a server.
    records = [
        pb.Record(use_artifact=pb.UseArtifactRecord(id="QXJ0aWZhY3Q6MQ==", type="flyte-file", name=name))
        for name in ("data.csv-5f56d9c73ed5:v0", "<b>by-name</b>:v3")
    ]
    _append_records(log_file, [record.SerializeToString() for record in records])
    history = read_history(copy)
    assert [a.name for a in history.run.used_artifacts] == [
        "data.csv-5f56d9c73ed5",
        "data.csv-5f56d9c73ed5:v0",
        "<b>by-name</b>:v3",
    ]
    assert history.run.used_artifacts == read_offline_run(copy).used_artifacts
    page = render_report(history)
    # The draft and its use record are one use; the use by name is another.
    assert "<h4>Artifacts and blobs used (2)</h4>" in page
    assert "data.csv-5f56d9c73ed5 (flyte-file)" in page and "data.csv-5f56d9c73ed5:v0" not in page
    assert "&lt;b&gt;by-name&lt;/b&gt;:v3 (flyte-file)" in page and "<b>by-name" not in page


def test_the_same_run_gives_the_same_page_whatever_the_hash_seed() -> None:
    # Columns and summary keys once came out in an order that followed Python's string hashing,
    # so two processes reading one run wrote different pages. Each process renders a real log.
    run_dir = sorted((Path(__file__).parent / "data" / "wandb-logs" / "wandb-0.31.0").glob("*-fixture-run"))[
        0
    ]
    script = (
        "import hashlib, sys\n"
        "from flyteplugins.wandb._history import read_history\n"
        "from flyteplugins.wandb._report import ReportContext, render_report\n"
        "page = render_report(read_history(sys.argv[1]), ReportContext())\n"
        "print(hashlib.sha256(page.encode()).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, str(run_dir)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(digests) == 1, digests
