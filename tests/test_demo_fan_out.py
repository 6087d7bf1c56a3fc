"""The demo's fan-out (``make demo``): a parent, one run per learning rate, and their comparison page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run
from flyteplugins.wandb.demo import FAN_OUT_LEARNING_RATES

pytest.importorskip("pygal")


@pytest.fixture(scope="module")
def demo(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> tuple[str, Path]:
    """The fan-out section of the demo's one run in this test session (``demo_run``), and its directory."""
    done, cwd = demo_run
    assert done.returncode == 0, done.stderr
    return done.stdout.split("A fan-out compared", 1)[1], cwd


def test_each_child_has_its_own_run_with_its_learning_rate(demo: tuple[str, Path]) -> None:
    section, cwd = demo
    run_ids = re.findall(r"^  (lr-sweep-\S+)$", section, re.M)
    assert len(run_ids) == len(FAN_OUT_LEARNING_RATES)
    for run_id, lr in zip(run_ids, FAN_OUT_LEARNING_RATES, strict=True):
        (run_dir,) = find_offline_run_dirs(cwd / ".wandb-demo" / "fan-out" / "wandb", run_id)
        run = read_offline_run(run_dir, wait=20)
        assert run.config["flyte"]["inputs"]["learning_rate"] == lr
        assert run.config["flyte"]["task"] == "flyte_wandb_demo.fit"
        assert len(run.column("train/loss")) == 60 and run.exit_code == 0


def test_the_comparison_page_is_written_where_the_demo_says(demo: tuple[str, Path]) -> None:
    section, cwd = demo
    (shown,) = re.findall(r"^Comparison of the 4 runs: (\S+)$", section, re.M)
    page = (cwd / shown).read_text()
    run_ids = re.findall(r"^  (lr-sweep-\S+)$", section, re.M)
    assert re.findall(r'data-run-id="([^"]+)"', page) == run_ids
    # The largest learning rate converges fastest in the demo: the best row, by train/loss.
    assert f'<tr class="fw-best" data-run-id="{run_ids[0]}">' in page
    assert "Objective: train/loss, minimized" in page and page.count("<svg") == 2
    # The command it prints is the one that wrote the page, and names every run.
    command = re.search(r"^  WANDB_DIR=\S+ flyte wandb report (.+) -o (\S+)$", section, re.M)
    assert command is not None and command.group(1).split() == run_ids and command.group(2) == shown


def test_the_parents_flyte_report_is_named(demo: tuple[str, Path]) -> None:
    section, _ = demo
    (report,) = re.findall(r"^The parent's Flyte report \(tab 'Weights & Biases'\): (\S+)$", section, re.M)
    assert Path(report).name == "report.html" and Path(report).is_file()


def test_the_parents_flyte_report_compares_its_children_grouped_under_its_run(demo: tuple[str, Path]) -> None:
    section, cwd = demo
    run_ids = re.findall(r"^  (lr-sweep-\S+)$", section, re.M)
    (shown,) = re.findall(r"^The parent's Flyte report \(tab 'Weights & Biases'\): (\S+)$", section, re.M)
    report = (cwd / shown if not Path(shown).is_absolute() else Path(shown)).read_text()
    compared = report[report.index("Runs of this task&#x27;s children") :]
    # One row per child, in the order they started (concurrent: any order).
    assert sorted(re.findall(r'data-run-id="([^"]+)"', compared)) == sorted(run_ids)
    groups = set()
    for run_id in run_ids:
        (run_dir,) = find_offline_run_dirs(cwd / ".wandb-demo" / "fan-out" / "wandb", run_id)
        run = read_offline_run(run_dir, wait=20)
        # The demo's child names its own job_type ("fit"); the group is the parent's run.
        assert run.job_type == "fit" and run.group == run.config["flyte"]["parent_run"]
        groups.add(run.group)
    assert len(groups) == 1
