"""The demo: a real local Flyte workflow logging to W&B in offline mode, in a few seconds.

No account and no network: runs are written under ``./.wandb-demo`` and can be uploaded later with
``wandb sync``. Run it with ``make demo``, ``python -m flyteplugins.wandb.demo`` or
``flyte wandb demo``.

A parent task starts a W&B run; its children show the three run modes:

- ``prepare_data`` (``auto``, the default) attaches to the parent's run,
- ``train`` (``run_mode="new"``) starts its own run,
- ``evaluate`` is called inside ``with wandb_config(run_mode="new", tags=["eval"])`` and so gets
  its own run, tagged ``eval``, although its decorator says nothing about run modes,
- ``report`` (``run_mode="shared"``) must write into the parent's run.
- ``export_model`` (``log_outputs=True``) returns a ``flyte.io.File``, logged into the parent's run
  as a W&B artifact that references the file (see the Lineage page of the docs).

Afterwards the demo prints, for every task, its run mode, the W&B run it wrote to, the link Flyte
shows for it and where the offline run lives on disk; then where each setting came from
(:func:`~flyteplugins.wandb.explain`), what the pipeline's run records about Flyte (lineage), and
how to upload the runs.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import flyte
from flyte.io import File

from ._compat import tracked_actions
from ._config import wandb_config
from ._decorators import wandb_init
from ._layers import LayerKind, explain, resolve
from ._link import Wandb
from ._offline import find_offline_run_dirs, read_offline_run
from ._run import get_wandb_run
from ._settings import preserved_environ

__all__ = ["DEMO_DIR", "DEMO_ENTITY", "DEMO_PROJECT", "TaskRow", "main", "pipeline", "run_demo"]

DEMO_PROJECT = "flyte-wandb-demo"
DEMO_ENTITY = "demo-team"
DEMO_DIR = ".wandb-demo"
_DEMO_TAGS = ["demo", "offline"]

env = flyte.TaskEnvironment(name="flyte_wandb_demo")
# flyte ships no type information; a typed alias keeps mypy checking the task bodies.
task: Callable[[Callable[..., Any]], Any] = env.task
# Tasks whose Flyte report gets the "Weights & Biases" tab (charts of their run).
report_task: Callable[[Callable[..., Any]], Any] = env.task(report=True)


def _log(metrics: Mapping[str, float]) -> str:
    """Log to the task's run and return the run's id ("" when W&B is disabled)."""
    run = get_wandb_run()
    if run is None:
        return ""
    run.log(dict(metrics))
    return str(run.id)


@wandb_init
@task
async def prepare_data(rows: int) -> str:
    """``auto`` (the default): writes into the parent's run."""
    return _log({"data/rows": rows, "data/features": 16, "data/missing_fraction": 0.02})


@wandb_init(run_mode="new", job_type="train")
@report_task
async def train(learning_rate: float, epochs: int) -> str:
    """``new``: a run of its own, with a short loss curve."""
    run_id = ""
    for epoch in range(epochs):
        loss = 2.0 * math.exp(-learning_rate * 8 * (epoch + 1)) + 0.05
        run_id = _log(
            {"train/loss": round(loss, 4), "train/epoch": epoch, "train/learning_rate": learning_rate}
        )
    return run_id


@wandb_init
@task
async def evaluate(threshold: float) -> str:
    """Plain ``@wandb_init``: its run mode comes from the ``wandb_config`` block it is called in."""
    return _log({"eval/accuracy": 0.91, "eval/f1": 0.88, "eval/threshold": threshold})


@wandb_init(run_mode="shared")
@task
async def report() -> str:
    """``shared``: must write into the parent's run (an error if there were none)."""
    return _log({"report/tasks_done": 4})


@wandb_init(log_outputs=True)
@task
async def export_model(epochs: int) -> File:
    """``log_outputs=True``: the returned file becomes a W&B artifact referencing it (no copy)."""
    path = Path(os.environ["WANDB_DIR"]) / "model.txt"
    path.write_text(f"a model trained for {epochs} epochs\n")
    return await File.from_local(str(path))


@wandb_init
@report_task
async def pipeline(rows: int = 1000, learning_rate: float = 0.1, epochs: int = 5) -> str:
    """The parent task: starts the workflow's run and calls the children.

    Example:
        ```python
        flyte.init()
        flyte.with_runcontext(mode="local", custom_context=wandb_config(project="p")).run(pipeline)
        ```
    """
    run_id = _log({"pipeline/rows_requested": rows})
    await prepare_data(rows)
    await train(learning_rate, epochs)
    # Only the children called inside the block get a run of their own, tagged "eval".
    with wandb_config(run_mode="new", tags=["eval"]):
        await evaluate(0.5)
    await report()
    await export_model(epochs)
    return run_id


_TASKS = {t.name: t for t in (pipeline, prepare_data, train, evaluate, report)}

# Short names for the layer a run mode came from, for the table.
_SOURCE = {
    "default": "default",
    "file": "config file",
    "env": "environment",
    "parent": "wandb_config",
    "block": "wandb_config",
    "task": "@wandb_init",
}


@dataclass(frozen=True)
class TaskRow:
    """What one task of the demo did about W&B.

    Example:
        >>> row = TaskRow("train", "a1", None, "new", "@wandb_init", "r-a1", "https://wandb.ai/e/p/runs/r-a1",
        ...               run_dirs=())
        >>> row.run_mode
        'new'
    """

    task: str
    action: str
    parent_action: str | None
    run_mode: str
    run_mode_source: str
    run_id: str
    link: str
    run_dirs: tuple[Path, ...]


@contextmanager
def _demo_environment(wandb_dir: Path) -> Iterator[None]:
    """Offline, quiet W&B writing under ``wandb_dir``; the caller's environment is restored after."""
    with preserved_environ("WANDB_MODE", "WANDB_SILENT", "WANDB_DIR"):
        # A user who asked for another mode (online, disabled) gets it; everyone else needs no account.
        os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE") or "offline"
        os.environ["WANDB_SILENT"] = "true"
        os.environ["WANDB_DIR"] = str(wandb_dir)
        yield


def _find_run_dirs(wandb_dir: Path, run_id: str) -> tuple[Path, ...]:
    if not run_id:
        return ()
    return tuple(find_offline_run_dirs(wandb_dir / "wandb", run_id))


def _output_of(outputs: Any) -> str:
    if isinstance(outputs, Mapping) and len(outputs) == 1:
        outputs = next(iter(outputs.values()))
    return outputs if isinstance(outputs, str) else ""


def _rows(tracker: Any, wandb_dir: Path) -> list[TaskRow]:
    rows = []
    for action, node in tracked_actions(tracker):
        flyte_task = _TASKS.get(node.task_name)
        if flyte_task is None:  # e.g. Flyte's own group nodes
            continue
        link_obj = next(link for link in flyte_task.links if isinstance(link, Wandb))
        context = dict(node.context or {})
        # The same resolution the task's run start used, with the context the task received.
        resolved = resolve("run", task=link_obj._layer, context=context, use_current_context=False)
        kind: LayerKind | None = resolved.kind_of("run_mode")
        links = dict(node.log_links or [])
        run_id = _output_of(node.outputs)
        rows.append(
            TaskRow(
                task=node.task_name.rsplit(".", 1)[-1],
                action=action,
                parent_action=node.parent_id,
                run_mode=str(resolved.get("run_mode")),
                run_mode_source=_SOURCE.get(kind or "default", str(kind)),
                run_id=run_id,
                link=links.get(link_obj.name, ""),
                run_dirs=_find_run_dirs(wandb_dir, run_id),
            )
        )
    return rows


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return (indent + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _heading(title: str, out: TextIO) -> None:
    print("", file=out)
    print(title, file=out)
    print("=" * len(title), file=out)


def _report(rows: Sequence[TaskRow], context: Mapping[str, str], wandb_dir: Path, out: TextIO) -> None:
    by_action = {r.action: r for r in rows}

    def writes_to(row: TaskRow) -> str:
        parent = by_action.get(row.parent_action or "")
        if not row.run_id:
            return "no run (W&B disabled)"
        if parent is not None and parent.run_id == row.run_id:
            return f"{parent.task}'s run"
        return "its own run"

    _heading("Tasks and their W&B runs", out)
    table = _table(
        ("task", "run mode (set by)", "writes to", "W&B run id"),
        [(r.task, f"{r.run_mode} ({r.run_mode_source})", writes_to(r), r.run_id or "-") for r in rows],
        indent="",
    )
    print(table[0], file=out)
    print(table[1], file=out)
    for text, row in zip(table[2:], rows, strict=True):
        print(text, file=out)
        print(f"    Flyte link:  {row.link or '- (no link: W&B is disabled)'}", file=out)
        shown = ", ".join(_shown_path(p) for p in row.run_dirs) or "- (nothing written)"
        print(f"    on disk:     {shown}", file=out)

    _heading("Where the workflow's W&B settings come from: explain()", out)
    print(explain(context=context), file=out)

    _lineage_report(rows, out)

    run_dirs: list[Path] = []
    for row in rows:
        run_dirs.extend(p for p in row.run_dirs if p not in run_dirs)
    if not run_dirs or os.environ.get("WANDB_MODE") != "offline":
        return
    _heading("Uploading the runs once online", out)
    print(f"{len(run_dirs)} offline runs are under {_shown_path(wandb_dir)}/. Upload them with:", file=out)
    print("", file=out)
    print("  wandb login", file=out)
    print("  wandb sync \\", file=out)
    for i, path in enumerate(run_dirs):
        print(f"    {_shown_path(path)}" + (" \\" if i < len(run_dirs) - 1 else ""), file=out)
    print("", file=out)
    print(f"They belong to entity {DEMO_ENTITY!r}, project {DEMO_PROJECT!r}; add", file=out)
    print("--entity YOUR_ENTITY --project YOUR_PROJECT to `wandb sync` to upload them to yours.", file=out)


def _lineage_report(rows: Sequence[TaskRow], out: TextIO) -> None:
    """The pipeline run's backlink to Flyte, its writers' entries and its artifacts, read back from
    what W&B wrote to disk."""
    owner = next((r for r in rows if r.task == "pipeline" and r.run_dirs), None)
    if owner is None:
        return
    run = read_offline_run(owner.run_dirs[0], wait=10)
    _heading("Lineage: what the pipeline's W&B run records about Flyte", out)
    print(f"notes:  {run.notes}", file=out)
    for key in sorted(k for k in run.config if k == "flyte" or k.startswith("flyte/")):
        entry = run.config[key]
        if not isinstance(entry, Mapping):
            continue
        shown = {k: entry[k] for k in ("task", "action", "attempt", "url", "inputs", "used") if k in entry}
        print(f"config[{key!r}]: {shown}", file=out)
    for artifact in run.artifacts:
        print(f"artifact {artifact.name} ({artifact.type}), aliases {', '.join(artifact.aliases)}", file=out)
        print(f"    references: {', '.join(artifact.uris)}", file=out)
        print(f"    metadata:   {artifact.metadata}", file=out)


def _report_pages(rows: Sequence[TaskRow], flyte_run_dir: str | None, wandb_dir: Path, out: TextIO) -> None:
    """Where the tasks' Flyte reports (W&B tab) are; one page per run, as ``flyte wandb report``."""
    from ._report import charts_available, write_report

    _heading("Charts of the runs: report pages", out)
    reports = sorted(Path(flyte_run_dir).rglob("report.html")) if flyte_run_dir else []
    if reports:
        print("The Flyte reports of the tasks declared with report=True (tab 'Weights & Biases'):", file=out)
        for path in reports:
            print(f"  {_shown_path(path)}", file=out)
    if not charts_available():
        print("Charts need the drawing library pygal: pip install 'flyteplugins-wandb[report]'", file=out)
        return
    print("One page per run, as `flyte wandb report RUN_DIR` writes it:", file=out)
    written: list[Path] = []
    for row in rows:
        if row.run_dirs and row.run_dirs[-1] not in written:
            written.append(row.run_dirs[-1])
            target = wandb_dir / "reports" / f"wandb-report-{row.run_id}.html"
            page = write_report(row.run_dirs, target, wait=10.0)
            print(f"  {_shown_path(page)}", file=out)


# --- A fan-out compared: one parent, a run of its own per learning rate -------------------------
#
# The most common multi-run shape: a parent that fans out over learning rates, each child with a
# W&B run of its own (run_mode="new"). Only public API: @wandb_init, get_wandb_run, and the
# `flyte wandb report RUN RUN ...` command, which writes the runs' comparison page.

FAN_OUT_LEARNING_RATES = (0.3, 0.1, 0.03, 0.01)


@wandb_init(run_mode="new", job_type="fit")
@task
async def fit(learning_rate: float, epochs: int) -> str:
    """A child of the fan-out: its own run, a loss and an accuracy curve for one learning rate."""
    run = get_wandb_run()
    if run is None:
        return ""
    for epoch in range(epochs):
        loss = (
            2.0 * math.exp(-learning_rate * (epoch + 1)) + 0.05 + 0.02 * math.sin(epoch * learning_rate * 7)
        )
        run.log({"train/loss": loss, "val/accuracy": 1.0 - loss / 2.1})
    return str(run.id)


@wandb_init
@report_task
async def lr_sweep(epochs: int = 60) -> list[str]:
    """The parent of the fan-out: one child per learning rate, run side by side; returns their run ids.

    Example:
        ```python
        flyte.init()
        flyte.with_runcontext(mode="local", custom_context=wandb_config(project="p")).run(lr_sweep)
        ```
    """
    import asyncio

    run_ids = await asyncio.gather(*(fit(lr, epochs) for lr in FAN_OUT_LEARNING_RATES))
    return [run_id for run_id in run_ids if run_id]


def _flyte_command() -> list[str] | None:
    """The `flyte` command installed next to this Python (where pip puts it), else on PATH."""
    import shutil

    here = Path(sys.executable).parent / "flyte"
    found = str(here) if here.is_file() else shutil.which("flyte")
    return [found] if found else None


def _fan_out(context: Mapping[str, str], wandb_dir: Path, out: TextIO) -> None:
    """Run the fan-out, then write and print its comparison page (`flyte wandb report ID ID ...`)."""
    import shlex
    import subprocess

    _heading("A fan-out compared: lr_sweep and one run per learning rate", out)
    # Its runs go to a folder of their own, next to the pipeline's.
    runs_dir = wandb_dir / "fan-out"
    runs_dir.mkdir(parents=True, exist_ok=True)
    context = {**dict(context), **wandb_config(dir=str(runs_dir))}
    try:
        name = f"lr-sweep-{secrets.token_hex(3)}"
        flyte_run = flyte.with_runcontext(mode="local", name=name, custom_context=context).run(lr_sweep)
        outputs = flyte_run.outputs()
    except Exception as exc:
        print(f"The fan-out failed: {type(exc).__name__}: {exc}", file=out)
        return
    run_ids = [str(r) for r in (outputs[0] if isinstance(outputs, tuple) else outputs) or ()]
    if not run_ids:
        print("The children have no W&B runs (W&B is disabled).", file=out)
        return
    rates = ", ".join(map(str, FAN_OUT_LEARNING_RATES))
    print(f"{len(run_ids)} children, one W&B run each (learning rates {rates}):", file=out)
    for run_id in run_ids:
        print(f"  {run_id}", file=out)
    flyte_dir = getattr(flyte_run, "url", None)
    for report in sorted(Path(flyte_dir).rglob("report.html")) if flyte_dir else ():
        print(f"The parent's Flyte report (tab 'Weights & Biases'): {_shown_path(report)}", file=out)
    page = wandb_dir / "reports" / "lr-sweep-compared.html"
    args = ["wandb", "report", *run_ids, "-o", str(page)]
    shown = f"WANDB_DIR={shlex.quote(_shown_path(runs_dir))} flyte " + " ".join(
        shlex.quote(a if a != str(page) else _shown_path(page)) for a in args
    )
    print("Their comparison page, as this command writes it:", file=out)
    print(f"  {shown}", file=out)
    command = _flyte_command()
    if command is None:
        print("  (the flyte command is not installed here: run it where it is)", file=out)
        return
    done = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_DIR": str(runs_dir)},
    )
    if done.returncode == 0 and page.is_file():
        print(f"Comparison of the {len(run_ids)} runs: {_shown_path(page)}", file=out)
    else:
        print(f"  (it did not write the page: {(done.stderr or done.stdout).strip()[-300:]})", file=out)
    if os.environ.get("WANDB_MODE") == "offline":
        print(
            f"Upload these runs once online: wandb sync {_shown_path(runs_dir)}/wandb/offline-run-*", file=out
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo workflow and print what it did; returns the process exit code.

    Example:
        ```python
        from flyteplugins.wandb.demo import main

        raise SystemExit(main(["--dir", "/tmp/wandb-demo"]))
        ```
    """
    parser = argparse.ArgumentParser(
        prog="python -m flyteplugins.wandb.demo",
        description="Run a local Flyte workflow that logs to W&B in offline mode (no account, no network).",
    )
    parser.add_argument("--dir", default=DEMO_DIR, help=f"where W&B writes the runs (default: ./{DEMO_DIR})")
    args = parser.parse_args(argv)
    try:
        return run_demo(Path(args.dir), sys.stdout)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run_demo(wandb_dir: Path, out: TextIO) -> int:
    """Run the demo workflow with W&B writing under ``wandb_dir`` and print the report to ``out``.

    Example:
        ```python
        import sys
        from pathlib import Path
        from flyteplugins.wandb.demo import run_demo

        run_demo(Path(".wandb-demo"), sys.stdout)
        ```
    """
    from ._compat import action_tracker, flyte_initialized

    wandb_dir = wandb_dir.expanduser().resolve()
    wandb_dir.mkdir(parents=True, exist_ok=True)
    # `dir` (a wandb.init argument) as well as WANDB_DIR: wandb reads WANDB_DIR only the first time
    # it is set up in a process, and the demo may run in a process that used wandb before.
    run_name = f"demo-{secrets.token_hex(3)}"
    with _demo_environment(wandb_dir):
        mode = os.environ["WANDB_MODE"]
        # The mode travels with the workflow's context, as it would to a cluster's containers.
        context = wandb_config(
            project=DEMO_PROJECT, entity=DEMO_ENTITY, tags=_DEMO_TAGS, mode=mode, dir=str(wandb_dir)
        )
        print(f"flyte-wandb demo: local Flyte run {run_name!r}, W&B in {mode} mode", file=out)
        print(f"W&B files go to {_shown_path(wandb_dir)}/", file=out)
        if not flyte_initialized():
            flyte.init()
        tracker = action_tracker()
        try:
            flyte_run = flyte.with_runcontext(
                mode="local", name=run_name, custom_context=dict(context), _tracker=tracker
            ).run(pipeline)
        except Exception as exc:
            print(f"The demo workflow failed: {type(exc).__name__}: {exc}", file=out)
            return 1
        rows = _rows(tracker, wandb_dir)
        _report(rows, context, wandb_dir, out)
        _report_pages(rows, getattr(flyte_run, "url", None), wandb_dir, out)
        _fan_out(context, wandb_dir, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
