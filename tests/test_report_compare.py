"""The comparison page (``_report_compare``): table, legend, overlaid charts, escaping, size, no pygal."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flyteplugins.wandb._compare import MissingRun, Objective, plan_comparison
from flyteplugins.wandb._digest import RunDigest, SeriesDigest
from flyteplugins.wandb._report_compare import render_comparison, write_comparison

pytest.importorskip("pygal")

HOSTILE = '<script>alert("x")</script>'


def digest(run_id: str, logged: dict[str, list[float]], **fields: object) -> RunDigest:
    series = tuple(
        SeriesDigest(
            key,
            "_step",
            tuple(float(i) for i in range(len(ys))),
            tuple(ys),
            last=next((y for y in reversed(ys) if math.isfinite(y)), None),
            logged=len(ys),
        )
        for key, ys in logged.items()
    )
    summary = {key: ys[-1] for key, ys in logged.items() if ys}
    fields.setdefault("state", "finished")
    return RunDigest(run_id, series=series, summary=summary, **fields)  # type: ignore[arg-type]


def _series_groups(svg: str) -> list[str]:
    return re.findall(r'<g class="series serie-\d+[^"]*">', svg)


def _figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'<figure data-metric="([^"]*)">(.*?)</figure>', page, flags=re.DOTALL))


def test_each_child_is_one_labelled_line_per_shared_metric_with_a_legend() -> None:
    digests = [
        digest(f"r{i}", {"train/loss": [1.0, 0.5 / (i + 1)], "val/acc": [0.1, 0.2 * i]}, name=f"lr-{i}")
        for i in range(4)
    ]
    page = render_comparison(plan_comparison(digests))
    figures = _figures(page)
    assert set(figures) == {"train/loss", "val/acc"}
    for svg in figures.values():
        assert len(_series_groups(svg)) == 4
        assert sorted(re.findall(r"<title>(lr-\d)(?:, best)?</title>", svg)) == [
            "lr-0",
            "lr-1",
            "lr-2",
            "lr-3",
        ]
    assert re.findall(r'<li><span class="fw-swatch fw-sw(\d+)"></span>(lr-\d)', page) == [
        ("0", "lr-3"),
        ("1", "lr-2"),
        ("2", "lr-1"),
        ("3", "lr-0"),
    ]
    # The best run (lowest loss: lr-3) is marked in the table and drawn thicker in every chart.
    assert re.search(r'<tr class="fw-best" data-run-id="r3">', page)
    assert all('fw-c0 fw-best">' in svg for svg in figures.values())
    assert "<h4>train</h4>" in page and "<h4>val</h4>" in page
    assert "<script" not in page and "javascript:" not in page


def test_lines_and_legend_say_the_inputs_that_tell_the_runs_apart() -> None:
    digests = [
        digest(f"r{i}", {"loss": [1.0, 0.1 * (i + 1)]}, inputs={"lr": lr, "epochs": 3})
        for i, lr in enumerate([0.1, 0.01])
    ]
    page = render_comparison(plan_comparison(digests))
    assert '<li><span class="fw-swatch fw-sw0"></span>r0 <span class="fw-muted">lr=0.1</span>' in page
    assert "<title>r1 (lr=0.01)</title>" in page and "<title>r0 (lr=0.1), best</title>" in page
    assert "epochs=" not in page  # the same in every run: not what tells them apart


def test_extremes_survive_downsampling_in_the_drawn_lines() -> None:
    ys = [1.0] * 2000
    ys[321], ys[1777] = 40.0, -30.0
    digests = [digest(f"r{i}", {"m": [y * (i + 1) for y in ys]}) for i in range(3)]
    comparison = plan_comparison(digests, point_budget=600)
    page = render_comparison(comparison)
    (svg,) = _figures(page).values()
    for line in comparison.charts[0].lines:
        assert line.points <= 200 and max(line.ys) > 39 and min(line.ys) < -29
    # pygal draws each kept point: the y axis spans both extremes of the widest line.
    labels = [float(v) for v in re.findall(r'<text[^>]*class="[^"]*"[^>]*>(-?\d+(?:\.\d+)?)</text>', svg)]
    assert labels and max(labels) >= 100 and min(labels) <= -80


def test_hostile_names_values_and_metric_keys_are_escaped() -> None:
    digests = [
        digest(
            "r1",
            {f"{HOSTILE}/loss": [1.0, 0.5], "ok": [1.0]},
            name=HOSTILE,
            task=HOSTILE,
            action='"><img src=x onerror=alert(1)>',
            inputs={HOSTILE: HOSTILE, "lr": 0.1, "<b>same</b>": "<i>x</i>"},
            url="javascript:alert(1)",
        ),
        digest(
            "r2",
            {f"{HOSTILE}/loss": [1.0, 0.4], "ok": [2.0]},
            name="fine",
            inputs={HOSTILE: 1, "lr": 0.2, "<b>same</b>": "<i>x</i>"},
        ),
    ]
    missing = [MissingRun(HOSTILE, HOSTILE, HOSTILE)]
    page = render_comparison(plan_comparison(digests, missing))
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "Same in every run: &lt;b&gt;same&lt;/b&gt; = &lt;i&gt;x&lt;/i&gt;" in page
    assert "javascript:" not in page and "href=" not in page
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f"<td>{escaped}</td>" in page  # the task, and the input value
    assert f"<th>input {escaped}</th>" in page
    assert f'</span>{escaped} <span class="fw-muted">' in page  # the legend
    assert "<title>&lt;script&gt;alert" in page  # the line's hover title
    assert "lr=0.1" in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;=" in page  # legend inputs
    assert 'data-metric="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;/loss"' in page


def test_http_links_are_kept_and_other_schemes_are_not() -> None:
    digests = [
        digest("a", {"loss": [1.0]}, url="https://wandb.example.com/e/p/runs/a"),
        digest("b", {"loss": [2.0]}, url="data:text/html,<b>"),
    ]
    page = render_comparison(plan_comparison(digests))
    assert re.findall(r'href="([^"]*)"', page) == ["https://wandb.example.com/e/p/runs/a"]


def test_missing_children_and_skips_are_said_on_the_page() -> None:
    digests = [
        digest("a", {"loss": [1.0, math.nan]}),
        digest("b", {"loss": [0.5]}),
        digest("c", {"x": [1.0]}),
    ]
    missing = [MissingRun("fanout.train", "a9", "failed before its run ended")]
    page = render_comparison(plan_comparison(digests, missing))
    assert "no run: failed before its run ended" in page
    assert "Run a: its final loss is nan (not ranked)." in page
    assert "Logged by one run only (not compared): x (c)" in page
    assert "Objective: loss, minimized (first shared metric). Best run: b." in page


def test_without_the_drawing_library_the_table_is_shown_and_the_page_says_how() -> None:
    code = (
        "import sys; sys.modules['pygal'] = None\n"
        "from flyteplugins.wandb._compare import plan_comparison\n"
        "from flyteplugins.wandb._digest import RunDigest, SeriesDigest\n"
        "from flyteplugins.wandb._report_compare import render_comparison\n"
        "s = (SeriesDigest('loss', '_step', (0.0, 1.0), (1.0, 0.5), last=0.5, logged=2),)\n"
        "print(render_comparison(plan_comparison([RunDigest('a', series=s), RunDigest('b', series=s)])))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "<svg" not in done.stdout and 'data-run-id="a"' in done.stdout
    assert "pip install &#x27;flyteplugins-wandb[report]&#x27;" in done.stdout


def test_no_runs_at_all_is_a_page_that_says_so(tmp_path: Path) -> None:
    out = write_comparison([], tmp_path / "empty.html")
    assert "There are no runs to compare." in out.read_text()


def test_a_given_objective_is_stated_with_its_direction() -> None:
    digests = [digest("a", {"acc": [0.2], "loss": [0.1]}), digest("b", {"acc": [0.3], "loss": [0.3]})]
    page = render_comparison(
        plan_comparison(digests, objective=Objective("loss", "minimize", "sweep metric"))
    )
    assert "Objective: loss, minimized (sweep metric). Best run: a." in page
    assert "<th>loss &#8595;</th>" in page


def test_a_hundred_children_of_2000_steps_and_5_metrics_stay_under_2_mb(tmp_path: Path) -> None:
    from flyteplugins.wandb._digest import digest_history
    from flyteplugins.wandb._history import Column, RunHistory
    from flyteplugins.wandb._offline import OfflineRun

    steps = 2000
    digests = []
    for i in range(100):
        columns = {
            f"train/m{k}": Column(
                list(range(steps)), [math.sin(s / 50 + i) * (k + 1) + i for s in range(steps)]
            )
            for k in range(5)
        }
        columns["_step"] = Column(list(range(steps)), list(range(steps)))
        run = OfflineRun(
            path=Path("."),
            run_id=f"run-{i:03d}-" + "x" * 50,
            name=f"child-{i}",
            exit_code=0,
            config={"flyte": {"task": "t", "action": f"a{i}", "inputs": {"lr": 10**-i, "seed": i}}},
        )
        digests.append(digest_history(RunHistory(run, columns, rows=steps)))
    started = time.perf_counter()
    out = write_comparison(digests, tmp_path / "big.html")
    elapsed = time.perf_counter() - started
    size = out.stat().st_size
    page = out.read_text()
    assert size < 2_000_000, size
    assert page.count("<svg") == 5 and page.count("<tr") == 101
    assert all(len(_series_groups(svg)) == 20 for svg in _figures(page).values())
    # Values on hover too: 30 columns a chart for 20 drawn runs (600 values), within the 2 MB.
    assert all(svg.count("</title></rect>") == 30 for svg in _figures(page).values())
    assert "80 more runs are not drawn" in page
    # Generous under load (2 shared cores); the benchmark measures it properly.
    assert elapsed < 10, elapsed


def test_odd_digests_never_fail_the_page() -> None:
    odd = [
        RunDigest("a", series=(SeriesDigest("m", "_step", (), ()),), summary={"m": "NaN", "n": None}),
        RunDigest(
            "b",
            series=(SeriesDigest("m", "_step", (0.0,), (1e308,), last=1e308, logged=1),),
            summary={"m": 1e308},
        ),
        RunDigest(
            "c",
            series=(SeriesDigest("m", "_step", (0.0, 0.0, 0.0), (-1e308, 5.0, 1e-300), logged=3),),
            inputs={"x": {"a": [1, None]}, "y": None},
        ),
        RunDigest(
            "d",
            series=(SeriesDigest("m", "epoch", (5.0, 1.0), (1.0, 2.0), logged=2),),
            inputs={"x": math.nan},
        ),
        RunDigest("", name="", summary={"m": True, "k": 10**400}),
    ]
    comparison = plan_comparison(odd, [MissingRun(None, None, "")])
    page = render_comparison(comparison)
    # A range beyond any float cannot be scaled: that chart says so, the rest of the page stands.
    assert "This chart could not be drawn (OverflowError" in page
    assert page.count("<tr") == 7 and "The runs chart m against different x axes (_step, epoch)." in page
    assert comparison.best_run_id == "b"  # the largest finite m; NaN is not ranked


def test_the_runs_colours_outrank_the_single_run_pages_styles_in_one_tab() -> None:
    # In a parent's tab the comparison can come before the parent's own run section, whose
    # stylesheet (".fw-report .pygal-chart .series .line{stroke:...}") would then recolour every
    # line: each comparison rule is scoped by both of its section's classes, so it wins.
    page = render_comparison(plan_comparison([digest("a", {"m": [1.0]}), digest("b", {"m": [2.0]})]))
    style = re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)[1]
    selectors = [s.strip() for rule in re.findall(r"([^{}]+)\{[^{}]*\}", style) for s in rule.split(",")]
    assert selectors and all(s.startswith(".fw-report.fw-compare ") for s in selectors)
    assert ".fw-report.fw-compare .pygal-chart .series.fw-c0 .line{stroke:#1f77b4}" in style


def test_in_a_real_browser_each_run_has_its_colour_next_to_a_single_run_section(tmp_path: Path) -> None:
    from browser import png_pixels, require_browser, screenshot

    from flyteplugins.wandb._report import render_page, render_report

    browser = require_browser()
    ramp = [[1.0 - step / (40 + 40 * i) for step in range(40)] for i in range(2)]
    comparison = plan_comparison([digest("a", {"loss": ramp[0]}), digest("b", {"loss": ramp[1]})])
    # A parent's tab: the comparison, then a single-run section whose styles come later.
    from flyteplugins.wandb._history import RunHistory
    from flyteplugins.wandb._offline import OfflineRun

    parent = RunHistory(OfflineRun(path=tmp_path, run_id="parent", exit_code=0), {}, rows=0)
    single = render_report(parent, charts=False)
    assert "stroke:var(--fw-line)" in single  # its stylesheet colours every chart line
    page = tmp_path / "tab.html"
    page.write_text(render_page(render_comparison(comparison) + single))
    shot = tmp_path / "shot.png"
    screenshot(browser, page, shot, 900, 900, tmp_path)
    _, _, pixels = png_pixels(shot.read_bytes())

    def near(colour: str) -> int:
        rgb = bytes.fromhex(colour[1:])
        return sum(1 for p in pixels if abs(p[0] - rgb[0]) + abs(p[1] - rgb[1]) + abs(p[2] - rgb[2]) < 40)

    # Each run's line in its own colour (more than its legend swatch), none in the single-run blue.
    assert near("#1f77b4") > 150 and near("#ff7f0e") > 150
    assert near("#0b66d6") < 20  # the single-run page's line colour (light theme)


def test_inputs_named_like_credentials_are_hidden() -> None:
    digests = [
        digest("a", {"loss": [1.0]}, inputs={"api_key": "sk-123456", "lr": 0.1, "db_password": "hunter2"}),
        digest("b", {"loss": [0.5]}, inputs={"api_key": "sk-654321", "lr": 0.2, "db_password": "hunter2"}),
    ]
    page = render_comparison(plan_comparison(digests))
    assert "sk-123456" not in page and "sk-654321" not in page and "hunter2" not in page
    assert "<td>&lt;hidden&gt;</td>" in page and "db_password = &lt;hidden&gt;" in page
    assert "lr=0.1" in page and "api_key=" not in page  # the legend tells runs apart by lr only
