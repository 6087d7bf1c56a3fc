"""The "Weights & Biases" tab of real local Flyte runs' reports (tasks declared with report=True)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from unittest import mock

import flyte
import pytest

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="report_tab_tests")

_TAB_NAV = '<li onclick="handleLinkClick(this)">Weights &amp; Biases</li>'


@wandb_init(project="reports", entity="team")
@env.task(report=True)
async def train(steps: int) -> float:
    run = get_wandb_run()
    for step in range(steps):
        run.log({"train/loss": 1.0 / (step + 1), "train/acc": step / steps})
    return 0.5


@wandb_init(project="reports")
@env.task(report=True)
def crash(steps: int) -> int:
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": float(step)})
    raise ValueError("boom")


@wandb_init(project="reports")
@env.task
async def no_report() -> int:
    get_wandb_run().log({"loss": 1.0})
    return 1


@wandb_init
@env.task(report=True)
async def child(steps: int) -> int:
    run = get_wandb_run()
    for step in range(steps):
        run.log({"child/value": step})
    return steps


@wandb_init(project="reports", entity="team")
@env.task(report=True)
async def parent() -> int:
    run = get_wandb_run()
    run.log({"parent/value": 1.0})
    await child(3)
    run.log({"parent/value": 2.0})
    return 0


def _run(task: Any, *args: Any) -> Any:
    if not flyte._initialize.is_initialized():
        flyte.init()
    return flyte.with_runcontext(mode="local").run(task, *args)


def _reports(run: Any) -> dict[str, str]:
    """The report of each action of a local run, by the Flyte task its W&B tab names."""
    pages: dict[str, str] = {}
    for path in Path(run.url).rglob("report.html"):
        page = path.read_text()
        match = re.search(r"<th>Flyte task</th><td>([^<]+)</td>", page)
        pages[match.group(1) if match else path.parent.name] = page
    return pages


def _metadata_dirs() -> set[Path]:
    root = Path("/tmp/flyte/metadata")
    return set(root.iterdir()) if root.is_dir() else set()


def test_a_report_task_gets_the_tab_with_its_runs_charts(wandb_root: Path) -> None:
    run = _run(train, 40)
    assert run.outputs()[0] == 0.5
    page = _reports(run)["train"]
    assert _TAB_NAV in page
    assert re.findall(r'<figure data-metric="([^"]+)">', page) == ["train/acc", "train/loss"]
    assert page.count("<svg") == 2
    assert "<th>entity</th><td>team</td>" in page and "<th>state</th><td>finished</td>" in page
    assert "<th>steps logged</th><td>40</td>" in page
    assert 'href="https://wandb.ai/team/reports/runs/' in page
    assert "wandb sync " in page


def test_a_failed_task_still_gets_its_tab_and_keeps_its_error(wandb_root: Path) -> None:
    before = _metadata_dirs()
    with pytest.raises(Exception, match="boom"):
        _run(crash, 5)
    pages = [p.read_text() for d in _metadata_dirs() - before for p in d.rglob("report.html")]
    (page,) = [p for p in pages if "<th>Flyte task</th><td>crash</td>" in p]
    assert "The task failed; the page shows what its run recorded until then." in page
    assert "failed (exit code 1)" in page and '<figure data-metric="loss">' in page


def test_a_task_without_report_true_gets_no_tab(wandb_root: Path) -> None:
    run = _run(no_report)
    assert not any("Weights &amp; Biases" in page for page in _reports(run).values())


def test_a_shared_run_says_which_task_logged_which_steps(wandb_root: Path) -> None:
    run = _run(parent)
    pages = _reports(run)
    owner = pages["parent"]
    assert "<h3>Which task logged what</h3>" in owner
    assert re.search(r"<li>child \([^)]+\): steps 1-3</li>", owner)
    assert "<li>parent, which started the run: the other steps</li>" in owner
    assert re.findall(r'<figure data-metric="([^"]+)">', owner) == ["child/value", "parent/value"]
    # The child's own tab points at the run it wrote into, which was still open when it ended.
    assert "which another task started and is still open" in pages["child"]


def test_a_report_that_cannot_be_rendered_never_fails_the_task(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import flyteplugins.wandb._report as report_module

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(report_module, "render_report", broken)
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        run = _run(train, 3)
    assert run.outputs()[0] == 0.5
    assert "The W&B report tab could not be rendered: renderer exploded" in caplog.text


def test_a_mocked_wandb_init_keeps_the_task_working(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What user suites do: replace wandb.init with a mock (no run files are written at all).
    import wandb

    monkeypatch.setattr(wandb, "init", mock.create_autospec(wandb.init, return_value=mock.MagicMock()))
    run = _run(train, 3)
    assert run.outputs()[0] == 0.5
    (page,) = [p for p in _reports(run).values() if "Weights &amp; Biases" in p]
    assert "This run has no local files to read" in page
