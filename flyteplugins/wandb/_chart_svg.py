"""Line charts as inline SVG, drawn by pygal: one drawing for every page.

Two entry points, one per chart kind:

- :func:`line_chart_svg` draws one run's metric (:class:`~flyteplugins.wandb._chart_model.Chart`),
  for the single-run page (``_report.py``);
- :func:`overlay_chart_svg` draws one shared metric of several runs, one line per run
  (:class:`~flyteplugins.wandb._compare.ComparisonChart`), for the comparison page
  (``_report_compare.py``).

Both have the same pygal configuration and look: whole-number ticks on an integer x axis (steps,
epochs; :func:`~flyteplugins.wandb._chart_model.integer_ticks`), values on hover through SVG
``<title>`` s on invisible columns over the plot (``<g class="fw-hits">``, no JavaScript), no
script and no per-chart styles (the page's stylesheet colours the charts), no random ids and no
generator comments (the same runs give the same page). Every text from a run (metric and axis
names, run names) reaches the SVG through pygal's XML writer, which escapes it, or is escaped here.

pygal (the ``report`` extra) is imported only when a chart is drawn.

Example:
    >>> from flyteplugins.wandb._chart_model import Chart
    >>> svg = line_chart_svg(Chart("loss", "Charts", "_step", [0.0, 1.0], [2.0, 1.0], logged=2, skipped=0))
    >>> svg.startswith("<svg"), "<title>_step 1: 1</title>" in svg
    (True, True)
"""

from __future__ import annotations

import bisect
import hashlib
import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._chart_model import Chart, integer_ticks

if TYPE_CHECKING:
    from ._compare import ComparisonChart, Line

__all__ = [
    "format_integer",
    "format_number",
    "line_chart_svg",
    "overlay_chart_svg",
    "strip_svg_scripts",
]

# Values on hover: invisible columns over each chart's plot, each with an SVG <title> (a browser
# tooltip; no JavaScript). A chart of at most this many drawn points (x values, for an overlay)
# gets one column per point; a longer one this many columns, each naming its x range and the
# lowest and highest value drawn there. About 110 bytes a column: 40 columns add about 4.5 KB to a
# chart of 300 points (which draws about 12 KB of path).
_HOVER_COLUMNS = 40
# An overlaid chart's column names each drawn run's value: at most this many values per chart
# (20 runs: 30 columns, about 20 KB), so that a page of many runs stays small.
_OVERLAY_HOVER_VALUES = 600
_OVERLAY_MIN_COLUMNS = 10
# A run's name in a hover column is cut to this many characters.
_HOVER_LABEL = 24
_SVG = "{http://www.w3.org/2000/svg}"


def format_number(value: float) -> str:
    """A number as the charts' axes, their hover values and the tables show it (4 significant digits).

    Example:
        >>> format_number(0.123456), format_number(1e-5), format_number(0)
        ('0.1235', '1e-05', '0')
    """
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def format_integer(value: float) -> str:
    """A whole-number axis value (a step, an epoch): 950, 15k, 12.5k, 2M.

    Example:
        >>> format_integer(950.0), format_integer(15000.0), format_integer(2e6)
        ('950', '15k', '2M')
    """
    number = round(value)
    magnitude = abs(number)
    if magnitude < 10_000:
        return str(number)
    if magnitude < 1_000_000:
        return f"{number / 1000:.4g}k"
    return f"{number / 1_000_000:.4g}M"


def strip_svg_scripts(svg: Any) -> Any:
    """pygal xml filter: remove pygal's script and per-chart styles (the page has no JavaScript).

    Example:
        >>> plot.add_xml_filter(strip_svg_scripts)  # doctest: +SKIP
    """
    for defs in list(svg.iter(f"{_SVG}defs")) + list(svg.iter("defs")):
        for child in list(defs):
            defs.remove(child)
    for overlay in list(svg):
        for group in list(overlay):
            classes = str(group.get("class", ""))
            if "tooltip-overlay" in classes or "text-overlay" in classes:
                overlay.remove(group)
    return svg


def line_chart_svg(chart: Chart) -> str:
    """One run's metric as an SVG line chart, with its values on hover.

    A chart of one point is drawn as a dot; one without points says "no values".

    Example:
        >>> from flyteplugins.wandb._chart_model import Chart
        >>> svg = line_chart_svg(Chart("acc", "Charts", "epoch", [1.0, 2.0], [0.5, 0.7], logged=2, skipped=0))
        >>> "<title>acc</title>" in svg, 'class="fw-hits"' in svg
        (True, True)
    """
    ticks = integer_ticks(chart.xs)
    format_x = format_integer if ticks is not None else format_number
    plot = _plot(chart.x_label, format_x, ticks, show_dots=len(chart.xs) == 1)
    plot.add_xml_filter(strip_svg_scripts)
    plot.add_xml_filter(_add_line_hover(chart, format_x))
    plot.add(chart.key, list(zip(chart.xs, chart.ys, strict=True)))
    return _finish(plot, chart.key, f"{chart.key}\0{chart.x_label}")


def overlay_chart_svg(
    chart: ComparisonChart,
    series_title: Callable[[Line], str],
    series_class: Callable[[Line], str],
) -> str:
    """One shared metric of several runs as an SVG chart: one line per drawn run, values on hover.

    Each line's group gets the class ``series_class(line)`` added (the page's stylesheet gives it
    its run's colour) and ``series_title(line)`` as its ``<title>`` (hovering the line names its
    run). Hovering elsewhere over the plot shows, for that column's x range, each drawn run's
    value there (or its lowest and highest), the runs by their labels.

    Example:
        >>> from flyteplugins.wandb._compare import ComparisonChart, Line
        >>> lines = (Line("r1", "a", 0, (0.0, 1.0), (1.0, 0.5)), Line("r2", "b", 1, (0.0, 1.0), (2.0, 1.0)))
        >>> svg = overlay_chart_svg(ComparisonChart("loss", "Charts", "_step", lines),
        ...                         lambda line: line.label, lambda line: f"fw-c{line.colour}")
        >>> "<title>_step 1\\na: 0.5\\nb: 1</title>" in svg
        True
    """
    every_x = [x for line in chart.lines for x in line.xs]
    ticks = integer_ticks(every_x)
    format_x = format_integer if ticks is not None else format_number
    plot = _plot(chart.x_label, format_x, ticks, show_dots=any(line.points == 1 for line in chart.lines))
    plot.add_xml_filter(_decorate_series(chart, series_title, series_class))
    plot.add_xml_filter(_add_overlay_hover(chart, format_x))
    for line in chart.lines:
        plot.add(line.label, list(zip(line.xs, line.ys, strict=True)))
    return _finish(plot, chart.key, f"compare\0{chart.key}\0{chart.x_label}")


def _plot(x_label: str, format_x: Callable[[float], str], ticks: list[int] | None, show_dots: bool) -> Any:
    """The one pygal configuration of every chart."""
    import pygal

    plot = pygal.XY(
        js=[],
        css=[],
        show_dots=show_dots,
        show_legend=False,
        width=420,
        height=230,
        margin=8,
        x_title=x_label,
        disable_xml_declaration=True,
        explicit_size=False,
        show_x_guides=True,
        x_labels_major_count=5,
        y_labels_major_count=5,
        show_minor_x_labels=False,
        show_minor_y_labels=False,
        value_formatter=format_number,
        x_value_formatter=format_x,
        truncate_label=-1,
        print_values=False,
        no_data_text="no values",
    )
    if ticks is not None:
        # Steps and epochs: whole-number ticks (pygal's own scale puts them at 0.6, 1.4, ...).
        plot.config.x_labels = ticks
        plot.config.x_labels_major_count = len(ticks)
    return plot


def _finish(plot: Any, key: str, seed: str) -> str:
    """Render, then drop what differs from run to run, and name the chart by its metric."""
    svg: str = plot.render(is_unicode=True)
    # pygal gives each chart a random id, which nothing in the page refers to (its styles are
    # removed): without it the same run gives the same page (pages can be compared, a chart drawn
    # ahead is used again) and two runs on one page share no id.
    uuid = getattr(plot, "uuid", None)
    if isinstance(uuid, str) and uuid:
        svg = svg.replace(f' id="chart-{uuid}"', "", 1)
        if uuid in svg:
            svg = svg.replace(uuid, hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()[:16])
    # The chart's accessible name (a tooltip in browsers) is its metric, not "Pygal".
    svg = svg.replace("<title>Pygal</title>", f"<title>{html.escape(key)}</title>", 1)
    # Drop pygal's generator comments: they carry a date and make pages differ from run to run.
    start = svg.find("<!--")
    while start != -1:
        end = svg.find("-->", start)
        if end == -1:
            break
        svg = svg[:start] + svg[end + 3 :]
        start = svg.find("<!--")
    return svg


def _classes(element: Any) -> list[str]:
    return str(element.get("class", "")).split()


def _is(element: Any, name: str) -> bool:
    tag = element.tag
    return isinstance(tag, str) and tag.endswith(name)


def _path_xs(path: Any) -> list[float]:
    numbers = path.get("d", "").replace("M", " ").replace("L", " ").split()
    try:
        return [float(number) for number in numbers[::2]]
    except ValueError:
        return []


def _path_ends(path: Any) -> tuple[float, float] | None:
    """The x positions of a path's first and last point (a line of two points or more), else ``None``."""
    tokens = path.get("d", "").replace("M", " ").replace("L", " ")
    head, tail = tokens.split(None, 2), tokens.rsplit(None, 2)
    if len(head) < 3 or len(tail) < 3:
        return None
    try:
        return float(head[0]), float(tail[-2])
    except ValueError:
        return None


def _drawn_xs(svg: Any) -> list[float]:
    """The x position (in the plot's coordinates) of each point of the chart's line, in order."""
    for element in svg.iter():
        if _is(element, "path") and {"line", "reactive"} <= set(_classes(element)):
            return _path_xs(element)
    for element in svg.iter():  # one point: pygal draws it as a dot (in the plot's overlay)
        if _is(element, "circle") and "dot" in _classes(element):
            return [float(element.get("cx", 0))]
    return []


def _spans(count: int, columns: int) -> list[tuple[int, int]]:
    """Pure: ``count`` points as at most ``columns`` runs of neighbours, as (first, last) indices."""
    if count <= columns:
        return [(i, i) for i in range(count)]
    return [(c * count // columns, (c + 1) * count // columns - 1) for c in range(columns)]


def _values(ys: Sequence[float]) -> str:
    low, high = min(ys), max(ys)
    return format_number(low) if low == high else f"{format_number(low)} to {format_number(high)}"


def _xs_text(format_x: Callable[[float], str], first: float, last: float) -> str:
    return format_x(first) if first == last else f"{format_x(first)} to {format_x(last)}"


def _hover_titles(chart: Chart, format_x: Callable[[float], str]) -> list[tuple[int, int, str]]:
    """Pure: the hover columns of a chart, as (first point, last point, title) over its drawn points."""
    label = chart.x_label
    if len(chart.xs) <= _HOVER_COLUMNS:
        return [
            (i, i, f"{label} {format_x(x)}: {format_number(y)}")
            for i, (x, y) in enumerate(zip(chart.xs, chart.ys, strict=True))
        ]
    out: list[tuple[int, int, str]] = []
    for first, last in _spans(len(chart.xs), _HOVER_COLUMNS):
        xs = f"{format_x(chart.xs[first])} to {format_x(chart.xs[last])}"
        out.append((first, last, f"{label} {xs}: {_values(chart.ys[first : last + 1])}"))
    return out


def _overlay_titles(
    chart: ComparisonChart, xs: Sequence[float], format_x: Callable[[float], str]
) -> list[tuple[int, int, str]]:
    """Pure: the hover columns of an overlaid chart, as (first, last, title) over its sorted distinct xs.

    Each title names its x range, then one line per drawn run that has points there: its value, or
    its lowest and highest value in the range. Fewer columns the more runs are drawn (at most
    ``_OVERLAY_HOVER_VALUES`` values per chart, at least ``_OVERLAY_MIN_COLUMNS`` columns).
    """
    lines = [line for line in chart.lines if line.xs]
    columns = max(_OVERLAY_MIN_COLUMNS, min(_HOVER_COLUMNS, _OVERLAY_HOVER_VALUES // max(1, len(lines))))
    out: list[tuple[int, int, str]] = []
    for first, last in _spans(len(xs), columns):
        low, high = xs[first], xs[last]
        parts = [f"{chart.x_label} {_xs_text(format_x, low, high)}"]
        for line in lines:
            start, end = bisect.bisect_left(line.xs, low), bisect.bisect_right(line.xs, high)
            if start < end:
                label = line.label
                if len(label) > _HOVER_LABEL:
                    label = label[: _HOVER_LABEL - 1] + "\u2026"
                parts.append(f"{label}: {_values(line.ys[start:end])}")
        out.append((first, last, "\n".join(parts)))
    return out


def _plot_group(svg: Any) -> Any:
    return next((g for g in svg.iter() if isinstance(g.tag, str) and _classes(g) == ["plot"]), None)


def _hits(plot: Any, columns: Sequence[tuple[float, float, str]], height: str) -> Any:
    """The invisible columns (left, right, title) over a plot, as one ``<g class="fw-hits">``."""
    namespace = plot.tag[: plot.tag.index("}") + 1] if plot.tag.startswith("{") else ""
    group = plot.makeelement(namespace + "g", {"class": "fw-hits", "fill": "transparent"})
    for left, right, title in columns:
        rect = plot.makeelement(
            namespace + "rect",
            {"x": f"{left:.1f}", "width": f"{max(right - left, 0.5):.1f}", "height": height},
        )
        text = plot.makeelement(namespace + "title", {})
        text.text = title  # the XML writer escapes it
        rect.append(text)
        group.append(rect)
    return group


def _add_line_hover(chart: Chart, format_x: Callable[[float], str]) -> Callable[[Any], Any]:
    """pygal xml filter: invisible columns over the plot, each with its values as an SVG <title>."""

    def add(svg: Any) -> Any:
        plot = _plot_group(svg)
        if plot is None:
            return svg
        background = next((r for r in plot if "background" in _classes(r)), None)
        xs = _drawn_xs(svg)
        if background is None or len(xs) != len(chart.xs) or not xs:
            return svg
        width, height = float(background.get("width", 0)), background.get("height", "0")
        columns: list[tuple[float, float, str]] = []
        for first, last, title in _hover_titles(chart, format_x):
            left = 0.0 if first == 0 else (xs[first - 1] + xs[first]) / 2
            right = width if last == len(xs) - 1 else (xs[last] + xs[last + 1]) / 2
            columns.append((left, right, title))
        plot.append(_hits(plot, columns, height))
        return svg

    return add


def _series_index(group: Any, lines: int) -> int | None:
    """The line a pygal series group draws (``series serie-<i>``), or ``None``."""
    classes = _classes(group)
    if "series" not in classes:
        return None
    for name in classes:
        if name.startswith("serie-") and name[6:].isdigit() and int(name[6:]) < lines:
            return int(name[6:])
    return None


def _decorate_series(
    chart: ComparisonChart, series_title: Callable[[Line], str], series_class: Callable[[Line], str]
) -> Callable[[Any], Any]:
    """pygal xml filter: no script; each line gets its class and a title (hover: the run)."""

    def apply(svg: Any) -> Any:
        svg = strip_svg_scripts(svg)
        for parent in list(svg.iter()):
            for group in list(parent):
                if "series" in _classes(group) and len(group) == 0:
                    parent.remove(group)  # the overlay's empty copies of the series
        for group in list(svg.iter(f"{_SVG}g")) + list(svg.iter("g")):
            index = _series_index(group, len(chart.lines))
            if index is None:
                continue
            line = chart.lines[index]
            extra = series_class(line)
            if extra:
                group.set("class", f"{group.get('class', '')} {extra}")
            tag = f"{_SVG}title" if group.tag.startswith(_SVG) else "title"
            title = group.makeelement(tag, {})
            title.text = series_title(line)  # the XML writer escapes it
            group.insert(0, title)
        return svg

    return apply


def _drawn_ends(svg: Any, lines: Sequence[Line]) -> dict[float, float]:
    """Where pygal drew the lines' ends: x value -> its position in the plot.

    A line's path starts at its first x and ends at its last; a line of one point is a dot (in the
    plot's overlay, which has the plot's coordinates).
    """
    known: dict[float, float] = {}
    for group in svg.iter():
        index = _series_index(group, len(lines)) if _is(group, "g") else None
        if index is None or not lines[index].xs:
            continue
        xs = lines[index].xs
        for element in group.iter():
            classes = _classes(element)
            if _is(element, "path") and "line" in classes:
                ends = _path_ends(element)
                if ends is not None:
                    known[xs[0]], known[xs[-1]] = ends
            elif _is(element, "circle") and "dot" in classes and len(xs) == 1:
                known[xs[0]] = float(element.get("cx", 0))
    return known


def _add_overlay_hover(chart: ComparisonChart, format_x: Callable[[float], str]) -> Callable[[Any], Any]:
    """pygal xml filter: invisible columns under the lines, each naming every drawn run's values there.

    The columns are placed from where pygal drew the lines' ends (:func:`_drawn_ends`), and go
    under the lines: hovering a line still names its run.
    """

    def add(svg: Any) -> Any:
        plot = _plot_group(svg)
        if plot is None:
            return svg
        background = next((r for r in plot if "background" in _classes(r)), None)
        if background is None:
            return svg
        known = _drawn_ends(svg, chart.lines)
        first_series = next((g for g in plot if _series_index(g, len(chart.lines)) is not None), None)
        xs = sorted({x for line in chart.lines for x in line.xs})
        if not xs:
            return svg
        width, height = float(background.get("width", 0)), background.get("height", "0")
        low, high = min(known, default=xs[0]), max(known, default=xs[0])
        if high > low:
            scale = (known[high] - known[low]) / (high - low)
            positions = [known[low] + (x - low) * scale for x in xs]
        elif len(xs) == 1:
            positions = [width / 2]
        else:
            return svg  # no two drawn ends to place the columns by
        columns: list[tuple[float, float, str]] = []
        for first, last, title in _overlay_titles(chart, xs, format_x):
            left = 0.0 if first == 0 else (positions[first - 1] + positions[first]) / 2
            right = width if last == len(xs) - 1 else (positions[last] + positions[last + 1]) / 2
            columns.append((left, right, title))
        hits = _hits(plot, columns, height)
        if first_series is not None:
            plot.insert(list(plot).index(first_series), hits)
        else:  # only dots (lines of one point), drawn in the overlay above the plot
            plot.append(hits)
        return svg

    return add
