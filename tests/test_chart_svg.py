"""The one chart drawing (``_chart_svg``): the comparison's overlaid charts get the single-run page's
whole-number ticks and values on hover, escaped, and a page of many runs stays small."""

from __future__ import annotations

import html
import itertools
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flyteplugins.wandb._chart_model import integer_ticks
from flyteplugins.wandb._chart_svg import overlay_chart_svg
from flyteplugins.wandb._compare import ComparisonChart, Line, plan_comparison
from flyteplugins.wandb._digest import RunDigest, SeriesDigest
from flyteplugins.wandb._report_compare import render_comparison

pytest.importorskip("pygal")

HOSTILE = '<script>alert("x")</script>'
NAME = '<b onclick="x">&amp;'  # short enough to be shown whole in a hover title
NS = "{http://www.w3.org/2000/svg}"


def run(
    run_id: str, xs: list[float], ys: list[float], key: str = "loss", x_label: str = "_step", **fields: object
):
    series = (SeriesDigest(key, x_label, tuple(xs), tuple(ys), last=ys[-1], logged=len(ys)),)
    fields.setdefault("state", "finished")
    return RunDigest(run_id, series=series, summary={key: ys[-1]}, **fields)  # type: ignore[arg-type]


def chart_svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)


def x_ticks(svg: str) -> list[tuple[float, str]]:
    """The x axis' labels with their positions in the plot."""
    root = ET.fromstring(svg)
    axis = next(g for g in root.iter(f"{NS}g") if g.get("class", "").startswith("axis x"))
    return [(float(t.get("x", "nan")), t.text or "") for t in axis.iter(f"{NS}text")]


def hover_columns(svg: str) -> list[tuple[float, float, str]]:
    """The invisible hover columns: (left, right, title)."""
    root = ET.fromstring(svg)
    hits = [g for g in root.iter(f"{NS}g") if g.get("class") == "fw-hits"]
    assert len(hits) == 1, svg[:300]
    out = []
    for rect in hits[0]:
        left = float(rect.get("x", "nan"))
        title = rect.find(f"{NS}title")
        assert title is not None
        out.append((left, left + float(rect.get("width", "nan")), title.text or ""))
    return out


def test_overlaid_charts_get_whole_number_ticks_on_an_integer_axis() -> None:
    # 0..13 and 0..14: pygal's own scale labels them 0, 3, 6, 9, 13 (at 3.25, 6.5, ...).
    runs = [
        run(f"r{i}", [float(s) for s in range(14 + i)], [1 / (s + 1) for s in range(14 + i)])
        for i in range(2)
    ]
    (svg,) = chart_svgs(render_comparison(plan_comparison(runs)))
    labels = [label for _, label in x_ticks(svg)]
    assert labels == [str(t) for t in integer_ticks([float(s) for s in range(15)])] == ["0", "5", "10"]


def test_a_fractional_axis_keeps_its_fractional_values_on_hover() -> None:
    xs = [s * 0.37 for s in range(10)]
    runs = [run(f"r{i}", xs, [s + i for s in range(10)], x_label="time") for i in range(2)]
    (svg,) = chart_svgs(render_comparison(plan_comparison(runs)))
    heads = [title.split("\n")[0] for _, _, title in hover_columns(svg)]
    assert heads[:3] == ["time 0", "time 0.37", "time 0.74"]


def test_hover_names_each_drawn_runs_value_in_the_column_over_its_x() -> None:
    runs = [
        run("a", [0.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0], name="first"),
        run("b", [0.0, 1.0, 2.0], [0.5, 0.25, 0.125], name="second"),
    ]
    (svg,) = chart_svgs(render_comparison(plan_comparison(runs)))
    columns = hover_columns(svg)
    assert [title.split("\n")[0] for _, _, title in columns] == ["_step 0", "_step 1", "_step 2", "_step 3"]
    titles = {title.split("\n")[0]: set(title.split("\n")[1:]) for _, _, title in columns}
    assert titles["_step 1"] == {"first: 3", "second: 0.25"}
    assert titles["_step 3"] == {"first: 1"}  # the second run did not log step 3
    # Each column is over its x: the axis label of step k lies inside the column titled "_step k".
    for position, label in x_ticks(svg):
        (title,) = [t for left, right, t in columns if left <= position <= right]
        assert title.split("\n")[0] == f"_step {label}"
    # The columns tile the plot, under the lines: hovering a line still names its run.
    assert columns[0][0] == 0.0 and all(
        a[1] == pytest.approx(b[0], abs=0.11) for a, b in itertools.pairwise(columns)
    )
    assert svg.index('class="fw-hits"') < svg.index('class="series serie-0')
    assert re.search(r'<g class="series serie-\d+[^"]*"><title>first</title>', svg)


def test_many_steps_are_columns_of_ranges_with_each_runs_lowest_and_highest() -> None:
    xs = tuple(float(s) for s in range(1000))
    lines = tuple(
        Line(f"r{i}", f"run-{i}", i, xs, tuple(math.sin(s / 40) + i for s in range(1000)), logged=1000)
        for i in range(20)
    )
    svg = overlay_chart_svg(
        ComparisonChart("acc", "Charts", "_step", lines), lambda line: line.label, lambda _: ""
    )
    columns = hover_columns(svg)
    assert len(columns) == 30  # 20 runs: at most 600 values a chart
    head, *values = columns[0][2].split("\n")
    assert head == "_step 0 to 32"
    ys = [math.sin(s / 40) + 3 for s in range(33)]
    assert f"run-3: {min(ys):.4g} to {max(ys):.4g}" in values and len(values) == 20
    assert columns[-1][2].split("\n")[0] == "_step 966 to 999"


def test_hover_titles_escape_hostile_run_metric_and_axis_names() -> None:
    runs = [
        run("a", [0.0, 1.0], [1.0, 2.0], key=f"m{HOSTILE}", x_label=f"e{HOSTILE}", name=NAME),
        run("b", [0.0, 1.0], [3.0, 4.0], key=f"m{HOSTILE}", x_label=f"e{HOSTILE}", name="plain"),
    ]
    page = render_comparison(plan_comparison(runs))
    (svg,) = chart_svgs(page)
    assert "<script" not in page
    titles = [title for _, _, title in hover_columns(svg)]  # parsed: the SVG is well formed
    assert titles[0].split("\n")[0] == f"e{HOSTILE} 0"
    assert f"{NAME}: 1" in titles[0].split("\n")
    assert html.escape(f"{NAME}: 1", quote=False) in svg
    assert f"<title>{html.escape(f'm{HOSTILE}')}</title>" in svg  # the chart's name


def test_long_run_names_are_cut_in_hover_titles() -> None:
    name = "child-" + "x" * 80
    runs = [run("a", [0.0, 1.0], [1.0, 2.0], name=name), run("b", [0.0, 1.0], [3.0, 4.0], name="b")]
    (svg,) = chart_svgs(render_comparison(plan_comparison(runs)))
    lines = hover_columns(svg)[0][2].split("\n")
    assert "child-" + "x" * 17 + "\u2026: 1" in lines


_WHAT_IS_UNDER_THE_POINTER = """(() => {
  const svg = document.querySelector('figure svg');
  svg.scrollIntoView();
  const path = svg.querySelector('.series.serie-1 path.line');
  const point = path.getPointAtLength(path.getTotalLength() / 2);
  const m = path.getScreenCTM();
  const onLine = document.elementFromPoint(point.x * m.a + point.y * m.c + m.e,
                                           point.x * m.b + point.y * m.d + m.f);
  const rects = [...svg.querySelectorAll('.fw-hits rect')];
  const column = rects[Math.floor(rects.length / 2)];
  const box = column.getBoundingClientRect();
  let hit = null;
  for (let y = box.top + 1; y < box.bottom && !hit; y += 2) {
    const element = document.elementFromPoint(box.left + box.width / 2, y);
    if (element && element.closest('.fw-hits')) hit = element;
  }
  const series = onLine && onLine.closest('.series');
  return {
    line: series ? series.querySelector(':scope > title').textContent : null,
    column: hit ? hit.querySelector('title').textContent : null,
    expected: column.querySelector('title').textContent,
  };
})()"""


def test_in_a_real_browser_a_line_names_its_run_and_the_plot_around_it_the_values(tmp_path: Path) -> None:
    from browser import open_page

    from flyteplugins.wandb._report import render_page

    runs = [
        run("a", [float(s) for s in range(60)], [1 / (s + 1) for s in range(60)], name="first"),
        run("b", [float(s) for s in range(60)], [2 / (s + 1) for s in range(60)], name="second"),
    ]
    page_file = tmp_path / "compare.html"
    page_file.write_text(render_page(render_comparison(plan_comparison(runs))))
    with open_page(width=900, height=900) as page:
        page.goto(page_file.as_uri())
        seen = page.evaluate(_WHAT_IS_UNDER_THE_POINTER)
    assert seen["line"] in {"first", "second"}  # the line is on top of the columns: its run
    assert seen["column"] == seen["expected"]  # elsewhere, the column's values
    head, *values = seen["column"].split("\n")
    assert head.startswith("_step ") and {v.split(":")[0] for v in values} == {"first", "second"}


def test_runs_of_one_point_each_get_a_column_each_over_their_dots() -> None:
    lines = (Line("a", "a", 0, (0.0,), (1.0,)), Line("b", "b", 1, (5.0,), (2.0,)))
    svg = overlay_chart_svg(
        ComparisonChart("m", "Charts", "_step", lines), lambda line: line.label, lambda _: ""
    )
    columns = hover_columns(svg)
    assert [title for _, _, title in columns] == ["_step 0\na: 1", "_step 5\nb: 2"]
    dots = [float(x) for x in re.findall(r'<circle cx="([^"]+)"', svg)]
    assert len(dots) == 2
    for (left, right, _), dot in zip(columns, dots, strict=True):
        assert left <= dot <= right
