"""The "Weights & Biases" tab of real local Flyte runs' reports (tasks declared with report=True)."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any
from unittest import mock

import flyte
import pytest
from flyte.io import File

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
    import flyteplugins.wandb._report_follow as follow_module

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer exploded")

    # No helper process (as where none can be started): the tab is rendered in the task's process.
    monkeypatch.setattr(follow_module.Follower, "start", classmethod(lambda cls, run_dir: None))
    monkeypatch.setattr(report_module, "render_report", broken)
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        run = _run(train, 3)
    assert run.outputs()[0] == 0.5
    assert "The W&B report tab could not be rendered: renderer exploded" in caplog.text


def test_a_report_that_cannot_be_written_never_fails_the_task(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import flyte.report

    def no_report(name: str, create_if_missing: bool = True) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(flyte.report, "get_tab", no_report)
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        run = _run(train, 3)
    assert run.outputs()[0] == 0.5
    assert "The W&B report tab could not be written" in caplog.text


def _helpers() -> list[int]:
    """This process's report helper processes (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"flyteplugins.wandb._report_follow" in cmdline:
            pids.append(int(entry.name))
    return pids


@wandb_init(project="reports")
@env.task(report=True)
async def followed(steps: int, kill_helper: bool) -> list[int]:
    run = get_wandb_run()
    helpers = _helpers()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    if kill_helper:
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
    return helpers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("kill_helper", [False, True], ids=["helper answers", "helper killed"])
def test_a_helper_process_follows_the_log_and_ends_with_the_task(
    wandb_root: Path, kill_helper: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="flyteplugins.wandb"):
        run = _run(followed, 200, kill_helper)
    (helper,) = run.outputs()[0]
    assert not _alive(helper)
    # The page came from the helper, or (killed) from the task's own process.
    assert ("the report helper gave no page" in caplog.text) is kill_helper
    # Whether the helper answered or was killed (then the task renders the tab itself), the tab
    # shows every logged step.
    page = _reports(run)["followed"]
    assert "<th>steps logged</th><td>200</td>" in page and '<figure data-metric="loss">' in page


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


# --- report_tab=False: the task keeps report=True for its own tabs, without the W&B tab ----------

_OWN_TAB = "<p>the task's own tab</p>"


def _own_tab_and_log(steps: int) -> float:
    import flyte.report

    flyte.report.get_tab("Mine").replace(_OWN_TAB)
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    return 0.25


@wandb_init(project="reports", report_tab=False)
@env.task(report=True)
async def tab_off_by_decorator(steps: int) -> float:
    return _own_tab_and_log(steps)


@wandb_init(project="reports")
@env.task(report=True)
async def tab_by_layers(steps: int) -> float:
    return _own_tab_and_log(steps)


def _own_page(run: Any, wandb_root: Path) -> str:
    (page,) = [p.read_text() for p in Path(run.url).rglob("report.html")]
    # The run itself was recorded as usual; only the tab is left out.
    assert list(wandb_root.glob("offline-run-*"))
    return page


@pytest.mark.parametrize("layer", ["decorator", "block", "env", "parent context"])
def test_report_tab_false_leaves_out_only_the_wandb_tab(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    import flyteplugins.wandb._report_follow as follow_module
    from flyteplugins.wandb import reload_settings, wandb_config

    helpers: list[str] = []
    start = follow_module.Follower.start

    def counted_start(cls: Any, run_dir: str) -> Any:
        helpers.append(run_dir)
        return start(run_dir)

    monkeypatch.setattr(follow_module.Follower, "start", classmethod(counted_start))
    if not flyte._initialize.is_initialized():
        flyte.init()
    if layer == "decorator":
        run = flyte.with_runcontext(mode="local").run(tab_off_by_decorator, 5)
    elif layer == "block":
        with wandb_config(report_tab=False):
            run = flyte.with_runcontext(mode="local").run(tab_by_layers, 5)
    elif layer == "env":
        monkeypatch.setenv("FLYTEPLUGINS_WANDB_REPORT_TAB", "false")
        reload_settings()
        run = flyte.with_runcontext(mode="local").run(tab_by_layers, 5)
    else:
        context = dict(wandb_config(report_tab=False))
        assert context == {"wandb_report_tab": "false"}
        run = flyte.with_runcontext(mode="local", custom_context=context).run(tab_by_layers, 5)
    assert run.outputs()[0] == 0.25
    page = _own_page(run, wandb_root)
    assert _OWN_TAB in page
    assert "Weights &amp; Biases" not in page and "fw-report" not in page
    # No helper process follows the log of a run whose tab is off.
    assert helpers == []


def test_the_tab_is_there_by_default_next_to_the_tasks_own(wandb_root: Path) -> None:
    # The same task as above, nothing turned off: both tabs (so the test above can fail).
    page = _own_page(_run(tab_by_layers, 5), wandb_root)
    assert _OWN_TAB in page and _TAB_NAV in page and '<figure data-metric="loss">' in page


# --- lineage in the tab --------------------------------------------------------------------------


@wandb_init(log_outputs=True)
@env.task
async def produce(size: int) -> File:
    path = Path(os.environ["REPORT_BLOB_DIR"]) / "model.bin"
    path.write_bytes(b"m" * size)
    return await File.from_local(str(path))


@wandb_init
@env.task
async def consume(model: File) -> int:
    get_wandb_run().log({"eval/acc": 0.9})
    return 1


@wandb_init(project="reports", run_mode="new")
@env.task(report=True)
async def pipeline(size: int) -> str:
    run = get_wandb_run()
    run.log({"train/loss": 1.0})
    model = await produce(size)
    await consume(model)
    ctx = flyte.ctx()
    assert ctx is not None
    return f"{ctx.action.run_name}/{ctx.action.name}"


def test_the_tab_shows_the_backlink_the_writers_and_the_artifacts_logged_and_used(
    wandb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flyteplugins.wandb._lineage import artifact_name

    monkeypatch.setenv("REPORT_BLOB_DIR", str(tmp_path))
    run = _run(pipeline, 100)
    run_name, action = run.outputs()[0].split("/")
    page = _reports(run)["pipeline"]
    lineage = page[page.index("<h3>Lineage</h3>") : page.index("<h3>Metrics</h3>")]
    # The owner's notes point back to Flyte (a local run: its run, action, task, metadata folder).
    assert (
        f"<b>Run notes:</b> Flyte local run {run_name}, action {action} (task report_tab_tests.pipeline)"
        in (lineage)
    )
    # The owner and its two auto children, each by its own config key.
    writers = re.findall(
        r"<tr><td><code>([^<]+)</code></td><td>(started|wrote to) the run</td><td>task ([^,<]+),", lineage
    )
    assert writers[0] == ("flyte", "started", "report_tab_tests.pipeline")
    assert sorted((role, task) for key, role, task in writers[1:] if key.startswith("flyte/")) == [
        ("wrote to", "report_tab_tests.consume"),
        ("wrote to", "report_tab_tests.produce"),
    ]
    assert (
        "<code>flyte</code></td><td>started the run</td>"
        f"<td>task report_tab_tests.pipeline, run {run_name}, action {action}" in lineage
    )
    # produce's File output, logged as a reference artifact; consume's input, recorded as used.
    uri = f"file://{tmp_path / 'model.bin'}"
    name = artifact_name(uri)
    assert "<h4>Artifacts logged (1)</h4>" in lineage and f"<td>{name}</td><td>flyte-file</td>" in lineage
    assert f"<li><code>{uri}</code></li>" in lineage and "produce-o0" in lineage
    assert "<h4>Artifacts and blobs used (1)</h4>" in lineage
    assert re.search(
        rf"<td>model</td><td>{re.escape(name)}</td><td><code>{re.escape(uri)}</code></td>", lineage
    )


def test_a_writer_of_its_own_shows_every_step_it_logged_once_its_log_is_complete(
    wandb_root: Path, tmp_path: Path
) -> None:
    # A task writing into another task's run from a process of its own (W&B shared mode, as on a
    # cluster) renders its tab once its writer is finished; wandb's service writes the end of that
    # writer's log just after. Here a real subprocess writes the log's records a moment after the
    # tab starts reading: the tab shows all 3 steps, not the 0 on disk when it started.
    import shutil
    import subprocess
    import sys

    import wandb

    from flyteplugins.wandb._history import log_has_exit
    from flyteplugins.wandb._report_tab import ReportTab

    run = wandb.init(project="p", id="shared-run", mode="offline")
    for step in range(3):
        run.log({"child/value": step})
    written = Path(run.dir).parent
    run.finish()
    # The whole log, exit record included, is what the late writer below appends: wait for it (the
    # service writes the end of the log just after run.finish() returns).
    deadline = time.monotonic() + 30
    while not log_has_exit(written) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log_has_exit(written)
    late = tmp_path / written.name
    shutil.copytree(written, late)
    (log,) = late.glob("*.wandb")
    whole = log.read_bytes()
    log.write_bytes(whole[:7])  # wandb's file header only: no record has reached the disk yet
    rest = tmp_path / "rest"
    rest.write_bytes(whole[7:])
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; time.sleep(0.5); "
            "open(sys.argv[1], 'ab').write(open(sys.argv[2], 'rb').read())",
            str(log),
            str(rest),
        ]
    )
    try:
        tab = ReportTab(
            task="report_child",
            action="a1",
            enabled=True,
            run=None,
            run_id="shared-run",
            url=None,
            owner=False,
            first_step=None,
            run_dir=str(late),
            own_writer=True,
        )
        page = tab._render(False, ())
    finally:
        writer.wait(timeout=30)
    assert re.search(r"<th>steps logged</th><td>3</td>", page), page
    assert "through a writer of its own" in page
