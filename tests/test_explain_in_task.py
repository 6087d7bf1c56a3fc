"""``explain()`` inside a task shows what that task resolves (its decorator included) and names its own
run; the wrong decorator order (``@env.task`` above ``@wandb_init``) is detected and explained.
Real local Flyte runs, real offline wandb."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import flyte
import pytest
from click.testing import CliRunner
from conftest import run_local, task_run

from flyteplugins.wandb import explain, get_wandb_run, reload_settings, wandb_config, wandb_init
from flyteplugins.wandb._cli import wandb_group

env = flyte.TaskEnvironment(name="explain_in_task")


@pytest.fixture
def file_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration file setting the project, as in the issue (``project newcomer (file ...)``)."""
    path = tmp_path / "wandb.toml"
    path.write_text('project = "newcomer"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    reload_settings()
    return path


def _seen(schema: Any = "run") -> dict[str, Any]:
    explanation = explain(schema)
    rows = {f.name: f for f in explanation}
    return {
        "project": (rows["project"].value, rows["project"].origin),
        "run_mode": (rows["run_mode"].value, rows["run_mode"].origin),
        "own_run": explanation.own_run.id if explanation.own_run else None,
        "own_run_shared": explanation.own_run_shared,
        "parent_run": explanation.parent_run.id if explanation.parent_run else None,
        "text": str(explanation),
    }


# Tasks return what they saw as JSON (Flyte cannot pickle the None values in it).


@wandb_init
@env.task
async def child_in_parents_run() -> str:
    return json.dumps(_seen())


@env.task
async def child_without_decorator() -> str:
    return json.dumps(_seen())


@wandb_init(project="newcomer-experiments", run_mode="new")
@env.task
async def newcomer() -> str:
    seen = _seen()
    seen["run_id"] = task_run().id
    with wandb_config(tags=["inner"]):
        seen["block_tags"] = explain().as_dict()["tags"]
    seen["child"] = json.loads(await child_in_parents_run())
    seen["plain_child"] = json.loads(await child_without_decorator())
    return json.dumps(seen)


@pytest.mark.smoke
def test_explain_in_a_task_shows_the_tasks_own_settings_and_run(file_project: Path) -> None:
    seen = json.loads(run_local(newcomer).outputs)
    assert seen["project"] == ["newcomer-experiments", "@wandb_init(...)"]
    assert seen["run_mode"] == ["new", "@wandb_init(...)"]
    assert "newcomer (file " in seen["text"]  # what the decorator overrode
    # The task's own run is its own, not a "parent run".
    assert seen["own_run"] == seen["run_id"] and seen["own_run_shared"] is False
    assert seen["parent_run"] is None
    assert "this task's run" in seen["text"] and "parent run" not in seen["text"]
    # A block inside the task is part of what the task resolves there.
    assert seen["block_tags"] == ["inner"]

    child = seen["child"]
    # run_mode auto: the child writes into its parent's run, shown as such, and as the parent run.
    assert child["own_run"] == seen["run_id"] and child["own_run_shared"] is True
    assert child["parent_run"] == seen["run_id"]
    assert child["run_mode"] == ["auto", "default"]

    plain = seen["plain_child"]
    # A child without a decorator does not borrow its parent's decorator (a local run shares one
    # process and its context variables): the project is the file's, as on a cluster.
    assert plain["project"][0] == "newcomer" and plain["project"][1].startswith("file ")
    assert plain["own_run"] is None and plain["parent_run"] == seen["run_id"]


def test_explain_outside_a_task_is_unchanged(file_project: Path) -> None:
    seen = _seen()
    assert seen["project"][0] == "newcomer" and seen["own_run"] is None


# --- the decorator order ---------------------------------------------------------------------------


@env.task
@wandb_init(project="wrong-order")
async def wrong_order() -> str:
    run = get_wandb_run()
    return str(run.id if run else "")


@wandb_init(project="helper")
def helper() -> str:
    run = get_wandb_run()
    return str(run.id if run else "")


@wandb_init(project="right-order")
@env.task
async def calls_a_decorated_helper() -> list[str]:
    return [task_run().id, helper()]


@pytest.mark.smoke
def test_env_task_above_wandb_init_is_explained_at_the_first_call() -> None:
    with pytest.warns(UserWarning, match=r"@wandb_init is below @env.task on 'wrong_order'") as caught:
        run_local(wrong_order)
    message = str(next(w.message for w in caught if "below @env.task" in str(w.message)))
    assert "put @wandb_init above @env.task" in message
    assert "no W&B link" in message


@pytest.mark.smoke
def test_a_decorated_plain_function_called_in_a_task_is_not_the_wrong_order() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task_id, helper_id = run_local(calls_a_decorated_helper).outputs
    assert not [w for w in caught if "below @env.task" in str(w.message)]
    assert helper_id == task_id  # the helper writes into the task's run


def test_a_decorated_plain_function_outside_any_task_runs_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert helper()  # its own run, as a sweep objective under wandb.agent


# --- flyte wandb explain --task / check --task ------------------------------------------------------


WORKFLOW = """
import flyte
from flyteplugins.wandb import wandb_init

env = flyte.TaskEnvironment(name="cli_explained")

@wandb_init(project="newcomer-experiments", run_mode="new", save_code=True)
@env.task
async def train() -> None:
    pass

@env.task
@wandb_init(project="wrong-order")
async def wrong() -> None:
    pass
"""

STACKED = """
import flyte
from flyteplugins.wandb import wandb_init, wandb_sweep

env = flyte.TaskEnvironment(name="cli_stacked")

@wandb_sweep(method="grid", parameters={"lr": {"values": [0.1]}})
@wandb_init(project="stacked")
@env.task
async def tune() -> None:
    pass
"""

TYPO = """
import flyte
from flyteplugins.wandb import wandb_init

env = flyte.TaskEnvironment(name="cli_typo")

@wandb_init(projcet="newcomer")
@env.task
async def train() -> None:
    pass
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(wandb_group, list(args), catch_exceptions=False)


def test_explain_task_shows_what_the_task_would_resolve(tmp_path: Path, file_project: Path) -> None:
    path = tmp_path / "workflow.py"
    path.write_text(WORKFLOW)
    result = invoke("explain", "--task", f"{path}:train")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert rows["project"].split()[1:3] == ["newcomer-experiments", "@wandb_init(...)"]
    assert "newcomer (file" in rows["project"]
    assert rows["run_mode"].split()[1:3] == ["new", "@wandb_init(...)"]
    assert "save_code" in rows["kwargs"]

    wrong = invoke("explain", "--task", f"{path}:wrong")
    assert wrong.exit_code == 0
    assert "put @wandb_init above @env.task" in wrong.stderr


def test_explain_task_finds_each_layer_of_stacked_decorators(tmp_path: Path) -> None:
    path = tmp_path / "stacked.py"
    path.write_text(STACKED)
    run = invoke("explain", "--task", f"{path}:tune")
    assert run.exit_code == 0, run.output
    assert re.search(r"^project\s+stacked\s+@wandb_init\(\.\.\.\)", run.stdout, re.M)
    sweep = invoke("explain", "--task", f"{path}:tune", "--sweep")
    assert sweep.exit_code == 0, sweep.output
    assert re.search(r"^method\s+grid\s+@wandb_sweep\(\.\.\.\)", sweep.stdout, re.M)


def test_check_task_reports_a_decorators_typo_and_the_wrong_order(tmp_path: Path) -> None:
    typo = tmp_path / "typo.py"
    typo.write_text(TYPO)
    result = invoke("check", "--task", f"{typo}:train")
    assert result.exit_code == 1
    assert "ok    configuration" not in result.stdout
    assert "FAIL  configuration invalid W&B setting projcet='newcomer'" in result.stdout
    assert f"fix: rename projcet to project in @wandb_init(...) at {typo}:7" in result.stdout

    workflow = tmp_path / "workflow.py"
    workflow.write_text(WORKFLOW)
    result = invoke("check", "--task", f"{workflow}:wrong", "-c", "wandb_mode=offline")
    assert result.exit_code == 1
    assert "FAIL  decorators    @wandb_init is below @env.task on 'wrong'" in result.stdout
    assert "fix: put @wandb_init above @env.task" in result.stdout
    ok = invoke("check", "--task", f"{workflow}:train", "-c", "wandb_mode=offline")
    assert ok.exit_code == 0, ok.stdout
