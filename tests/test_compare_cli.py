"""``flyte wandb report TARGET TARGET ...``: the comparison page of real offline runs.

The runs are a real local Flyte fan-out (a parent with ``@wandb_init`` and ``report=True``, four
children with ``run_mode="new"`` over learning rates), written by real wandb in offline mode; the
page's rows are checked against what each child's transaction log holds.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import shutil
from pathlib import Path
from typing import Any

import flyte
import pytest
from click.testing import CliRunner
from conftest import run_local

from flyteplugins.wandb import get_wandb_run, wandb_init
from flyteplugins.wandb._cli import wandb_group
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

pytest.importorskip("pygal")

env = flyte.TaskEnvironment(name="compare_cli")
LRS = [0.3, 0.1, 0.03, 0.01]
STEPS = 40


@wandb_init(run_mode="new")
@env.task
async def fit(lr: float, steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.define_metric("val/acc", summary="max")  # the runs' objective, as W&B's summary shows it
    for step in range(steps):
        loss = math.exp(-lr * step) + 0.01
        run.log({"train/loss": loss, "val/acc": 1 - loss})
    return str(run.id)


@wandb_init
@env.task(report=True)
async def sweep_lrs(steps: int) -> list[str]:
    return list(await asyncio.gather(*(fit(lr, steps) for lr in LRS)))


def _fan_out(wandb_root: Path) -> list[str]:
    run_ids: list[str] = run_local(sweep_lrs, STEPS, custom_context={"wandb_project": "cmp"}).outputs
    for run_id in run_ids:
        (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
        assert read_offline_run(run_dir, wait=20).finished
    return run_ids


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(wandb_group, ["report", *args], catch_exceptions=False)


def _rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr[^>]*data-run-id="([^"]+)">(.*?)</tr>', page, flags=re.DOTALL))


def test_several_run_ids_compare_what_each_child_logged(wandb_root: Path, tmp_path: Path) -> None:
    run_ids = _fan_out(wandb_root)
    out = tmp_path / "compare.html"
    result = _invoke(*run_ids, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote the comparison of 4 runs to {out}"
    page = out.read_text()
    rows = _rows(page)
    assert list(rows) == run_ids
    for run_id, lr in zip(run_ids, LRS, strict=True):
        (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
        logged = read_offline_run(run_dir)
        final_loss = logged.history[-1]["train/loss"]
        final_acc = logged.history[-1]["val/acc"]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[run_id], flags=re.DOTALL)
        assert cells[1] == html.escape(logged.config["flyte"]["task"])  # the child's task
        assert cells[2] == logged.config["flyte"]["action"]
        assert cells[3] == str(lr)  # the input that differs
        assert cells[4] == "finished"
        assert float(cells[5]) == pytest.approx(final_acc, rel=1e-3)  # val/acc, the objective, first
        assert float(cells[6]) == pytest.approx(final_loss, rel=1e-3)
    # The fastest decay has the highest final accuracy: the best row, drawn first.
    assert re.search(rf'<tr class="fw-best" data-run-id="{run_ids[0]}">', page)
    assert "Same in every run: steps = 40" in page
    assert re.search(r"Every run has the same project cmp, .*task compare_cli\.fit\.", page)
    assert page.count("<svg") == 2 and "Objective: val/acc, maximized (define_metric summary)" in page


def test_a_unique_run_id_target_that_is_a_folder_works_too(wandb_root: Path, tmp_path: Path) -> None:
    run_ids = _fan_out(wandb_root)
    dirs = [find_offline_run_dirs(wandb_root, run_id)[0] for run_id in run_ids[:2]]
    result = _invoke(str(dirs[0]), run_ids[1], run_ids[0])  # the first run twice: one row
    assert result.exit_code == 0, result.output
    (written,) = Path().glob("wandb-compare-2-runs-*.html")  # in the working directory
    assert result.output.strip().endswith(str(written))
    assert list(_rows(written.read_text())) == run_ids[:2]


def test_one_target_is_still_the_single_run_page(wandb_root: Path, tmp_path: Path) -> None:
    run_ids = _fan_out(wandb_root)
    result = _invoke(run_ids[0], "-o", str(tmp_path / "one.html"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote the report of {run_ids[0]}")
    page = (tmp_path / "one.html").read_text()
    assert "fw-compare" not in page and f'data-run-id="{run_ids[0]}"' in page


def test_a_target_that_matches_nothing_is_named(wandb_root: Path) -> None:
    run_ids = _fan_out(wandb_root)
    result = CliRunner().invoke(wandb_group, ["report", run_ids[0], "no-such-run"])
    assert result.exit_code == 2
    assert "no W&B run directory or run id 'no-such-run' here" in result.output


def test_truncated_and_corrupt_logs_say_what_was_skipped(wandb_root: Path, tmp_path: Path) -> None:
    run_ids = _fan_out(wandb_root)
    dirs = [find_offline_run_dirs(wandb_root, run_id)[0] for run_id in run_ids]
    # A copy cut short mid-record (a killed writer), and a file that is no wandb log at all.
    cut = tmp_path / "cut" / dirs[1].name
    shutil.copytree(dirs[1], cut)
    (log,) = cut.glob("run-*.wandb")
    log.write_bytes(log.read_bytes()[: log.stat().st_size * 2 // 3])
    bad = tmp_path / "bad" / dirs[2].name
    shutil.copytree(dirs[2], bad)
    (bad_log,) = bad.glob("run-*.wandb")
    bad_log.write_bytes(b"this is not a wandb transaction log" * 10)
    out = tmp_path / "damaged.html"
    result = _invoke(str(dirs[0]), str(cut), str(bad), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "(1 could not be read: see the page)" in result.output
    page = out.read_text()
    assert list(_rows(page)) == [run_ids[0], run_ids[1]]
    assert "its log could not be read" in page
    assert re.search(r"Run [^:<]*: the log could be read only up to byte \d+ of \d+", page)
    cut_row = _rows(page)[run_ids[1]]
    assert "running" in cut_row  # no exit record survived the cut


def test_a_resumed_run_is_compared_by_its_newest_folder_and_says_so(wandb_root: Path, tmp_path: Path) -> None:
    import wandb

    first = wandb.init(project="cmp", id="resumed-run")
    first.log({"loss": 1.0})
    first.finish()
    again = wandb.init(project="cmp", id="resumed-run", resume="allow")
    again.log({"loss": 0.25})
    again.finish()
    other = wandb.init(project="cmp", id="other-run")
    other.log({"loss": 0.5})
    other.finish()
    folders = find_offline_run_dirs(wandb_root, "resumed-run")
    assert len(folders) == 2
    for folder in [*folders, *find_offline_run_dirs(wandb_root, "other-run")]:
        assert read_offline_run(folder, wait=20).finished
    out = tmp_path / "resumed.html"
    result = _invoke("resumed-run", "other-run", "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    newest = sorted(folders, key=lambda p: p.name.removeprefix("offline-"))[-1]
    assert (
        f"Run resumed-run: 2 local directories (resumed, or one per writer); compared: {newest.name}." in page
    )
    assert '<tr class="fw-best" data-run-id="resumed-run">' in page  # its newest folder's loss, 0.25
