"""The demo (``make demo``): a real local Flyte workflow with offline W&B, checked against what it
prints and what W&B wrote to disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_runs
from flyteplugins.wandb.demo import DEMO_ENTITY, DEMO_PROJECT, main

pytestmark = pytest.mark.smoke

TASKS = ("pipeline", "prepare_data", "train", "evaluate", "report")
LINK_PREFIX = f"https://wandb.ai/{DEMO_ENTITY}/{DEMO_PROJECT}/runs/"
# The offline log of a run is complete once the process that wrote it has exited.
WAIT = 20.0


@dataclass
class Row:
    task: str
    run_mode: str
    writes_to: str
    run_id: str
    link: str
    on_disk: str


def parse_rows(output: str) -> dict[str, Row]:
    """The demo's task table: one line per task, then its Flyte link and on-disk lines."""
    rows: dict[str, Row] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\w+)\s{2,}(\w+ \([^)]*\))\s{2,}(.+?)\s{2,}(\S+)$", line)
        if match and match.group(1) in TASKS:
            link = lines[i + 1].split("Flyte link:", 1)[1].strip()
            on_disk = lines[i + 2].split("on disk:", 1)[1].strip()
            rows[match.group(1)] = Row(*match.groups(), link=link, on_disk=on_disk)
    return rows


def run_demo_process(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flyteplugins.wandb.demo", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The demo's one run in this test session (``demo_run``)."""
    return demo_run


def recorded(cwd: Path, run_id: str) -> OfflineRun:
    runs = read_offline_runs(cwd / ".wandb-demo" / "wandb", run_id, wait=WAIT)
    assert len(runs) == 1, f"expected one run directory for {run_id}, found {len(runs)}"
    return runs[0]


def test_demo_exits_zero_and_writes_under_dot_wandb_demo_in_offline_mode(demo) -> None:
    result, cwd = demo
    assert result.returncode == 0, result.stderr
    assert "W&B in offline mode" in result.stdout
    assert "Traceback" not in result.stderr
    assert len(find_offline_run_dirs(cwd / ".wandb-demo" / "wandb")) == 3
    # Nothing is written to the default ./wandb of the working directory.
    assert not (cwd / "wandb").exists()


def test_demo_table_shows_each_run_mode_and_where_it_came_from(demo) -> None:
    rows = parse_rows(demo[0].stdout)
    assert set(rows) == set(TASKS)
    assert rows["pipeline"].run_mode == "auto (default)"
    assert rows["prepare_data"].run_mode == "auto (default)"
    assert rows["train"].run_mode == "new (@wandb_init)"
    assert rows["evaluate"].run_mode == "new (wandb_config)"
    assert rows["report"].run_mode == "shared (@wandb_init)"


def test_auto_and_shared_children_write_into_the_parents_run_and_new_ones_do_not(demo) -> None:
    rows = parse_rows(demo[0].stdout)
    parent = rows["pipeline"].run_id
    assert rows["prepare_data"].run_id == parent
    assert rows["report"].run_id == parent
    assert rows["prepare_data"].writes_to == rows["report"].writes_to == "pipeline's run"
    own = {rows["pipeline"].run_id, rows["train"].run_id, rows["evaluate"].run_id}
    assert len(own) == 3
    assert rows["train"].writes_to == rows["evaluate"].writes_to == "its own run"


def test_each_link_flyte_shows_names_the_run_the_task_wrote_to(demo) -> None:
    for row in parse_rows(demo[0].stdout).values():
        assert row.link == LINK_PREFIX + row.run_id


def test_on_disk_paths_are_the_runs_wandb_wrote_with_the_logged_metrics(demo) -> None:
    result, cwd = demo
    rows = parse_rows(result.stdout)
    for row in rows.values():
        (path,) = find_offline_run_dirs(cwd / ".wandb-demo" / "wandb", row.run_id)
        assert row.on_disk == str(path.relative_to(cwd))

    shared = recorded(cwd, rows["pipeline"].run_id)
    assert (shared.entity, shared.project) == (DEMO_ENTITY, DEMO_PROJECT)
    assert shared.tags == ("demo", "offline")
    assert shared.column("pipeline/rows_requested") == [1000]
    assert shared.column("data/rows") == [1000]
    assert shared.column("report/tasks_done") == [4]
    assert shared.exit_code == 0

    train = recorded(cwd, rows["train"].run_id)
    assert len(train.column("train/loss")) == 5
    assert train.column("train/loss") == sorted(train.column("train/loss"), reverse=True)
    assert train.job_type == "train"

    evaluate = recorded(cwd, rows["evaluate"].run_id)
    # The block's tags replace the workflow's for the child called inside it.
    assert evaluate.tags == ("eval",)
    assert evaluate.column("eval/accuracy") == [0.91]


def test_demo_explains_the_workflow_configuration(demo) -> None:
    output = demo[0].stdout
    section = output.split("explain()", 1)[1]
    assert re.search(r"^project\s+flyte-wandb-demo\s+custom_context key wandb_project", section, re.M)
    assert re.search(r"^entity\s+demo-team\s+custom_context key wandb_entity", section, re.M)
    mode = r"^mode\s+offline\s+custom_context key wandb_mode\s+offline \(env WANDB_MODE\)"
    assert re.search(mode, section, re.M)
    assert re.search(r"^run_mode\s+auto\s+default", section, re.M)


def test_demo_prints_a_wandb_sync_command_for_every_run(demo) -> None:
    result, cwd = demo
    output = result.stdout
    assert "wandb sync" in output
    sync = output.split("wandb sync", 1)[1]
    for path in find_offline_run_dirs(cwd / ".wandb-demo" / "wandb"):
        assert str(path.relative_to(cwd)) in sync


def test_demo_in_process_restores_the_environment_and_honours_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT")}
    assert main(["--dir", str(tmp_path / "elsewhere")]) == 0
    assert {k: os.environ.get(k) for k in before} == before
    output = capsys.readouterr().out
    rows = parse_rows(output)
    assert set(rows) == set(TASKS)
    assert len(find_offline_run_dirs(tmp_path / "elsewhere" / "wandb")) == 3


def test_demo_keeps_a_mode_the_user_chose(tmp_path: Path) -> None:
    result = run_demo_process(tmp_path, "--dir", "runs", WANDB_MODE="disabled")
    assert result.returncode == 0, result.stderr
    assert "W&B in disabled mode" in result.stdout
    rows = parse_rows(result.stdout)
    assert set(rows) == set(TASKS)
    assert all(row.link.startswith("- (no link") for row in rows.values())
    assert find_offline_run_dirs(tmp_path / "runs") == []
    assert "wandb sync" not in result.stdout


def test_the_demo_needs_nothing_from_the_shell_that_a_cluster_would_lack(demo) -> None:
    # Every W&B setting of the demo travels with the workflow's context, as it would to a cluster.
    assert "which a cluster task does not get" not in demo[0].stdout + demo[0].stderr


def test_demo_shows_the_backlink_and_a_reference_artifact(demo) -> None:
    result, cwd = demo
    section = result.stdout.split("Lineage: what the pipeline's W&B run records about Flyte", 1)[1]
    rows = parse_rows(result.stdout)
    run = recorded(cwd, rows["pipeline"].run_id)
    # What the demo prints is what W&B recorded: the backlink, the notes, one artifact.
    assert run.config["flyte"]["task"] == "flyte_wandb_demo.pipeline"
    assert f"notes:  {run.notes}" in section and run.notes.startswith("Flyte local run demo-")
    [artifact] = run.artifacts
    model = cwd / ".wandb-demo" / "model.txt"
    assert artifact.uris == [f"file://{model}"]
    assert f"artifact {artifact.name} (flyte-file)" in section
    assert f"references: file://{model}" in section


def test_demo_writes_the_report_pages_and_prints_their_paths(demo) -> None:
    result, cwd = demo
    section = result.stdout.split("Charts of the runs: report pages", 1)[1].split("A fan-out compared", 1)[0]
    listed = [line.strip() for line in section.splitlines() if line.strip().endswith(".html")]
    flyte_reports = [Path(p) for p in listed if p.endswith("report.html")]
    run_pages = [cwd / p for p in listed if not p.endswith("report.html")]
    # pipeline and train are declared with report=True: their Flyte reports have the W&B tab.
    assert len(flyte_reports) == 2 and len(run_pages) == 3
    tasks = set()
    for path in flyte_reports:
        page = path.read_text()
        assert "Weights &amp; Biases</li>" in page and "<svg" in page
        tasks.add(page.split("<th>Flyte task</th><td>", 1)[1].split("<", 1)[0])
    assert tasks == {"pipeline", "train"}
    for path in run_pages:
        page = path.read_text()
        assert page.startswith("<!doctype html>") and "<th>state</th><td>finished</td>" in page
        assert "<svg" in page
