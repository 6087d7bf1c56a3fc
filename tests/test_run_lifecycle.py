"""The life of W&B runs around Flyte tasks: which task starts which run, who attaches, where it lives.

Every test is a real local Flyte run with real offline wandb; what W&B recorded is read back from
its run directories on disk and compared with the links Flyte rendered for each task.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import LocalRun, run_local, task_run

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run

pytestmark = pytest.mark.smoke

env = flyte.TaskEnvironment(name="lifecycle")


# --- helpers ---------------------------------------------------------------------------------------


def me(**extra: str) -> dict[str, str]:
    """What the task running here knows about itself and its W&B run."""
    ctx = flyte.ctx()
    assert ctx is not None
    run = get_wandb_run()
    return {
        "action": ctx.action.name,
        "run_name": ctx.action.run_name or "",
        "run_id": run.id if run is not None else "",
        "run_object": str(id(run)),
        **extra,
    }


def run_url(entity: str, project: str, run_id: str) -> str:
    return f"https://wandb.ai/{entity}/{project}/runs/{run_id}"


def link_of(result: LocalRun, action: str) -> str:
    links = result.links_by_action[action]
    assert [name for name, _ in links] == ["Weights & Biases"], links
    return str(links[0][1])


def recorded(root: Path, run_id: str) -> OfflineRun:
    """The one run directory W&B wrote for ``run_id``, read once the run is finished."""
    dirs = find_offline_run_dirs(root, run_id)
    assert len(dirs) == 1, f"expected one run directory for {run_id}, found {dirs}"
    return read_offline_run(dirs[0], wait=15)


def assert_link_is_the_run(
    result: LocalRun, root: Path, task: dict[str, str], entity: str, project: str
) -> None:
    """The task's link, the run it wrote to and what W&B recorded on disk are the same run."""
    assert task["run_id"], f"task {task['action']} has no W&B run"
    assert link_of(result, task["action"]) == run_url(entity, project, task["run_id"])
    run = recorded(root, task["run_id"])
    assert (run.run_id, run.entity, run.project) == (task["run_id"], entity, project)
    assert run.exit_code == 0


def metric_keys(run: OfflineRun) -> set[str]:
    return {key for row in run.history for key in row if not key.startswith("_")}


# --- parent and children in each run mode ----------------------------------------------------------


@wandb_init
@env.task
async def child_auto(tag: str) -> dict[str, str]:
    task_run().log({f"child_{tag}": 1})
    return me(tag=tag)


@wandb_init(run_mode="new")
@env.task
async def child_new(tag: str) -> dict[str, str]:
    task_run().log({f"child_{tag}": 1})
    return me(tag=tag)


@wandb_init(run_mode="shared")
@env.task
async def child_shared(tag: str) -> dict[str, str]:
    task_run().log({f"child_{tag}": 1})
    return me(tag=tag)


CHILDREN = {"auto": child_auto, "new": child_new, "shared": child_shared}


@wandb_init(project="proj-parent", entity="ent-parent")
@env.task
async def parent_of(mode: str) -> list[dict[str, str]]:
    task_run().log({"parent_metric": 1})
    parent = me()
    first = await CHILDREN[mode]("a")
    second = await CHILDREN[mode]("b")
    return [parent, first, second]


@pytest.mark.parametrize("mode", ["auto", "shared"])
def test_attached_children_write_to_the_parents_run_in_the_parents_project(
    mode: str, wandb_root: Path
) -> None:
    result = run_local(parent_of, mode)
    parent, *children = result.outputs

    for task in result.outputs:
        assert task["run_id"] == parent["run_id"]
        assert_link_is_the_run(result, wandb_root, task, "ent-parent", "proj-parent")
    assert len(find_offline_run_dirs(wandb_root)) == 1
    assert metric_keys(recorded(wandb_root, parent["run_id"])) == {"parent_metric", "child_a", "child_b"}
    assert len({c["action"] for c in children}) == 2


def test_new_children_start_their_own_runs_in_the_parents_project(wandb_root: Path) -> None:
    result = run_local(parent_of, "new")
    parent, *children = result.outputs

    for child in children:
        # Project and entity were only given to the parent's decorator: the new runs fall back to them.
        assert child["run_id"] == f"{child['run_name']}-{child['action']}"
        assert_link_is_the_run(result, wandb_root, child, "ent-parent", "proj-parent")
        assert metric_keys(recorded(wandb_root, child["run_id"])) == {f"child_{child['tag']}"}
    assert_link_is_the_run(result, wandb_root, parent, "ent-parent", "proj-parent")
    assert metric_keys(recorded(wandb_root, parent["run_id"])) == {"parent_metric"}
    assert len({parent["run_id"], *(c["run_id"] for c in children)}) == 3
    assert len(find_offline_run_dirs(wandb_root)) == 3


# --- wandb_config blocks ---------------------------------------------------------------------------


@wandb_init
@env.task
async def parent_with_blocks() -> list[dict[str, str]]:
    parent = me(tag="parent")
    attached = await child_auto("plain")
    with wandb_config(run_mode="new"):
        own = await child_auto("in_new_block")
    with wandb_config(project="proj-block", entity="ent-block", run_mode="new"):
        elsewhere = await child_auto("in_project_block")
    after = await child_auto("after_blocks")
    return [parent, attached, own, elsewhere, after]


def test_blocks_around_child_calls_choose_the_childs_run_and_project(wandb_root: Path) -> None:
    result = run_local(parent_with_blocks, custom_context=wandb_config(project="proj-ctx", entity="ent-ctx"))
    parent, attached, own, elsewhere, after = result.outputs

    assert_link_is_the_run(result, wandb_root, parent, "ent-ctx", "proj-ctx")
    assert attached["run_id"] == after["run_id"] == parent["run_id"]
    assert_link_is_the_run(result, wandb_root, attached, "ent-ctx", "proj-ctx")
    assert_link_is_the_run(result, wandb_root, after, "ent-ctx", "proj-ctx")
    assert own["run_id"] == f"{own['run_name']}-{own['action']}"
    assert_link_is_the_run(result, wandb_root, own, "ent-ctx", "proj-ctx")
    assert elsewhere["run_id"] == f"{elsewhere['run_name']}-{elsewhere['action']}"
    assert_link_is_the_run(result, wandb_root, elsewhere, "ent-block", "proj-block")
    assert metric_keys(recorded(wandb_root, parent["run_id"])) == {"child_plain", "child_after_blocks"}
    assert metric_keys(recorded(wandb_root, own["run_id"])) == {"child_in_new_block"}
    assert len(find_offline_run_dirs(wandb_root)) == 3


@wandb_init(project="proj-deco", entity="ent-deco")
@env.task
async def decorated_parent_with_blocks() -> list[dict[str, str]]:
    parent = me(tag="parent")
    attached = await child_auto("plain")
    with wandb_config(run_mode="new"):
        own = await child_auto("in_new_block")
    return [parent, attached, own]


def test_decorator_project_beats_the_workflow_context_for_the_task_and_its_attached_children(
    wandb_root: Path,
) -> None:
    result = run_local(
        decorated_parent_with_blocks, custom_context=wandb_config(project="proj-ctx", entity="ent-ctx")
    )
    parent, attached, own = result.outputs

    assert_link_is_the_run(result, wandb_root, parent, "ent-deco", "proj-deco")
    assert attached["run_id"] == parent["run_id"]
    assert_link_is_the_run(result, wandb_root, attached, "ent-deco", "proj-deco")
    # A run of its own takes the workflow's configured project (context beats the parent's run as a
    # fallback); what matters is that its link and its run agree.
    assert own["run_id"] != parent["run_id"]
    assert_link_is_the_run(result, wandb_root, own, "ent-ctx", "proj-ctx")


# --- an auto child reuses its parent's run object ---------------------------------------------------


@wandb_init(project="proj-reuse", entity="ent-reuse")
@env.task
async def parent_reusing() -> list[dict[str, str]]:
    task_run().log({"parent_metric": 1})
    parent = me()
    first = await child_auto("one")
    rest = await asyncio.gather(child_auto("two"), child_auto("three"))
    return [parent, first, *rest]


def test_auto_children_reuse_the_parents_run_object_without_a_second_init(
    wandb_root: Path, init_calls: list[dict[str, Any]]
) -> None:
    result = run_local(parent_reusing)
    parent, *children = result.outputs

    assert len(init_calls) == 1
    assert init_calls[0]["id"] == parent["run_id"]
    assert {c["run_object"] for c in children} == {parent["run_object"]}
    assert len(find_offline_run_dirs(wandb_root)) == 1
    run = recorded(wandb_root, parent["run_id"])
    assert metric_keys(run) == {"parent_metric", "child_one", "child_two", "child_three"}
    for child in children:
        assert link_of(result, child["action"]) == run_url("ent-reuse", "proj-reuse", parent["run_id"])


# --- concurrent children under different blocks never cross ----------------------------------------


@wandb_init(run_mode="auto")
@env.task
async def leaf(tag: str, delay: float) -> dict[str, str]:
    await asyncio.sleep(delay)
    task_run().log({f"leaf_{tag}": 1})
    await asyncio.sleep(delay)
    return me(tag=tag)


@wandb_init
@env.task
async def mid(tag: str, delay: float) -> list[dict[str, str]]:
    mine = me(tag=tag)
    task_run().log({f"mid_{tag}": 1})
    leaves = await asyncio.gather(leaf(f"{tag}-0", delay), leaf(f"{tag}-1", delay / 2))
    return [mine, *({**one, "caller_run": mine["run_id"]} for one in leaves)]


@wandb_init(project="proj-fan", entity="ent-fan")
@env.task
async def fan_out() -> list[dict[str, str]]:
    parent = me(tag="parent")

    async def in_new_block(tag: str, delay: float) -> list[dict[str, str]]:
        with wandb_config(run_mode="new"):
            return list(await mid(tag, delay))

    async def plain(tag: str, delay: float) -> list[dict[str, str]]:
        return [{**await leaf(tag, delay), "caller_run": parent["run_id"]}]

    groups = await asyncio.gather(
        in_new_block("n0", 0.03),
        plain("p0", 0.02),
        in_new_block("n1", 0.01),
        plain("p1", 0.03),
        in_new_block("n2", 0.02),
        plain("p2", 0.01),
    )
    return [parent, *(task for group in groups for task in group)]


def test_concurrent_children_under_different_blocks_attach_to_their_own_parent(
    wandb_root: Path, init_calls: list[dict[str, Any]]
) -> None:
    result = run_local(fan_out)
    parent, *tasks = result.outputs
    mids = [t for t in tasks if "caller_run" not in t]
    leaves = [t for t in tasks if "caller_run" in t]

    assert len(mids) == 3 and len(leaves) == 9
    assert len({parent["run_id"], *(m["run_id"] for m in mids)}) == 4
    assert len(init_calls) == 4
    for one in leaves:
        assert one["run_id"] == one["caller_run"], one
        assert_link_is_the_run(result, wandb_root, one, "ent-fan", "proj-fan")
    for one in mids:
        assert_link_is_the_run(result, wandb_root, one, "ent-fan", "proj-fan")
        tag = one["tag"]
        assert metric_keys(recorded(wandb_root, one["run_id"])) == {
            f"mid_{tag}",
            f"leaf_{tag}-0",
            f"leaf_{tag}-1",
        }
    assert metric_keys(recorded(wandb_root, parent["run_id"])) == {"leaf_p0", "leaf_p1", "leaf_p2"}


# --- get_wandb_run() everywhere a task's code runs --------------------------------------------------


@flyte.trace
async def traced_step(value: int) -> str:
    run = task_run()
    run.log({"from_trace": value})
    return str(run.id)


def log_from_thread(key: str, seen: dict[str, str]) -> None:
    run = get_wandb_run()
    seen[key] = run.id if run is not None else "none"
    if run is not None:
        run.log({f"from_{key}": 1})


@wandb_init(project="proj-where", entity="ent-where")
@env.task
async def logs_from_everywhere() -> dict[str, str]:
    import wandb

    seen = {"body": task_run().id}
    task_run().log({"from_body": 1})
    seen["trace"] = await traced_step(2)
    thread = threading.Thread(target=log_from_thread, args=("thread", seen))
    thread.start()
    thread.join()
    copied = contextvars.copy_context()
    thread = threading.Thread(target=copied.run, args=(log_from_thread, "copied_thread", seen))
    thread.start()
    thread.join()
    seen["to_thread"] = await asyncio.to_thread(lambda: task_run().id)
    seen["wandb_run"] = wandb.run.id if wandb.run is not None else "none"
    wandb.log({"from_wandb_log": 1})
    return {**seen, **me()}


def test_get_wandb_run_and_wandb_log_reach_the_tasks_run_from_body_trace_and_threads(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_local(logs_from_everywhere)
    seen = result.outputs

    run_id = seen["run_id"]
    # A thread that carries no context gets the run too: this task is the only action running in
    # the process, so the thread can only be its (as in a pod). See test_local_remote.py for a
    # thread beside several actions.
    for where in ("body", "trace", "thread", "copied_thread", "to_thread", "wandb_run"):
        assert seen[where] == run_id, where
    assert "does not carry its task's context" not in caplog.text
    assert_link_is_the_run(result, wandb_root, seen, "ent-where", "proj-where")
    assert metric_keys(recorded(wandb_root, run_id)) == {
        "from_body",
        "from_trace",
        "from_thread",
        "from_copied_thread",
        "from_wandb_log",
    }


@wandb_init(run_mode="new")
@env.task
async def sibling_with_threads(tag: str) -> dict[str, str]:
    await asyncio.sleep(0.02)
    seen: dict[str, str] = {}
    copied = contextvars.copy_context()
    thread = threading.Thread(target=copied.run, args=(log_from_thread, f"copied_{tag}", seen))
    thread.start()
    thread.join()
    thread = threading.Thread(target=log_from_thread, args=(f"plain_{tag}", seen))
    thread.start()
    thread.join()
    return {**me(tag=tag), "copied": seen[f"copied_{tag}"], "plain": seen[f"plain_{tag}"]}


@wandb_init(project="proj-sib", entity="ent-sib")
@env.task
async def siblings_with_threads() -> list[dict[str, str]]:
    return list(await asyncio.gather(*(sibling_with_threads(f"s{i}") for i in range(3))))


def test_threads_of_concurrent_sibling_runs_never_see_a_siblings_run(wandb_root: Path) -> None:
    result = run_local(siblings_with_threads)

    for sibling in result.outputs:
        assert sibling["copied"] == sibling["run_id"]
        # A plain thread has no context: with several runs alive it cannot know its run, and it
        # must not guess a sibling's.
        assert sibling["plain"] in ("none", sibling["run_id"])
        expected = {f"from_copied_{sibling['tag']}"}
        if sibling["plain"] != "none":
            expected.add(f"from_plain_{sibling['tag']}")
        assert metric_keys(recorded(wandb_root, sibling["run_id"])) == expected
        assert_link_is_the_run(result, wandb_root, sibling, "ent-sib", "proj-sib")


@wandb_init(run_mode="new")
@env.task
async def overlapping_new_child(tag: str, delay: float) -> str:
    # wandb.run is one per process: while sibling runs overlap it can point at either, so children
    # that run side by side log through get_wandb_run().
    task_run().log({f"child_{tag}": 1})
    await asyncio.sleep(delay)
    return str(task_run().id)


@wandb_init(project="proj-glob", entity="ent-glob")
@env.task
async def parent_using_wandb_log_around_new_children() -> dict[str, str]:
    import wandb

    wandb.log({"before_children": 1})

    async def started_later() -> str:
        await asyncio.sleep(0.15)
        return str(await overlapping_new_child("b", 0.3))

    # a starts first and finishes first, while b is still running.
    children = await asyncio.gather(overlapping_new_child("a", 0.3), started_later())
    seen = wandb.run.id if wandb.run is not None else "none"
    wandb.log({"after_children": 1})
    return {**me(), "wandb_run_after_children": seen, "a": children[0], "b": children[1]}


def test_wandb_run_points_at_the_parents_run_again_after_its_new_children_finish(wandb_root: Path) -> None:
    result = run_local(parent_using_wandb_log_around_new_children)
    out = result.outputs

    assert out["wandb_run_after_children"] == out["run_id"]
    assert metric_keys(recorded(wandb_root, out["run_id"])) == {"before_children", "after_children"}
    for tag in ("a", "b"):
        assert metric_keys(recorded(wandb_root, out[tag])) == {f"child_{tag}"}


# --- a child with its own fixed id ------------------------------------------------------------------


@wandb_init(id="my-id")
@env.task
async def child_with_fixed_id() -> dict[str, str]:
    task_run().log({"fixed": 1})
    return me()


@wandb_init(project="proj-id", entity="ent-id")
@env.task
async def parent_of_fixed_id() -> list[dict[str, str]]:
    return [me(), await child_with_fixed_id()]


def test_a_childs_own_run_id_is_used_locally_and_shown_by_its_link(wandb_root: Path) -> None:
    result = run_local(parent_of_fixed_id)
    parent, child = result.outputs

    assert child["run_id"] == "my-id"
    assert_link_is_the_run(result, wandb_root, child, "ent-id", "proj-id")
    assert metric_keys(recorded(wandb_root, "my-id")) == {"fixed"}
    assert_link_is_the_run(result, wandb_root, parent, "ent-id", "proj-id")
    assert parent["run_id"] != "my-id"


# --- task.override keeps the W&B behaviour ----------------------------------------------------------


@wandb_init(project="proj-over", entity="ent-over")
@env.task
async def overridable() -> dict[str, str]:
    task_run().log({"overridden": 1})
    return me()


def test_override_keeps_the_run_and_the_link(wandb_root: Path) -> None:
    result = run_local(overridable.override(retries=2, env_vars={"SOME_VAR": "1"}))
    task = result.outputs

    assert_link_is_the_run(result, wandb_root, task, "ent-over", "proj-over")
    assert metric_keys(recorded(wandb_root, task["run_id"])) == {"overridden"}


def test_override_with_other_links_still_starts_the_run(wandb_root: Path) -> None:
    replaced = Wandb(project="proj-other", entity="ent-other", name="Elsewhere")
    result = run_local(overridable.override(links=(replaced,)))
    task = result.outputs

    assert result.links_by_action[task["action"]] == [
        ("Elsewhere", run_url("ent-other", "proj-other", task["run_id"]))
    ]
    run = recorded(wandb_root, task["run_id"])
    assert (run.project, run.entity, run.exit_code) == ("proj-over", "ent-over", 0)
    assert metric_keys(run) == {"overridden"}


# --- @wandb_init on plain functions -----------------------------------------------------------------


@wandb_init(project="proj-fn", entity="ent-fn", config={"kind": "sync"})
def sync_function(value: int) -> str:
    run = task_run()
    run.log({"sync_value": value})
    return str(run.id)


@wandb_init(project="proj-fn", entity="ent-fn", config={"kind": "async"})
async def async_function(value: int) -> str:
    await asyncio.sleep(0)
    run = task_run()
    run.log({"async_value": value})
    return str(run.id)


def test_a_plain_sync_function_starts_and_finishes_its_own_run(wandb_root: Path) -> None:
    import wandb

    run_id = sync_function(3)

    run = recorded(wandb_root, run_id)
    assert (run.project, run.entity, run.exit_code) == ("proj-fn", "ent-fn", 0)
    assert run.config == {"kind": "sync"}
    assert run.column("sync_value") == [3]
    assert get_wandb_run() is None
    assert wandb.run is None


async def test_a_plain_async_function_starts_and_finishes_its_own_run(wandb_root: Path) -> None:
    import wandb

    run_id = await async_function(4)

    run = recorded(wandb_root, run_id)
    assert (run.project, run.entity, run.exit_code) == ("proj-fn", "ent-fn", 0)
    assert run.config == {"kind": "async"}
    assert run.column("async_value") == [4]
    assert get_wandb_run() is None
    assert wandb.run is None


@wandb_init(project="proj-task", entity="ent-task")
@env.task
async def task_calling_functions() -> dict[str, str]:
    ids = {"sync_fn": sync_function(5), "async_fn": await async_function(6)}
    task_run().log({"after_functions": 1})
    return {**ids, **me()}


def test_decorated_functions_called_in_a_task_write_to_the_tasks_run(
    wandb_root: Path, init_calls: list[dict[str, Any]]
) -> None:
    result = run_local(task_calling_functions)
    task = result.outputs

    assert task["sync_fn"] == task["async_fn"] == task["run_id"]
    assert len(init_calls) == 1
    assert len(find_offline_run_dirs(wandb_root)) == 1
    assert_link_is_the_run(result, wandb_root, task, "ent-task", "proj-task")
    # The functions did not finish the task's run: it kept recording after they returned.
    assert metric_keys(recorded(wandb_root, task["run_id"])) == {
        "sync_value",
        "async_value",
        "after_functions",
    }


def test_shared_mode_settings_do_not_override_a_users_offline_mode() -> None:
    from flyteplugins.wandb._run import _merge_settings

    kwargs: dict[str, Any] = {"settings": {"mode": "offline", "x_label": "mine"}}
    _merge_settings(kwargs, {"mode": "shared", "x_primary": True, "x_label": "a0"})

    settings = kwargs["settings"]
    assert (settings.mode, settings.x_primary, settings.x_label) == ("offline", True, "a0")


def test_the_links_fields_show_the_decorators_run_mode_and_rank_scope() -> None:
    task = wandb_init(run_mode="new", rank_scope="worker")(flyte.TaskEnvironment(name="repr").task(_noop))

    (link,) = task.links
    assert (link.run_mode, link.rank_scope) == ("new", "worker")


async def _noop() -> None:
    return None


def test_remote_plans_use_wandb_shared_mode_with_the_owner_as_primary() -> None:
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import plan_task_run

    own = plan_task_run(resolve(context={}), run_name="r1", action_name="a0", remote=True)
    assert (own.action, own.owner, own.finishes, own.identity and own.identity.id) == (
        "init",
        True,
        True,
        "r1-a0",
    )
    assert own.shared == {"mode": "shared", "x_primary": True, "x_label": "a0"}
    assert own.init_kwargs["resume"] == "allow"

    parent = {"_wandb_run_id": "r1-a0", "_wandb_run_project": "p", "_wandb_run_entity": "e"}
    child = plan_task_run(resolve(context=parent), run_name="r1", action_name="a1", remote=True)
    assert (child.action, child.owner, child.finishes) == ("init", False, True)
    assert child.shared == {
        "mode": "shared",
        "x_primary": False,
        "x_label": "a1",
        "x_update_finish_state": False,
    }
    assert (child.init_kwargs["id"], child.init_kwargs["project"], child.init_kwargs["entity"]) == (
        "r1-a0",
        "p",
        "e",
    )
    assert "resume" not in child.init_kwargs

    local = plan_task_run(
        resolve(context=parent), run_name="r1", action_name="a1", remote=False, live_ids={"r1-a0"}
    )
    assert (local.action, local.init_kwargs, local.shared) == ("reuse", {}, None)
