"""Local runs rehearse remote runs: what differs between a local run and a cluster, and what the plugin does.

On a cluster every task runs in its own process: a task without ``@wandb_init`` has no run there,
whatever its parent does. Each test runs a real local Flyte run with real offline wandb and reads
what W&B recorded back from disk.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local, task_run

from flyteplugins.wandb import get_wandb_run, get_wandb_run_dir, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

env = flyte.TaskEnvironment(name="local_remote")


def keys_of(root: Path, run_id: str) -> set[str]:
    (run_dir,) = find_offline_run_dirs(root, run_id)
    run = read_offline_run(run_dir, wait=15)
    return {key for row in run.history for key in row if not key.startswith("_")}


# --- the reference's own example: an undecorated child has no run ------------------------------


@env.task
async def undecorated_child() -> dict[str, str]:
    run = get_wandb_run()
    return {"run": "none" if run is None else str(run.id), "dir": str(get_wandb_run_dir())}


@wandb_init(project="p", entity="e")
@env.task
async def decorated_parent() -> dict[str, Any]:
    task_run().log({"parent_step": 1})
    child = await undecorated_child()
    return {"parent": str(task_run().id), "child": child}


def test_a_child_without_wandb_init_has_no_run_while_its_parent_has_one() -> None:
    out = run_local(decorated_parent).outputs
    assert out["parent"]
    assert out["child"] == {"run": "none", "dir": "None"}


@env.task
async def undecorated_child_using_wandb_log() -> str:
    import wandb

    try:
        wandb.log({"leaked_from_child": 1})
    except wandb.Error as exc:
        return str(exc)
    return "logged"


@wandb_init(project="p", entity="e")
@env.task
async def parent_of_wandb_log_child() -> dict[str, str]:
    import wandb

    message = await undecorated_child_using_wandb_log()
    wandb.log({"parent_after_child": 1})  # the parent's own wandb.log still works
    return {"run_id": str(task_run().id), "message": message}


def test_wandb_log_in_a_child_without_wandb_init_fails_as_on_a_cluster(wandb_root: Path) -> None:
    out = run_local(parent_of_wandb_log_child).outputs
    assert out["message"].startswith("You must call wandb.init() before wandb.log()")
    assert "has no W&B run" in out["message"] and "@wandb_init" in out["message"]
    # Nothing of the child's leaked into the parent's run.
    assert keys_of(wandb_root, out["run_id"]) == {"parent_after_child"}


@wandb_init
def plain_function_run() -> str:
    return str(task_run().id)


@env.task
async def undecorated_child_calling_a_wandb_function() -> str:
    return plain_function_run()


@wandb_init(project="p", entity="e")
@env.task
async def parent_of_function_child() -> dict[str, str]:
    return {"parent": str(task_run().id), "function": await undecorated_child_calling_a_wandb_function()}


def test_a_wandb_init_function_in_an_undecorated_child_starts_its_own_run() -> None:
    out = run_local(parent_of_function_child).outputs
    # On a cluster the child's process has no run to join, so the function starts one: same here.
    assert out["function"] and out["function"] != out["parent"]


# --- threads --------------------------------------------------------------------------------------


@env.task
async def undecorated_child_with_threads() -> dict[str, str]:
    seen: dict[str, str] = {}

    def look(key: str) -> None:
        run = get_wandb_run()
        seen[key] = "none" if run is None else str(run.id)

    thread = threading.Thread(target=look, args=("plain",))
    thread.start()
    thread.join()
    thread = threading.Thread(target=contextvars.copy_context().run, args=(look, "copied"))
    thread.start()
    thread.join()
    return seen


@wandb_init(project="p", entity="e")
@env.task
async def parent_of_threaded_child() -> dict[str, str]:
    return await undecorated_child_with_threads()


def test_no_thread_of_an_undecorated_child_sees_its_parents_run() -> None:
    assert run_local(parent_of_threaded_child).outputs == {"plain": "none", "copied": "none"}


@wandb_init(project="p", entity="e")
@env.task
async def lone_task_with_a_plain_thread() -> dict[str, str]:
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(get_wandb_run()))
    thread.start()
    thread.join()
    return {"run": str(task_run().id), "thread": "none" if seen[0] is None else str(seen[0].id)}


def test_a_plain_thread_of_the_only_action_running_in_a_local_run_gets_its_run(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One action runs in the process: the thread can only be its, as in a pod.
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        outputs = run_local(lone_task_with_a_plain_thread).outputs
    assert outputs["thread"] == outputs["run"] != "none"
    assert "does not carry its task's context" not in caplog.text


def test_a_plain_thread_beside_a_parent_and_its_child_gets_none_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two actions run (the parent awaits its child): the thread cannot tell whose it is.
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        assert run_local(parent_of_threaded_child).outputs == {"plain": "none", "copied": "none"}
    assert caplog.text.count("does not carry its task's context while 2 Flyte actions run") == 1


@env.task
async def beside_a_namesakes_run() -> dict[str, str]:
    # A live run of an action with this action's name, in another Flyte run: what a reusable
    # container holds when two runs of one workflow send it their children (a child's name is a
    # hash of its parent's name, `a0` in every run, and its inputs).
    from flyteplugins.wandb._active import ActiveRun, current_action, register_live, unregister_live
    from flyteplugins.wandb._codec import RunIdentity

    here = current_action()
    assert here is not None
    theirs = object()
    namesake = ActiveRun(theirs, RunIdentity("namesake"), True, here[1], True, None, "another-run")
    mine = ActiveRun(object(), RunIdentity("mine"), True, here[1], True, None, here[0])
    seen: dict[str, str] = {}

    def look(label: str) -> None:
        run = get_wandb_run()
        seen[label] = "none" if run is None else ("theirs" if run is theirs else "mine")

    for label, live in (("namesake only", namesake), ("its own", mine)):
        register_live(live)
        try:
            thread = threading.Thread(target=look, args=(label,))
            thread.start()
            thread.join()
        finally:
            unregister_live(live)
    return seen


def test_a_run_belongs_to_its_action_in_its_own_flyte_run_not_to_a_namesake() -> None:
    # One action runs in the process: a thread without context gets that action's run, never the
    # run of an action of another Flyte run that has the same name.
    assert run_local(beside_a_namesakes_run).outputs == {"namesake only": "none", "its own": "mine"}


# --- the environment of the launching process -----------------------------------------------------


@wandb_init
@env.task
async def project_from_environment() -> str:
    return str(task_run().project)


declaring_env = flyte.TaskEnvironment(name="declaring", env_vars={"WANDB_PROJECT": "from-env"})


@wandb_init
@declaring_env.task
async def project_from_declared_environment() -> str:
    return str(task_run().project)


def test_settings_from_the_launching_shell_are_pointed_out_in_a_local_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-shell")
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        assert run_local(project_from_environment).outputs == "from-shell"
    warnings = [r.getMessage() for r in caplog.records if "WANDB_PROJECT" in r.getMessage()]
    assert len(warnings) == 1
    assert "project='from-shell'" in warnings[0]
    assert "TaskEnvironment(env_vars=...)" in warnings[0]


def test_a_variable_the_task_environment_declares_is_not_pointed_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        assert run_local(project_from_declared_environment).outputs == "from-env"
    assert not [r for r in caplog.records if "WANDB_PROJECT" in r.getMessage()]


def test_a_cluster_task_writing_into_a_shared_run_offline_is_told_where_its_part_stays(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a remote child does (its own process, W&B shared mode), carried out here with real
    # offline wandb: shared mode is online only, so its part of the run stays in its own folder.
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import RunScope, plan_task_run

    resolved = resolve(
        "run",
        context={"_wandb_run_id": "parent-run", "_wandb_run_entity": "e", "_wandb_run_project": "p"},
        use_current_context=False,
    )
    plan = plan_task_run(resolved, run_name="r", action_name="child", remote=True)
    assert plan.shared is not None and not plan.owner
    scope = RunScope(plan, resolved, action="child", remote=True)
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb.local_remote"):
        scope.start()
        scope.finish(failed=False)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb.local_remote"]
    assert len(warnings) == 1 and "W&B shared mode is online only" in warnings[0]
    (run_dir,) = find_offline_run_dirs(wandb_root, "parent-run")
    assert f"wandb sync {run_dir}" in warnings[0]


def test_a_variable_an_override_declares_is_not_pointed_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The container gets WANDB_PROJECT from a secret given with task.override: no warning.
    monkeypatch.setenv("WANDB_PROJECT", "from-secret")
    overridden = project_from_environment.override(
        secrets=[flyte.Secret(key="wandb-project", as_env_var="WANDB_PROJECT")]
    )
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        assert run_local(overridden).outputs == "from-secret"
    assert not [r for r in caplog.records if "WANDB_PROJECT" in r.getMessage()]
