"""The comparison of several runs as HTML: a table of the runs and one overlaid chart per shared metric.

:func:`render_comparison` draws a :class:`~flyteplugins.wandb._compare.Comparison` (decided by the
pure :func:`~flyteplugins.wandb._compare.plan_comparison`) as a ``<section>`` for a Flyte report
tab (a fan-out's parent shows its children's runs); :func:`write_comparison` writes a whole page of
the same section, which ``flyte wandb report RUN RUN ...`` does.

The page has the single-run page's look and rules (``_report.py``): inline SVG drawn by pygal
(the ``report`` extra) with the same drawing code (``_chart_svg.py``: whole-number ticks on
integer axes, values on hover, no script), no JavaScript and nothing from the network, every value
taken from a run escaped, links only to http(s) addresses. Each run keeps one colour in every
chart and in the legend; hovering a line shows its run, hovering elsewhere over a chart each run's
values there. Without pygal the table is still shown and the page says how to get the charts.

Example:
    >>> from flyteplugins.wandb._compare import plan_comparison
    >>> from flyteplugins.wandb._digest import RunDigest
    >>> fragment = render_comparison(plan_comparison([RunDigest("a", name="<lr>", summary={"acc": 1})]))
    >>> fragment.startswith('<section class="fw-report fw-compare"'), "&lt;lr&gt;" in fragment
    (True, True)
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._chart_svg import format_number, overlay_chart_svg
from ._compare import (
    Comparison,
    ComparisonChart,
    ComparisonRow,
    Line,
    MissingRun,
    Objective,
    plan_comparison,
)
from ._digest import RunDigest
from ._report import (
    REPORT_EXTRA_HINT,
    cell_text,
    chart_figure,
    chart_sections,
    charts_available,
    configured_url,
    looks_secret,
    notes_list,
    render_page,
    report_section,
)

__all__ = [
    "PALETTE",
    "compare_run_dirs",
    "comparison_output_path",
    "render_comparison",
    "write_comparison",
]

#: One colour per drawn run (20 runs at most by default), readable on light and dark backgrounds.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#5b8ff9", "#f6bd16", "#5ad8a6", "#e8684a", "#6dc8ec", "#9270ca",
    "#ff9d4d", "#269a99", "#ff99c3", "#a0522d",
)  # fmt: skip
_NOTES_SHOWN = 30
_HIDDEN = "&lt;hidden&gt;"
_LISTED = 40


# Every selector starts with both classes of the section: more specific than the single-run page's
# rules (".fw-report ..."), whichever section comes later in a report tab.
_SCOPE = ".fw-report.fw-compare"


def _style() -> str:
    at = _SCOPE
    colours = "".join(
        f"{at} .pygal-chart .series.fw-c{i} .line{{stroke:{c}}}{at} .fw-sw{i}{{background:{c}}}"
        for i, c in enumerate(PALETTE)
    )
    table = f"{at} table.fw-compare-table"
    return (
        "<style>"
        f"{at} .pygal-chart .series .line{{stroke-width:1.4;opacity:.9}}"
        f"{at} .pygal-chart .series.fw-best .line{{stroke-width:2.8;opacity:1}}"
        f"{at} .fw-swatch{{display:inline-block;width:14px;height:4px;border-radius:2px;"
        "vertical-align:middle;margin-right:6px;background:var(--fw-muted)}"
        f"{at} ul.fw-legend{{list-style:none;padding:0;margin:6px 0 10px;display:flex;flex-wrap:wrap;"
        "gap:4px 16px;font-size:13px}"
        f"{at} tr.fw-best td{{background:var(--fw-warn-bg)}}"
        f"{at} .fw-scroll{{overflow-x:auto;max-width:100%}}"
        f"{table} th,{table} td{{word-break:normal;overflow-wrap:normal;max-width:360px}}"
        f"{table} th{{white-space:nowrap}}"
        f"{table} code{{word-break:break-all}}"
        f"{at} td.fw-num{{white-space:nowrap;text-align:right;font-variant-numeric:tabular-nums}}"
        f"{at} .fw-star{{color:var(--fw-warn-border);font-weight:700;white-space:nowrap}}"
        f"{colours}</style>"
    )


def _colour_class(colour: int | None) -> str:
    return f"fw-sw{colour % len(PALETTE)}" if colour is not None else ""


def _value(value: float | None) -> str:
    if value is None:
        return '<span class="fw-muted">&#8212;</span>'
    if not math.isfinite(value):
        return html.escape(str(value))
    return html.escape(format_number(value))


def _run_cell(row: ComparisonRow) -> str:
    swatch = f'<span class="fw-swatch {_colour_class(row.colour)}"></span>' if row.drawn else ""
    label = html.escape(row.label)
    if row.url:
        href = html.escape(row.url, quote=True)
        label = f'<a href="{href}" target="_blank" rel="noopener noreferrer">{label}</a>'
    star = ' <span class="fw-star" title="best run">&#9733; best</span>' if row.best else ""
    ident = ""
    if row.run_id and row.run_id != row.label:
        ident = f"<br><code>{html.escape(row.run_id)}</code>"
    return f"{swatch}{label}{star}{ident}"


def _input_cell(name: str, values: dict[str, Any]) -> str:
    if name not in values:
        return '<span class="fw-muted">&#8212;</span>'
    return _HIDDEN if looks_secret(name) else cell_text(values[name])


def _state_cell(row: ComparisonRow) -> str:
    if row.missing:
        return f"no run: {html.escape(row.reason or 'unknown')}"
    return html.escape(row.state)


def _table(comparison: Comparison) -> str:
    inputs = comparison.differing_inputs
    metrics = comparison.table_metrics
    objective = comparison.objective
    head = ["run", "task", "action", *(f"input {name}" for name in inputs), "state"]
    for metric in metrics:
        arrow = ""
        if objective is not None and objective.metric == metric:
            arrow = " &#8595;" if objective.goal == "minimize" else " &#8593;"
        head.append(html.escape(metric) + arrow)
    cells = "".join(
        f"<th>{h}</th>" if i >= len(head) - len(metrics) else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body: list[str] = []
    for row in comparison.rows:
        values = dict(row.inputs)
        tds = [
            _run_cell(row),
            html.escape(row.task or "") if row.task else '<span class="fw-muted">&#8212;</span>',
            html.escape(row.action or "") if row.action else '<span class="fw-muted">&#8212;</span>',
            *(_input_cell(name, values) for name in inputs),
            _state_cell(row),
        ]
        row_cells = "".join(f"<td>{td}</td>" for td in tds)
        row_cells += "".join(f'<td class="fw-num">{_value(row.finals.get(m))}</td>' for m in metrics)
        run_attr = f' data-run-id="{html.escape(row.run_id, quote=True)}"' if row.run_id else ""
        css = ' class="fw-best"' if row.best else (' class="fw-missing"' if row.missing else "")
        body.append(f"<tr{css}{run_attr}>{row_cells}</tr>")
    table = f'<table class="fw-compare-table"><tr>{cells}</tr>{"".join(body)}</table>'
    return f'<div class="fw-scroll">{table}</div>'


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f", ... ({len(items) - _LISTED} more)" if len(items) > _LISTED else "")


def _summary(comparison: Comparison) -> str:
    runs = [row for row in comparison.rows if not row.missing]
    missing = len(comparison.rows) - len(runs)
    parts = [_count(len(runs), "run")]
    if missing:
        parts.append(f"{missing} without a run")
    text = ", ".join(parts) + ". "
    objective = comparison.objective
    if objective is not None:
        text += f"Objective: {objective.describe()}."
        best = next((row for row in comparison.rows if row.best), None)
        if best is not None:
            text += f" Best run: {best.label}."
    else:
        text += "No metric to rank the runs by."
    rule = (
        "Shared metrics are those at least two runs logged; a final value is the run's summary value, "
        "else the last value it logged. Without a given objective, the first shared metric declared with "
        'define_metric(name, summary="min" or "max") is used, else the first named like an error or a '
        "score (counters such as epoch or lr never are); metrics named like an "
        "error (loss, error, err, mse, mae, rmse, perplexity, ...) are minimised, others maximised."
    )
    return f'<p>{html.escape(text)}</p><p class="fw-muted">{html.escape(rule)}</p>'


def _distinguishing(comparison: Comparison) -> dict[str, str]:
    """Each drawn run's differing inputs as short text (``lr=0.1``), to tell the lines apart."""
    names = comparison.differing_inputs[:3]
    out: dict[str, str] = {}
    for row in comparison.drawn_rows:
        values = dict(row.inputs)
        parts = [
            f"{name}={_short(values[name])}" for name in names if name in values and not looks_secret(name)
        ]
        if row.run_id is not None and parts:
            out[row.run_id] = ", ".join(parts)
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 24 else text[:23] + "\u2026"


def _legend(comparison: Comparison, details: dict[str, str]) -> str:
    items = "".join(
        f'<li><span class="fw-swatch {_colour_class(row.colour)}"></span>{html.escape(row.label)}'
        + (
            f' <span class="fw-muted">{html.escape(details[row.run_id])}</span>'
            if row.run_id in details
            else ""
        )
        + (' <span class="fw-star">&#9733;</span>' if row.best else "")
        + "</li>"
        for row in comparison.drawn_rows
    )
    return f'<ul class="fw-legend">{items}</ul>' if items else ""


def _series_title(details: dict[str, str]) -> Callable[[Line], str]:
    """Each line's title (hovering it): its run, the inputs that tell it apart, whether it is best."""

    def title(line: Line) -> str:
        detail = details.get(line.run_id)
        return line.label + (f" ({detail})" if detail else "") + (", best" if line.best else "")

    return title


def _series_class(line: Line) -> str:
    """Each line's classes: its run's colour (``_style``), and ``fw-best`` for the best run."""
    return f"fw-c{line.colour % len(PALETTE)}" + (" fw-best" if line.best else "")


def _drawn(chart: ComparisonChart, details: dict[str, str]) -> str:
    """The chart's SVG, or a line saying why it could not be drawn: one chart never fails the page."""
    try:
        return overlay_chart_svg(chart, _series_title(details), _series_class)
    except Exception as exc:  # pygal on values it cannot scale (a range beyond any float, ...)
        reason = f"{type(exc).__name__}: {exc}"
        return f'<p class="fw-muted">This chart could not be drawn ({html.escape(reason)}).</p>'


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _charts(comparison: Comparison, draw: bool, details: dict[str, str]) -> str:
    sections: list[tuple[str, list[str]]] = []
    for section, charts in comparison.sections():
        figures: list[str] = []
        for chart in charts:
            detail = _count(len(chart.lines), "run")
            if chart.downsampled:
                detail += ", min/max envelope"
            if chart.not_drawn:
                detail += f"; {_count(chart.not_drawn, 'more run')} not drawn"
            if chart.without:
                detail += f"; {_count(chart.without, 'drawn run')} did not log it"
            figures.append(chart_figure(chart.key, detail, _drawn(chart, details) if draw else ""))
        sections.append((section, figures))
    return chart_sections(sections)


def render_comparison(
    comparison: Comparison, *, charts: bool | None = None, title: str = "Runs compared"
) -> str:
    """The comparison as an HTML fragment (a ``<section>``) for a report tab or a page.

    ``charts=False`` leaves the charts out (the default draws them when pygal is installed).

    Example:
        >>> from flyteplugins.wandb._compare import MissingRun, plan_comparison
        >>> html_text = render_comparison(plan_comparison([], [MissingRun("t", "a1", "no W&B run")]))
        >>> "no run: no W&amp;B run" in html_text
        True
    """
    draw = charts_available() if charts is None else charts
    notes = list(comparison.notes)
    if len(notes) > _NOTES_SHOWN:
        notes = [*notes[:_NOTES_SHOWN], f"... and {len(notes) - _NOTES_SHOWN} more notes."]
    if not draw and comparison.charts:
        notes.append(f"Charts need the drawing library pygal: {REPORT_EXTRA_HINT}.")
    parts = [
        f'<div class="fw-head"><h2>{html.escape(title)}</h2></div>',
        _summary(comparison),
        notes_list(notes),
    ]
    if comparison.rows:
        parts.append(f"<h3>Runs ({len(comparison.rows)})</h3>")
        parts.append(_table(comparison))
    if comparison.common:
        shared = ", ".join(f"{name} {value}" for name, value in comparison.common)
        parts.append(f'<p class="fw-muted">Every run has the same {html.escape(shared)}.</p>')
    if comparison.same_inputs:
        same = [
            f"{html.escape(name)} = {_HIDDEN if looks_secret(name) else cell_text(value)}"
            for name, value in comparison.same_inputs
        ]
        parts.append(f'<p class="fw-muted">Same in every run: {_listing(same)}</p>')
    if comparison.unshared:
        only = [f"{html.escape(key)} ({html.escape(label)})" for key, label in comparison.unshared]
        parts.append(f'<p class="fw-muted">Logged by one run only (not compared): {_listing(only)}</p>')
    if comparison.charts:
        parts.append("<h3>Metrics</h3>")
        details = _distinguishing(comparison)
        parts.append(_legend(comparison, details))
        parts.append(_charts(comparison, draw, details))
    elif comparison.rows:
        parts.append('<p class="fw-empty">No shared metric to chart.</p>')
    if comparison.charts_left_out:
        left = [html.escape(key) for key in comparison.charts_left_out]
        parts.append(f'<p class="fw-muted">Not charted (cap on charts): {_listing(left)}</p>')
    body = "\n".join(part for part in parts if part)
    return report_section(_style() + "\n" + body, extra_class="fw-compare")


def comparison_output_path(digests: Sequence[RunDigest]) -> Path:
    """Where ``flyte wandb report RUN RUN ...`` writes by default: ``wandb-compare-<n>-runs-<hash>.html``.

    The hash is of the run ids, in order: the same runs give the same file name (run ids of local
    Flyte runs are 60 characters and more, too long to join into a name).

    Example:
        >>> comparison_output_path([RunDigest("abc"), RunDigest("def")]).name
        'wandb-compare-2-runs-487b1975d9.html'
    """
    ids = "\0".join(digest.run_id for digest in digests).encode()
    return Path(
        f"wandb-compare-{len(digests)}-runs-{hashlib.sha1(ids, usedforsecurity=False).hexdigest()[:10]}.html"
    )


def write_comparison(
    digests: Sequence[RunDigest],
    output: Path | None = None,
    *,
    missing: Sequence[MissingRun] = (),
    objective: Objective | None = None,
) -> Path:
    """Write the comparison page of ``digests`` (a whole HTML document); returns where.

    ``output`` defaults to :func:`comparison_output_path` in the working directory. ``missing``:
    runs that could not be read (each a row that says why).

    Example:
        >>> write_comparison([digest_run(a), digest_run(b)], Path("compare.html"))  # doctest: +SKIP
        PosixPath('compare.html')
    """
    return _write(plan_comparison(digests, missing, objective), digests, output)


def _write(comparison: Comparison, digests: Sequence[RunDigest], output: Path | None) -> Path:
    target = output or comparison_output_path(digests)
    target.parent.mkdir(parents=True, exist_ok=True)
    title = f"W&B: {len(comparison.rows)} runs compared"
    target.write_text(render_page(render_comparison(comparison), title), encoding="utf-8")
    return target


def compare_run_dirs(
    targets: Sequence[tuple[str, Sequence[Path]]], output: Path | None = None
) -> tuple[Path, Comparison]:
    """Write the comparison page of local runs: ``(target, its run directories)`` each, as given.

    A run with several local directories (a resumed run, or one per writer) is compared by its
    newest one, and says so. A run whose log cannot be read is a row that says why, not an error.
    Returns where the page was written and what it shows.

    Example:
        >>> compare_run_dirs([("abc", [Path("wandb/offline-run-x-abc")]),
        ...                   ("def", [Path("wandb/offline-run-x-def")])])  # doctest: +SKIP
        (PosixPath('wandb-compare-abc-2-runs.html'), Comparison(...))
    """
    from dataclasses import replace

    from ._digest import digest_run

    digests: list[RunDigest] = []
    missing: list[MissingRun] = []
    seen: set[Path] = set()
    for target, run_dirs in targets:
        run_dir = run_dirs[-1]
        if run_dir.resolve() in seen:  # the same run named twice (a folder and its id): one row
            continue
        seen.add(run_dir.resolve())
        try:
            digest = digest_run(run_dir)
        except (OSError, ValueError) as exc:
            missing.append(MissingRun(None, target, f"its log could not be read: {exc}"))
            continue
        url = configured_url(digest)
        notes = digest.notes
        if len(run_dirs) > 1:
            notes = (
                *notes,
                f"{len(run_dirs)} local directories (resumed, or one per writer); compared: {run_dir.name}",
            )
        digests.append(replace(digest, url=url, notes=notes))
    comparison = plan_comparison(digests, missing)
    return _write(comparison, digests, output), comparison
