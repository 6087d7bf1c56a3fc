"""A local run says where its W&B results are, once per run; following the docs prints no warning.

Real local Flyte runs with real offline wandb: the announced link is compared with the link Flyte
rendered for the task, the folder with the run's folder on disk (its log read back), the report
path with the report Flyte wrote.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import flyte
import pytest
from conftest import run_local, task_run

from flyteplugins.wandb import wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, iter_records, read_offline_run
from flyteplugins.wandb._results import RESULTS_LOGGER, plan_results, results_line

pytestmark = pytest.mark.smoke

env = flyte.TaskEnvironment(name="results_line")
ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^W&B run (?P<id>\S+) \(Flyte action (?P<action>[^)]+)\): (?P<rest>.*)$")


@wandb_init
@env.task
async def child_writing_into_the_parents_run() -> str:
    task_run().log({"child_step": 1})
    return str(task_run().id)


@wandb_init(project="results", entity="team")
@env.task(report=True)
async def owner_with_report() -> str:
    task_run().log({"loss": 0.5})
    child_run = await child_writing_into_the_parents_run()
    assert child_run == str(task_run().id)
    return child_run


@wandb_init(project="results", entity="team")
@env.task
async def owner_without_report() -> str:
    task_run().log({"loss": 0.5})
    return str(task_run().id)


def announced(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = [r.getMessage() for r in caplog.records if r.name == RESULTS_LOGGER]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None]


def parts(match: re.Match[str]) -> dict[str, str]:
    link, *rest = match.group("rest").split("; ")
    return {"link": link, **dict(part.split(" ", 1) for part in rest)}


def test_the_owner_task_says_once_where_its_run_link_folder_and_report_are(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=RESULTS_LOGGER):
        result = run_local(owner_with_report)
    run_id = result.outputs
    # One line for the run, though two tasks wrote into it: the owner's, at its end.
    (line,) = announced(caplog)
    assert line.group("id") == run_id
    owner_action = next(a for a, task in result.task_of_action.items() if task == "owner_with_report")
    assert line.group("action") == owner_action
    found = parts(line)
    # The link is the one Flyte rendered for the task.
    assert found["link"] == dict(result.links_by_action[owner_action])["Weights & Biases"]
    assert found["link"] == f"https://wandb.ai/team/results/runs/{run_id}"
    (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
    assert Path(found["folder"]).resolve() == run_dir.resolve()
    recorded = read_offline_run(found["folder"], wait=15)
    assert recorded.run_id == run_id and recorded.column("child_step") == [1]
    report = Path(found["report"])
    assert report.name == "report.html" and report.parent.name == owner_action
    assert report.is_file() and f'data-run-id="{run_id}"' in report.read_text()


def test_a_task_without_report_names_no_report_page(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=RESULTS_LOGGER):
        run_id = run_local(owner_without_report).outputs
    (line,) = announced(caplog)
    assert line.group("id") == run_id
    assert set(parts(line)) == {"link", "folder"}


@pytest.mark.parametrize("name", [RESULTS_LOGGER, "flyteplugins.wandb"])
def test_the_line_is_silenced_with_its_logger_or_the_plugins(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger(name)
    caplog.set_level(logging.INFO)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        run_local(owner_without_report)
    finally:
        logger.setLevel(level)
    assert announced(caplog) == []


def test_the_roots_default_level_does_not_hide_the_line(caplog: pytest.LogCaptureFixture) -> None:
    # As after logging.basicConfig(): a handler on the root logger, at its default level WARNING.
    caplog.set_level(logging.WARNING)
    caplog.handler.setLevel(logging.NOTSET)  # basicConfig's handler has no level of its own
    run_id = run_local(owner_without_report).outputs
    (line,) = announced(caplog)
    assert line.group("id") == run_id


def test_nothing_is_announced_on_a_cluster_for_a_writer_or_without_a_run() -> None:
    common = {"run_id": "r", "action": "a0", "link": None, "run_dir": "/w/r", "report": None}
    assert plan_results(remote=True, owner=True, disabled=False, **common) is None
    assert plan_results(remote=False, owner=False, disabled=False, **common) is None
    assert plan_results(remote=False, owner=True, disabled=True, **common) is None
    assert plan_results(remote=False, owner=True, disabled=False, **{**common, "action": None}) is None
    hostile = {**common, "link": "javascript:alert(1)"}
    shown = plan_results(remote=False, owner=True, disabled=False, **hostile)
    assert shown is not None and results_line(shown) == "W&B run r (Flyte action a0): folder /w/r"


def run_offline(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``WANDB_MODE=offline python SCRIPT`` in ``cwd``, with no other W&B or plugin variable set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB"))}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_quickstart_as_the_docs_run_it_prints_where_results_are_and_no_warning(tmp_path: Path) -> None:
    # docs/quickstart.md: `WANDB_MODE=offline python examples/quickstart.py`, logging not configured.
    result = run_offline(ROOT / "examples" / "quickstart.py", tmp_path)
    lines = [LINE.match(line) for line in result.stderr.splitlines()]
    (line,) = [m for m in lines if m is not None]
    found = parts(line)
    assert found["link"].startswith("https://wandb.ai/my-team/quickstart/runs/")
    (run_dir,) = find_offline_run_dirs(tmp_path / "wandb", line.group("id"))
    assert (tmp_path / found["folder"]).resolve() == run_dir.resolve()
    # No warning about WANDB_MODE, which the docs tell the user to set, nor any other local/cluster one.
    assert "WANDB_MODE" not in result.stderr
    assert "which a cluster task does not get" not in result.stderr


@pytest.mark.parametrize("remote", [False, True])
def test_a_run_scope_announces_at_its_end_only_in_a_local_run(
    remote: bool, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The owner's scope carried out as a cluster task would (remote=True, its own process) and as a
    # local one, with real offline wandb: only the local one says where the run is.
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import RunScope, plan_task_run

    resolved = resolve("run", context={"wandb_project": "p", "wandb_entity": "e"}, use_current_context=False)
    plan = plan_task_run(resolved, run_name="r", action_name="a0", remote=remote)
    scope = RunScope(plan, resolved, action="a0", remote=remote)
    with caplog.at_level(logging.INFO, logger=RESULTS_LOGGER):
        scope.start()
        scope.finish(failed=False)
    lines = announced(caplog)
    if remote:
        assert lines == []
    else:
        (line,) = lines
        assert (line.group("id"), line.group("action")) == ("r-a0", "a0")
        assert parts(line)["link"] == "https://wandb.ai/e/p/runs/r-a0"


def test_the_line_is_printed_once_whatever_handlers_the_user_set() -> None:
    code = (
        "import logging, sys\n"
        "from flyteplugins.wandb._results import results_logger\n"
        "def say(text):\n"
        "    record = results_logger.makeRecord(results_logger.name, logging.INFO, '', 0, text, (), None)\n"
        "    results_logger.handle(record)\n"
        "say('nothing configured')\n"
        "handler = logging.StreamHandler(sys.stdout)\n"
        "results_logger.addHandler(handler)\n"
        "results_logger.propagate = False\n"
        "say('a handler on the logger')\n"
        "results_logger.removeHandler(handler)\n"
        "results_logger.propagate = True\n"
        "logging.basicConfig(stream=sys.stdout, format='root: %(message)s')\n"
        "say('a root handler')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "nothing configured\n"
    assert done.stdout == "a handler on the logger\nroot: a root handler\n"


FAN_OUT = """\
import asyncio
import sys

import flyte
from flyteplugins.wandb import wandb_init

env = flyte.TaskEnvironment(name="console")

@wandb_init(run_mode="new")
@env.task
async def child(i: int) -> int:
    print(f"child {i} says hello", flush=True)
    await asyncio.sleep(0.5)  # the siblings' runs are live meanwhile
    return i

@wandb_init(project="console", entity="team")
@env.task
async def parent() -> int:
    total = sum(await asyncio.gather(*(child(i) for i in range(3))))
    print("parent saw its children", file=sys.stderr, flush=True)
    return total

flyte.init()
flyte.with_runcontext(mode="local").run(parent)
"""


def test_the_line_reaches_the_terminal_and_no_runs_console_log(tmp_path: Path) -> None:
    # wandb records what the process writes to stderr into every live run's console log: in a local
    # fan-out, the parent's and the running siblings'. The line about one run belongs in none.
    script = tmp_path / "fan_out.py"
    script.write_text(FAN_OUT)
    result = run_offline(script, tmp_path)
    said = [m for m in (LINE.match(line) for line in result.stderr.splitlines()) if m is not None]
    assert len(said) == 4  # the parent's run and each child's
    parent_id = said[-1].group("id")
    (parent_dir,) = find_offline_run_dirs(tmp_path / "wandb", parent_id)
    # What reached the run's console log: its transaction log's console records.
    console = "".join(
        record.output_raw.line for record in iter_records(parent_dir) if record.HasField("output_raw")
    )
    # wandb captured stderr meanwhile: the parent's own line after its children is in its log ...
    assert "parent saw its children" in console
    # ... and no line about a run is.
    assert "W&B run " not in console
