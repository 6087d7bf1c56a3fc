"""Failures around W&B runs: a task that raises, a child that fails, a retried task, a missing parent.

Real local Flyte runs with real offline wandb; exit codes, histories and resume settings are read
back from what W&B wrote to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flyte
import flyte.errors
import pytest
from conftest import LocalRun, run_local, task_run

from flyteplugins.wandb import WandbRunError, _active, wandb_config, wandb_init
from flyteplugins.wandb._offline import (
    OfflineRun,
    find_offline_run_dirs,
    iter_records,
    read_offline_run,
    read_offline_runs,
)

env = flyte.TaskEnvironment(name="failures")


class TrainingDivergedError(Exception):
    """A user error with a recognisable type and message."""


def recorded(root: Path, run_id: str) -> OfflineRun:
    dirs = find_offline_run_dirs(root, run_id)
    assert len(dirs) == 1, f"expected one run directory for {run_id}, found {dirs}"
    return read_offline_run(dirs[0], wait=15)


def only_run(root: Path) -> OfflineRun:
    dirs = find_offline_run_dirs(root)
    assert len(dirs) == 1, dirs
    return read_offline_run(dirs[0], wait=15)


def metric_keys(run: OfflineRun) -> set[str]:
    return {key for row in run.history for key in row if not key.startswith("_")}


def fail_run(task: Any, *args: Any, **kwargs: Any) -> flyte.errors.BaseRuntimeError:
    with pytest.raises(flyte.errors.BaseRuntimeError) as caught:
        run_local(task, *args, **kwargs)
    return caught.value


def assert_no_run_left_open() -> None:
    import wandb

    assert _active.live_ids() == frozenset()
    assert wandb.run is None


# --- shared without a parent run --------------------------------------------------------------------


@wandb_init(run_mode="shared", project="proj-s", entity="ent-s")
@env.task
async def shared_without_parent() -> str:
    return "should not run"


def test_shared_without_a_parent_run_fails_with_a_clear_error(wandb_root: Path) -> None:
    error = fail_run(shared_without_parent)

    assert error.code == WandbRunError.__name__
    assert "run_mode='shared'" in str(error)
    assert "parent" in str(error)
    assert find_offline_run_dirs(wandb_root) == []


@env.task
async def parent_without_wandb() -> str:
    try:
        await shared_without_parent()
    except flyte.errors.RuntimeUserError as exc:
        return f"{exc.code}: {exc}"
    return "no error"


def test_shared_child_under_a_parent_without_a_run_fails_and_the_parent_sees_why(wandb_root: Path) -> None:
    result = run_local(parent_without_wandb)

    assert result.outputs.startswith("WandbRunError: ")
    assert "run_mode='shared'" in result.outputs
    assert find_offline_run_dirs(wandb_root) == []


# --- a task that raises -----------------------------------------------------------------------------


@wandb_init(project="proj-f", entity="ent-f")
@env.task
async def async_failing(step: int) -> str:
    task_run().log({"loss": 0.5, "step": step})
    raise TrainingDivergedError(f"loss is nan at step {step}")


@wandb_init(project="proj-f", entity="ent-f")
@env.task
def sync_failing(step: int) -> str:
    task_run().log({"loss": 0.5, "step": step})
    raise TrainingDivergedError(f"loss is nan at step {step}")


@pytest.mark.parametrize("task", [async_failing, sync_failing], ids=["async", "sync"])
def test_a_failing_task_finishes_its_run_as_failed_and_reraises_the_original_error(
    task: Any, wandb_root: Path
) -> None:
    error = fail_run(task, 7)

    assert isinstance(error, flyte.errors.RuntimeUserError)
    assert error.code == "TrainingDivergedError"
    assert str(error) == "loss is nan at step 7"
    run = only_run(wandb_root)
    assert run.exit_code not in (None, 0)
    assert (run.project, run.entity) == ("proj-f", "ent-f")
    assert run.column("step") == [7]
    assert_no_run_left_open()


# --- a failing child never finishes its parent's run ------------------------------------------------


@wandb_init
@env.task
async def failing_child(tag: str) -> str:
    task_run().log({f"before_failure_{tag}": 1})
    raise TrainingDivergedError(f"child {tag} failed")


@wandb_init(project="proj-p", entity="ent-p")
@env.task
async def parent_surviving_children() -> dict[str, str]:
    caught = {}
    try:
        await failing_child("attached")
    except flyte.errors.RuntimeUserError as exc:
        caught["attached"] = f"{exc.code}: {exc}"
    with wandb_config(run_mode="new"):
        try:
            await failing_child("own")
        except flyte.errors.RuntimeUserError as exc:
            caught["own"] = f"{exc.code}: {exc}"
    # The parent's run must still be open: this lands in it.
    task_run().log({"after_children": 1})
    return {**caught, "run_id": task_run().id, "run_name": flyte.ctx().action.run_name}


def test_a_failing_child_never_finishes_its_parents_run(wandb_root: Path) -> None:
    result: LocalRun = run_local(parent_surviving_children)
    out = result.outputs

    assert out["attached"] == "TrainingDivergedError: child attached failed"
    assert out["own"] == "TrainingDivergedError: child own failed"
    parent = recorded(wandb_root, out["run_id"])
    assert parent.exit_code == 0
    assert metric_keys(parent) == {"before_failure_attached", "after_children"}
    others = [read_offline_run(d, wait=15) for d in find_offline_run_dirs(wandb_root) if d != parent.path]
    assert len(others) == 1
    assert others[0].run_id != out["run_id"]
    assert others[0].exit_code not in (None, 0)
    assert metric_keys(others[0]) == {"before_failure_own"}
    assert (others[0].project, others[0].entity) == ("proj-p", "ent-p")
    assert_no_run_left_open()


# --- retries resume the same run --------------------------------------------------------------------


def fail_on_first_attempt(marker: str, metric: str) -> str:
    """Log the attempt number as ``metric``; the first attempt (no marker file yet) fails."""
    first_attempt = not Path(marker).exists()
    task_run().log({metric: 1 if first_attempt else 2})
    if first_attempt:
        Path(marker).write_text("failed once")
        raise TrainingDivergedError("first attempt fails")
    return str(task_run().id)


@wandb_init(project="proj-r", entity="ent-r", run_mode="new")
@env.task(retries=1)
async def flaky(marker: str) -> str:
    return fail_on_first_attempt(marker, "attempt")


@wandb_init(project="proj-r", entity="ent-r")
@env.task
async def parent_of_flaky(marker: str) -> dict[str, str]:
    return {"parent": task_run().id, "child": await flaky(marker)}


def test_a_retried_task_resumes_its_run_under_the_same_id(
    wandb_root: Path, tmp_path: Path, init_calls: list[dict[str, Any]]
) -> None:
    result = run_local(parent_of_flaky, str(tmp_path / "marker"))
    child_id = result.outputs["child"]

    child_inits = [call for call in init_calls if call["id"] == child_id]
    assert len(child_inits) == 2
    assert all(call["resume"] == "allow" for call in child_inits)
    attempts = read_offline_runs(wandb_root, child_id, wait=15)
    # Offline, each attempt writes its own directory under the one id; W&B stitches them together
    # when they are synced (resume="allow").
    assert [a.run_id for a in attempts] == [child_id, child_id]
    assert [a.column("attempt") for a in attempts] == [[1], [2]]
    assert attempts[0].exit_code not in (None, 0)
    assert attempts[1].exit_code == 0
    for attempt in attempts:
        assert (attempt.project, attempt.entity) == ("proj-r", "ent-r")
        run_record = next(r.run for r in iter_records(attempt.path) if r.WhichOneof("record_type") == "run")
        assert run_record.resume is True
    child_actions = [a for a, name in result.task_of_action.items() if name == "flaky"]
    assert len(child_actions) == 1
    assert child_id == f"{result.outputs['parent'].rsplit('-', 1)[0]}-{child_actions[0]}"
    links = result.links_by_action[child_actions[0]]
    assert links == [("Weights & Biases", f"https://wandb.ai/ent-r/proj-r/runs/{child_id}")]
    parent = recorded(wandb_root, result.outputs["parent"])
    assert parent.exit_code == 0


@wandb_init
@env.task(retries=1)
async def flaky_attached(marker: str) -> str:
    return fail_on_first_attempt(marker, "attached_attempt")


@wandb_init(project="proj-r", entity="ent-r")
@env.task
async def parent_of_flaky_attached(marker: str) -> dict[str, str]:
    child = await flaky_attached(marker)
    task_run().log({"parent_after_retry": 1})
    return {"parent": task_run().id, "child": child}


def test_both_attempts_of_a_retried_attached_child_land_in_the_parents_run(
    wandb_root: Path, tmp_path: Path, init_calls: list[dict[str, Any]]
) -> None:
    result = run_local(parent_of_flaky_attached, str(tmp_path / "marker"))

    assert result.outputs["child"] == result.outputs["parent"]
    assert len(init_calls) == 1
    run = only_run(wandb_root)
    assert run.exit_code == 0
    assert run.column("attached_attempt") == [1, 2]
    assert run.column("parent_after_retry") == [1]
