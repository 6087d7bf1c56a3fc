"""The report page of one W&B run: identity, notes, lineage, charts (inline SVG), config and summary.

One entry point, :func:`render_report`, gives the HTML fragment that the Flyte report tab shows
(see ``_report_tab.py``); :func:`render_page` wraps the same fragment into a standalone document,
which ``flyte wandb report`` writes. The data are read from the run's own transaction log
(:func:`~flyteplugins.wandb._history.read_history`) and the charts are planned by the pure
:func:`~flyteplugins.wandb._chart_model.plan_charts`.

The charts are drawn by pygal (the ``report`` extra) in ``_chart_svg.py``, the same drawing as
the comparison page's, as SVG with pygal's script and styles removed: the page needs no
JavaScript and nothing from the network (Flyte UIs are often air-gapped), and one stylesheet in
the page colours every chart for light and dark themes. Without pygal the page is still written,
without charts, and says how to get them.

Everything taken from the run (names, keys, values, config, notes, artifacts) is escaped; links
are made only of http(s) addresses; values under names that look like credentials are hidden.
Each chart's values show on hover, as SVG ``<title>`` tooltips on invisible columns (no
JavaScript); integer x axes (steps, epochs) get whole-number ticks.

Example:
    >>> from flyteplugins.wandb._report import safe_url
    >>> safe_url("javascript:alert(1)") is None, safe_url("https://wandb.ai/e/p/runs/r")
    (True, 'https://wandb.ai/e/p/runs/r')
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._chart_model import Chart, ChartModel, ChartPlanner
from ._chart_svg import line_chart_svg
from ._history import RunHistory, read_history
from ._offline import OfflineArtifact
from ._run_lineage import RunLineage, read_lineage

__all__ = [
    "REPORT_EXTRA_HINT",
    "TAB_NAME",
    "RenderCache",
    "ReportContext",
    "TaskSteps",
    "cell_text",
    "chart_figure",
    "chart_sections",
    "charts_available",
    "configured_url",
    "locate_run_dirs",
    "looks_secret",
    "notes_list",
    "render_page",
    "render_report",
    "report_section",
    "safe_url",
    "write_report",
]

TAB_NAME = "Weights & Biases"
REPORT_EXTRA_HINT = "pip install 'flyteplugins-wandb[report]'"
_CELL_LIMIT = 300
_TABLE_ROWS = 200
_POLL_SECONDS = 0.05
_HIDDEN = "&lt;hidden&gt;"
# http(s) addresses inside free text (the run's notes): shown as links.
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")
# References listed for one artifact (a Dir output references one blob per file).
_REFERENCES_SHOWN = 5


@dataclass(frozen=True)
class TaskSteps:
    """The steps one Flyte task logged into a run it shared with other tasks in this process.

    Example:
        >>> TaskSteps("train", "a1", 10, 20).describe()
        'train (a1): steps 10-19'
    """

    task: str
    action: str
    first: int
    end: int

    def describe(self) -> str:
        """A short text for the page.

        Example:
            >>> TaskSteps("eval", "a2", 5, 5).describe()
            'eval (a2): no steps'
        """
        if self.end <= self.first:
            steps = "no steps"
        elif self.end - self.first == 1:
            steps = f"step {self.first}"
        else:
            steps = f"steps {self.first}-{self.end - 1}"
        return f"{self.task} ({self.action}): {steps}"


@dataclass(frozen=True)
class ReportContext:
    """What the caller knows about the run beyond its log.

    Attributes:
        url: the run's W&B page (used only if http or https).
        task: the Flyte task whose report this is.
        notes: sentences shown above the charts (plain text; escaped).
        task_steps: for a run shared by several tasks of this process, which task logged which steps.

    Example:
        >>> ReportContext(url="https://wandb.ai/e/p/runs/r", task="train").task
        'train'
    """

    url: str | None = None
    task: str | None = None
    notes: tuple[str, ...] = ()
    task_steps: tuple[TaskSteps, ...] = field(default_factory=tuple)


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) address, else ``None``.

    Example:
        >>> safe_url("http://localhost:8080/e/p/runs/r"), safe_url("data:text/html,x"), safe_url(None)
        ('http://localhost:8080/e/p/runs/r', None, None)
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def charts_available() -> bool:
    """Whether the drawing library (pygal, the ``report`` extra) is installed.

    Example:
        >>> isinstance(charts_available(), bool)
        True
    """
    import importlib.util

    return importlib.util.find_spec("pygal") is not None


def read_when_finished(run_dir: str | os.PathLike[str], wait: float) -> RunHistory:
    """Read a run directory, re-reading for up to ``wait`` seconds until its log has an exit record.

    Example:
        >>> read_when_finished(run_dir, wait=5).run.finished  # doctest: +SKIP
        True
    """
    from ._history import log_has_exit

    deadline = time.monotonic() + wait
    # Wait on the log's last blocks only: re-reading a long log costs as much as reading it.
    while time.monotonic() < deadline:
        try:
            if log_has_exit(run_dir):
                break
        except OSError:
            pass
        time.sleep(_POLL_SECONDS)
    return read_history(run_dir)


class RenderCache:
    """What rendering the same, growing run again keeps from one page to the next.

    The helper that follows a run's log renders its page while the run is being finished and
    again once its log is complete. With a cache the second page costs what changed: the charts
    are planned from the values added since (:class:`~flyteplugins.wandb._chart_model.ChartPlanner`)
    and a chart whose points did not change is not drawn again. Pages are the same with or
    without a cache.

    Example:
        >>> cache = RenderCache()
        >>> html_text = render_report(history, cache=cache)  # doctest: +SKIP
        >>> render_report(history, cache=cache) == html_text  # doctest: +SKIP
        True
    """

    def __init__(self) -> None:
        self.planner = ChartPlanner()
        self._svgs: dict[tuple[Any, ...], str] = {}
        self.drawn = 0  # charts drawn (not reused) by the last page
        self.drawn_total = 0  # and by every page

    def drawer(self) -> Callable[[Chart], str]:
        """A chart-drawing function for one page: it reuses the previous page's charts, and the
        cache keeps this page's charts (only those) for the next."""
        kept, self._svgs = self._svgs, {}
        page = self._svgs
        self.drawn = 0

        def draw(chart: Chart) -> str:
            key = (chart.key, chart.x_label, tuple(chart.xs), tuple(chart.ys))
            svg = kept.get(key)
            if svg is None:
                svg = line_chart_svg(chart)
                self.drawn += 1
                self.drawn_total += 1
            page[key] = svg
            return svg

        return draw


def render_report(
    run_dir: str | os.PathLike[str] | RunHistory,
    context: ReportContext | None = None,
    *,
    charts: bool | None = None,
    cache: RenderCache | None = None,
) -> str:
    """The report of one run directory (online or offline), as an HTML fragment.

    ``run_dir`` is a run directory or an already read :class:`RunHistory`. ``charts=False``
    leaves the charts out (the default is to draw them when pygal is installed). A log that
    cannot be read at all gives a page that says why. ``cache`` makes rendering a growing run
    again cheaper (see :class:`RenderCache`).

    Example:
        >>> html_text = render_report("wandb/offline-run-20250101_120000-abc")  # doctest: +SKIP
        >>> "<svg" in html_text  # doctest: +SKIP
        True
    """
    context = context or ReportContext()
    draw = charts_available() if charts is None else charts
    if isinstance(run_dir, RunHistory):
        history = run_dir
    else:
        try:
            history = read_history(run_dir)
        except (OSError, ValueError) as exc:
            return report_section(
                _header(context.url, offline=None)
                + notes_list([*context.notes, f"The run's files could not be read: {exc}"])
            )
    return _render(history, context, draw, cache)


def render_page(fragment: str, title: str = TAB_NAME) -> str:
    """A standalone HTML document around a report fragment.

    Example:
        >>> render_page("<p>x</p>", "a <b>").startswith("<!doctype html>")
        True
    """
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{margin:0}</style></head>\n<body>\n" + fragment + "\n</body></html>\n"
    )


_STYLE = """<style>
.fw-report{--fw-fg:#1f2328;--fw-muted:#57606a;--fw-bg:#ffffff;--fw-card:#f6f8fa;--fw-border:#d0d7de;
--fw-grid:rgba(127,127,127,.25);--fw-line:#0b66d6;--fw-accent:#ffcc33;--fw-accent-fg:#1f2328;
--fw-warn-bg:#fff8c5;--fw-warn-border:#d4a72c;
color:var(--fw-fg);background:var(--fw-bg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
Helvetica,Arial,sans-serif;padding:16px 20px;border-radius:8px;max-width:1400px}
@media (prefers-color-scheme:dark){.fw-report{--fw-fg:#e6edf3;--fw-muted:#9da7b3;--fw-bg:#0d1117;
--fw-card:#161b22;--fw-border:#30363d;--fw-grid:rgba(200,200,200,.18);--fw-line:#58a6ff;
--fw-warn-bg:#2d2a14;--fw-warn-border:#9e7c1a}}
.fw-report h2{font-size:20px;margin:0 12px 0 0;display:inline-block;vertical-align:middle}
.fw-report h3{font-size:16px;margin:22px 0 8px;border-bottom:1px solid var(--fw-border);padding-bottom:4px}
.fw-report h4{font-size:14px;margin:14px 0 6px;color:var(--fw-muted);text-transform:none}
.fw-report .fw-head{display:flex;align-items:center;flex-wrap:wrap;gap:10px;margin-bottom:10px}
.fw-report a.fw-button{display:inline-block;background:var(--fw-accent);color:var(--fw-accent-fg);
font-weight:600;padding:6px 14px;border-radius:6px;text-decoration:none}
.fw-report a.fw-button:hover{filter:brightness(.95)}
.fw-report .fw-muted{color:var(--fw-muted)}
.fw-report ul.fw-notes{list-style:none;margin:8px 0;padding:0}
.fw-report ul.fw-notes li{background:var(--fw-warn-bg);border-left:4px solid var(--fw-warn-border);
padding:6px 10px;margin:4px 0;border-radius:4px}
.fw-report table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
.fw-report th,.fw-report td{border:1px solid var(--fw-border);padding:4px 8px;text-align:left;
vertical-align:top;word-break:break-word;max-width:640px}
.fw-report th{background:var(--fw-card);font-weight:600}
.fw-report code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
background:var(--fw-card);padding:1px 4px;border-radius:4px}
.fw-report .fw-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,360px),1fr));
gap:12px}
.fw-report .fw-sections{display:flex;flex-wrap:wrap;column-gap:16px}
.fw-report .fw-section{flex:1 1 100%;min-width:0}
.fw-report .fw-section.fw-one{flex:1 1 360px;max-width:560px}
.fw-report .fw-section.fw-two{flex:2 1 736px;max-width:1000px}
.fw-report figure{margin:0;background:var(--fw-card);border:1px solid var(--fw-border);border-radius:6px;
padding:8px 8px 4px}
.fw-report figcaption{font-weight:600;font-size:13px;word-break:break-all}
.fw-report figcaption .fw-muted{font-weight:400;font-size:12px}
.fw-report svg.pygal-chart{width:100%;height:auto;display:block;font-family:inherit}
.fw-report .pygal-chart .background{fill:transparent}
.fw-report .pygal-chart text{fill:var(--fw-muted);font-size:10px}
.fw-report .pygal-chart .title{fill:var(--fw-muted);font-size:12px;text-anchor:middle}
.fw-report .pygal-chart .axis.x text,.fw-report .pygal-chart text.no_data{text-anchor:middle}
.fw-report .pygal-chart .axis.y text{text-anchor:end}
.fw-report .pygal-chart .axis .line{stroke:var(--fw-muted);stroke-width:1}
.fw-report .pygal-chart .axis .guide.line{stroke:var(--fw-grid);stroke-dasharray:none;stroke-width:1}
.fw-report .pygal-chart .axis .major.line{stroke:var(--fw-grid);stroke-width:1}
.fw-report .pygal-chart .series .line{fill:none;stroke:var(--fw-line);stroke-width:1.6;
stroke-linejoin:round}
.fw-report .pygal-chart .tooltip{display:none}
.fw-report .pygal-chart .dots .dot{fill:var(--fw-line);stroke:var(--fw-line);stroke-width:2}
.fw-report .fw-hits rect{fill:transparent}
.fw-report .fw-hits rect:hover{fill:var(--fw-grid)}
.fw-report details>summary{cursor:pointer;font-weight:600;margin:6px 0}
.fw-report p.fw-backlink{background:var(--fw-card);border-left:4px solid var(--fw-line);padding:6px 10px;
border-radius:4px;margin:6px 0;word-break:break-word}
.fw-report td ul.fw-refs{margin:0;padding-left:16px}
</style>"""


def report_section(body: str, run_id: str = "", extra_class: str = "") -> str:
    """A report section (``<section class="fw-report">``) with the page's stylesheet around ``body``.

    Other pages (the comparison of several runs) use it too, so every page has the same look.

    Example:
        >>> report_section("<p>x</p>", extra_class="fw-compare")[:37]
        '<section class="fw-report fw-compare"'
    """
    classes = "fw-report" + (f" {html.escape(extra_class)}" if extra_class else "")
    attribute = f' data-run-id="{html.escape(run_id)}"' if run_id else ""
    return f'<section class="{classes}"{attribute}>\n{_STYLE}\n{body}\n</section>'


def _header(url: str | None, offline: bool | None) -> str:
    link = safe_url(url)
    button = ""
    if link is not None:
        label = "Open in W&amp;B (after wandb sync)" if offline else "Open in W&amp;B"
        button = (
            f'<a class="fw-button" href="{html.escape(link, quote=True)}" target="_blank" '
            f'rel="noopener noreferrer">{label} &#8599;</a>'
        )
    return f'<div class="fw-head"><h2>Weights &amp; Biases</h2>{button}</div>'


def notes_list(notes: Iterable[str]) -> str:
    """Notes (plain text) as the page's highlighted list, escaped; empty without notes.

    Example:
        >>> notes_list(["a <b>"])
        '<ul class="fw-notes"><li>a &lt;b&gt;</li></ul>'
    """
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes if note)
    return f'<ul class="fw-notes">{items}</ul>' if items else ""


def cell_text(value: Any) -> str:
    """A value as escaped text for a table cell (JSON for structures, long text cut).

    Example:
        >>> cell_text("<b>"), cell_text({"a": 1})
        ('&lt;b&gt;', '{&quot;a&quot;: 1}')
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > _CELL_LIMIT:
        text = text[:_CELL_LIMIT] + f"... (+{len(text) - _CELL_LIMIT} characters)"
    return html.escape(text)


def looks_secret(key: str) -> bool:
    """Whether a config key or input name looks like a credential: its value is not shown on a page.

    Example:
        >>> looks_secret("db.api_key"), looks_secret("learning_rate")
        (True, False)
    """
    from ._errors import CREDENTIAL_NAME

    return any(CREDENTIAL_NAME.search(part) for part in key.split("."))


def _flatten(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and "_type" not in value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _table(rows: Sequence[tuple[str, Any]], head: tuple[str, str] = ("key", "value")) -> str:
    shown = rows[:_TABLE_ROWS]
    body = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{_HIDDEN if looks_secret(key) else cell_text(value)}</td></tr>"
        for key, value in shown
    )
    more = ""
    if len(rows) > len(shown):
        more = f'<p class="fw-muted">{len(rows) - len(shown)} more entries are not shown.</p>'
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>{more}"


def _identity(history: RunHistory, context: ReportContext) -> str:
    run = history.run
    if run.exit_code is None:
        state = "running, or stopped without finishing (no exit record)"
    elif run.exit_code == 0:
        state = "finished"
    else:
        state = f"failed (exit code {run.exit_code})"
    mode = "offline" if run.offline else "online"
    if run.label:
        mode += f", shared writer {run.label!r}"
    elif run.shared_mode:
        mode += ", shared"
    rows: list[tuple[str, Any]] = [
        ("entity", run.entity or "(none recorded; set when synced)"),
        ("project", run.project or "(none)"),
        ("run id", run.run_id),
    ]
    if run.name:
        rows.append(("name", run.name))
    if run.group:
        rows.append(("group", run.group))
    if run.job_type:
        rows.append(("job type", run.job_type))
    if run.tags:
        rows.append(("tags", ", ".join(run.tags)))
    rows.extend([("mode", mode), ("state", state), ("steps logged", history.rows)])
    if context.task:
        rows.append(("Flyte task", context.task))
    rows.append(("run directory", str(run.path)))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{cell_text(v)}</td></tr>" for k, v in rows)
    sync = ""
    if run.offline:
        command = f"wandb sync {shlex.quote(str(run.path))}"
        sync = f"<p>Upload this offline run with <code>{html.escape(command)}</code></p>"
    return f"<table>{body}</table>{sync}"


def _link(url: str, label: str | None = None) -> str:
    """``url`` as a link when it is an http(s) address, else as plain text; escaped either way."""
    link = safe_url(url)
    text = html.escape(label if label is not None else url)
    if link is None:
        return text
    return f'<a href="{html.escape(link, quote=True)}" target="_blank" rel="noopener noreferrer">{text}</a>'


def _linked_text(text: str) -> str:
    """Free text, escaped, with the http(s) addresses in it as links."""
    if len(text) > _CELL_LIMIT * 4:
        text = text[: _CELL_LIMIT * 4] + f"... (+{len(text) - _CELL_LIMIT * 4} characters)"
    parts: list[str] = []
    last = 0
    for match in _URL_IN_TEXT.finditer(text):
        url = match.group(0).rstrip(".,;:)")
        parts.append(html.escape(text[last : match.start()]))
        parts.append(_link(url))
        last = match.start() + len(url)
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _uri_cell(uri: str) -> str:
    return _link(uri) if safe_url(uri) else f"<code>{html.escape(uri)}</code>" if uri else ""


def _references(artifact: OfflineArtifact) -> str:
    uris = artifact.uris
    if not uris:
        files = len(artifact.references)
        return f'<span class="fw-muted">{files} file{"" if files == 1 else "s"} stored in the artifact</span>'
    items = "".join(f"<li>{_uri_cell(uri)}</li>" for uri in uris[:_REFERENCES_SHOWN])
    more = len(uris) - _REFERENCES_SHOWN
    if more > 0:
        items += f'<li class="fw-muted">{more:,} more</li>'
    return f'<ul class="fw-refs">{items}</ul>'


def _rows_note(total: int) -> str:
    more = total - _TABLE_ROWS
    return f'<p class="fw-muted">{more:,} more entries are not shown.</p>' if more > 0 else ""


def _lineage(lineage: RunLineage) -> str:
    """The page's lineage section: the line back to Flyte, the writers, the artifacts logged and used."""
    if lineage.empty:
        return ""
    parts = ["<h3>Lineage</h3>"]
    if lineage.notes:
        parts.append(f'<p class="fw-backlink"><b>Run notes:</b> {_linked_text(lineage.notes)}</p>')
    if lineage.writers:
        rows = []
        for writer in lineage.writers:
            role = "started the run" if writer.owner else "wrote to the run"
            what = ", ".join(f"{name} {value}" for name, value in writer.fields.items())
            where = []
            if writer.url:
                page = safe_url(writer.url)
                where.append(_link(page, "Flyte page") if page else _uri_cell(writer.url))
            if writer.metadata:
                where.append(f"metadata <code>{html.escape(writer.metadata)}</code>")
            rows.append(
                f"<tr><td><code>{html.escape(writer.key)}</code></td><td>{html.escape(role)}</td>"
                f"<td>{html.escape(what)}</td><td>{'<br>'.join(where)}</td></tr>"
            )
        parts.append(
            f"<h4>Flyte actions ({len(lineage.writers)}, from the run config)</h4>"
            "<table><tr><th>config key</th><th>role</th><th>Flyte action</th><th>where</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    if lineage.logged:
        rows = [
            f"<tr><td>{html.escape(artifact.name)}</td><td>{html.escape(artifact.type)}</td>"
            f"<td>{html.escape(', '.join(artifact.aliases))}</td><td>{_references(artifact)}</td></tr>"
            for artifact in lineage.logged[:_TABLE_ROWS]
        ]
        parts.append(
            f"<h4>Artifacts logged ({len(lineage.logged)})</h4>"
            "<table><tr><th>artifact</th><th>type</th><th>aliases</th><th>references</th></tr>"
            + "".join(rows)
            + "</table>"
            + _rows_note(len(lineage.logged))
        )
    if lineage.uses or lineage.used_online:
        rows = [
            f"<tr><td><code>{html.escape(use.writer)}</code></td><td>{html.escape(use.input)}</td>"
            f"<td>{html.escape(use.artifact)}</td><td>{_uri_cell(use.uri)}</td></tr>"
            for use in lineage.uses[:_TABLE_ROWS]
        ]
        rows.extend(
            f'<tr><td class="fw-muted">recorded by W&amp;B</td><td></td><td>{html.escape(artifact.name)}'
            f"{' (' + html.escape(artifact.type) + ')' if artifact.type else ''}</td>"
            f"<td>{_references(artifact) if artifact.references else ''}</td></tr>"
            for artifact in lineage.used_online[:_TABLE_ROWS]
        )
        parts.append(
            f"<h4>Artifacts and blobs used ({len(lineage.uses) + len(lineage.used_online)})</h4>"
            "<table><tr><th>by</th><th>input</th><th>artifact</th><th>URI</th></tr>"
            + "".join(rows)
            + "</table>"
            + _rows_note(max(len(lineage.uses), len(lineage.used_online)))
        )
    return "".join(parts)


def _reading_notes(history: RunHistory) -> list[str]:
    run = history.run
    notes: list[str] = []
    if run.truncated:
        notes.append(
            f"The transaction log ends in an incomplete or damaged record: reading stopped at byte "
            f"{run.bytes_read:,} of {run.log_size:,}. The page shows the {history.rows:,} steps read "
            "before that point."
        )
    return notes


def _chart_notes(model: ChartModel, draw: bool) -> list[str]:
    notes: list[str] = []
    if model.left_out:
        shown = ", ".join(model.left_out[:10]) + (", ..." if len(model.left_out) > 10 else "")
        notes.append(
            f"{len(model.charts)} charts are shown; {len(model.left_out)} more metrics are left out: {shown}."
        )
    if model.skipped_values:
        notes.append(
            f"{model.skipped_values:,} logged values are not drawn: they are not numbers, or are NaN or "
            "infinite."
        )
    if not draw and model.charts:
        notes.append(f"Charts need the drawing library pygal: {REPORT_EXTRA_HINT}.")
    return notes


def _step_notes(task_steps: Sequence[TaskSteps], task: str | None) -> str:
    if not task_steps:
        return ""
    items = "".join(f"<li>{html.escape(steps.describe())}</li>" for steps in task_steps)
    if task:
        items += f"<li>{html.escape(task)}, which started the run: the other steps</li>"
    return f"<h3>Which task logged what</h3><ul>{items}</ul>"


def chart_figure(key: str, detail: str, svg: str) -> str:
    """One chart as a captioned figure: the metric, what was drawn of it (plain text), its SVG.

    Example:
        >>> chart_figure("a<b", "3 points", "").startswith('<figure data-metric="a&lt;b"><figcaption>a&lt;b')
        True
    """
    caption = (
        f'<figcaption>{html.escape(key)} <span class="fw-muted">{html.escape(detail)}</span></figcaption>'
    )
    return f'<figure data-metric="{html.escape(key, quote=True)}">{caption}{svg}</figure>'


def chart_sections(sections: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Figures grouped in their ``/`` sections, each section a grid of charts.

    A section of one or two charts shares its row with the next such section, or fills the row
    without stretching its charts past a readable size; larger sections are a grid of columns.

    Example:
        >>> chart_sections([("train", ["<figure></figure>"])]).count('class="fw-section fw-one"')
        1
    """
    parts: list[str] = []
    for section, figures in sections:
        width = {1: " fw-one", 2: " fw-two"}.get(len(figures), "")
        parts.append(
            f'<div class="fw-section{width}"><h4>{html.escape(section)}</h4>'
            f'<div class="fw-grid">{"".join(figures)}</div></div>'
        )
    return f'<div class="fw-sections">{"".join(parts)}</div>'


def _charts(model: ChartModel, draw: bool, svg_of: Callable[[Chart], str] | None = None) -> str:
    svg_of = svg_of or line_chart_svg
    sections: list[tuple[str, list[str]]] = []
    for section, charts in model.sections():
        figures: list[str] = []
        for chart in charts:
            detail = f"{chart.logged:,} point" + ("" if chart.logged == 1 else "s")
            if chart.downsampled:
                detail += f", {len(chart.xs):,} drawn (min/max envelope)"
            if chart.skipped:
                detail += f", {chart.skipped:,} skipped"
            figures.append(chart_figure(chart.key, detail, svg_of(chart) if draw else ""))
        sections.append((section, figures))
    return chart_sections(sections)


def _render(history: RunHistory, context: ReportContext, draw: bool, cache: RenderCache | None = None) -> str:
    run = history.run
    planner = cache.planner if cache is not None else ChartPlanner()
    model = planner.plan(history.columns, history.steps(), run.step_metrics)
    notes = [*context.notes, *_reading_notes(history), *_chart_notes(model, draw)]
    parts = [_header(context.url, run.offline), notes_list(notes), _identity(history, context)]
    parts.append(_lineage(read_lineage(run)))
    parts.append(_step_notes(context.task_steps, context.task))
    parts.append("<h3>Metrics</h3>")
    if model.charts:
        parts.append(_charts(model, draw, cache.drawer() if cache is not None else None))
    else:
        parts.append('<p class="fw-empty">No numeric metrics were logged to this run.</p>')
    if model.not_numeric:
        listed = ", ".join(model.not_numeric[:20]) + (", ..." if len(model.not_numeric) > 20 else "")
        parts.append(
            f'<p class="fw-muted">Logged but not charted (no numeric values): {html.escape(listed)}</p>'
        )
    config = _flatten(run.config)
    summary = [(k, v) for k, v in _flatten(run.summary) if not k.startswith("_")]
    parts.append(f"<h3>Config ({len(config)})</h3>")
    parts.append(_table(config) if config else '<p class="fw-muted">No config.</p>')
    parts.append(f"<h3>Summary ({len(summary)})</h3>")
    parts.append(_table(summary) if summary else '<p class="fw-muted">No summary.</p>')
    return report_section("\n".join(part for part in parts if part), run.run_id)


def report_output_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where ``flyte wandb report`` writes a run's page by default: ``wandb-report-<run id>.html``.

    The run id is the folder's; a folder not named after its run (``wandb/latest-run``, a link
    to the newest run's folder) is named after the run its log records.

    Example:
        >>> report_output_path("wandb/offline-run-20250101_120000-abc").name
        'wandb-report-abc.html'
    """
    from ._log_format import RUN_DIR

    path = Path(run_dir)
    # The log's name (run-<id>.wandb) is the run's; the folder's may carry a suffix or be a link.
    logs = sorted(path.glob("run-*.wandb")) if path.is_dir() else []
    if logs:
        run_id = logs[0].name.removeprefix("run-").removesuffix(".wandb")
    else:
        match = RUN_DIR.match(path.name)
        run_id = match.group("rest") if match else path.name
    return Path(f"wandb-report-{run_id}.html")


def locate_run_dirs(target: str) -> list[Path]:
    """The run directories ``flyte wandb report TARGET`` means, oldest first.

    See :func:`~flyteplugins.wandb._download_local.locate_run_dirs` (the one lookup, shared with
    :func:`~flyteplugins.wandb.read_wandb_run`).

    Example:
        >>> locate_run_dirs("no-such-run-id")
        []
    """
    from ._download_local import locate_run_dirs as locate

    return locate(target)


def configured_url(run: Any) -> str | None:
    """A run's W&B page from the host configured here and the entity and project the run recorded.

    ``run`` is anything with ``run_id``, ``entity`` and ``project`` (a read run, a run digest);
    ``None`` when the host, entity or project is not known.

    Example:
        >>> from flyteplugins.wandb._digest import RunDigest
        >>> configured_url(RunDigest("r1", entity="e", project="p"))  # doctest: +SKIP
        'https://wandb.ai/e/p/runs/r1'
    """
    from ._layers import resolve
    from ._urls import run_url

    try:
        resolved = resolve("run")
        entity = run.entity or resolved.get("entity")
        project = run.project or resolved.get("project")
        host = resolved.get("host")
    except Exception:  # a configuration problem must not stop a local page
        return None
    if not (entity and project and host):
        return None
    return run_url(str(host), str(entity), str(project), run.run_id)


def write_report(run_dirs: Sequence[Path], output: Path | None = None, wait: float = 0.0) -> Path:
    """Render the page of one run (all its directories, one after the other) into an HTML file.

    Returns where it was written: ``output``, or ``wandb-report-<run id>.html`` here. ``wait``:
    seconds to wait for each log's exit record (a run that has just been finished).

    Example:
        >>> write_report(locate_run_dirs("abc123"))  # doctest: +SKIP
        PosixPath('wandb-report-abc123.html')
    """
    if not run_dirs:
        raise ValueError("no run directories to report")
    fragments: list[str] = []
    title = TAB_NAME
    for run_dir in run_dirs:
        history = read_when_finished(run_dir, wait) if wait > 0 else read_history(run_dir)
        notes: tuple[str, ...] = ()
        if len(run_dirs) > 1:
            notes = (
                f"This run has {len(run_dirs)} local directories (a resumed run, or one per writer); "
                f"this section is {run_dir.name}.",
            )
        context = ReportContext(url=configured_url(history.run), notes=notes)
        fragments.append(render_report(history, context))
        title = f"W&B run {history.run.run_id}"
    target = output or report_output_path(run_dirs[-1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_page("\n".join(fragments), title), encoding="utf-8")
    return target
