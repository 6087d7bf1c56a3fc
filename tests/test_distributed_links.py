"""Links of distributed training tasks: built from a real ``flyteplugins.pytorch.Elastic`` config.

A task gets one link (``runs/`` for auto and shared, ``groups/`` for new), except with
``rank_scope="worker"`` on several nodes, where it gets one link per worker. The last tests run the
task as each rank in turn (real local Flyte runs, real offline wandb) and check that the link Flyte
rendered opens the page that holds the run that rank wrote.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
import pytest

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

pytorch = pytest.importorskip(
    "flyteplugins.pytorch", reason="flyteplugins-pytorch (the Elastic plugin) is needed"
)
Elastic = pytorch.Elastic

RUN_MODES = ("auto", "shared", "new")
RANK_SCOPES = ("global", "worker")
HOST = "https://wandb.ai/team/proj"
RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


def elastic_task(
    run_mode: str, rank_scope: str, nnodes: int | str = 2, nproc: int = 2, **decorator: Any
) -> Any:
    env = flyte.TaskEnvironment(
        name=f"links_{run_mode}_{rank_scope}", plugin_config=Elastic(nnodes=nnodes, nproc_per_node=nproc)
    )
    decorator.setdefault("project", "proj")
    decorator.setdefault("entity", "team")

    @wandb_init(run_mode=run_mode, rank_scope=rank_scope, **decorator)
    @env.task
    def train() -> str:
        run = get_wandb_run()
        if run is None:
            return ""
        run.log({"rank": int(os.environ.get("RANK", "0"))})
        return f"{run.id}|{run.group or ''}|{run.dir}"

    return train


def wandb_links(task: Any) -> list[Wandb]:
    return [link for link in task.links if isinstance(link, Wandb)]


def render(
    link: Wandb, run_name: str = "r1", action_name: str = "a1", context: dict[str, str] | None = None
) -> str:
    return link.get_link(
        run_name=run_name,
        project="fp",
        domain="dev",
        context=context or {},
        parent_action_name="a0",
        action_name=action_name,
        pod_name="pod-0",
    )


def rendered(task: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return [(link.name, render(link, **kwargs)) for link in wandb_links(task)]


# ---------------------------------------------------------------------------------------------
# Which links, pointing where.
# ---------------------------------------------------------------------------------------------
MULTI_NODE_LINKS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("auto", "global"): [("Weights & Biases", f"{HOST}/runs/r1-a1")],
    ("shared", "global"): [("Weights & Biases", f"{HOST}/runs/r1-a1")],
    ("new", "global"): [("Weights & Biases", f"{HOST}/groups/r1-a1")],
    ("auto", "worker"): [
        ("Weights & Biases Worker 0", f"{HOST}/runs/r1-a1-worker-0"),
        ("Weights & Biases Worker 1", f"{HOST}/runs/r1-a1-worker-1"),
    ],
    ("shared", "worker"): [
        ("Weights & Biases Worker 0", f"{HOST}/runs/r1-a1-worker-0"),
        ("Weights & Biases Worker 1", f"{HOST}/runs/r1-a1-worker-1"),
    ],
    ("new", "worker"): [
        ("Weights & Biases Worker 0", f"{HOST}/groups/r1-a1-worker-0"),
        ("Weights & Biases Worker 1", f"{HOST}/groups/r1-a1-worker-1"),
    ],
}


@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_multi_node_links(run_mode: str, rank_scope: str) -> None:
    task = elastic_task(run_mode, rank_scope)
    assert rendered(task) == MULTI_NODE_LINKS[(run_mode, rank_scope)]


@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_single_node_gets_one_link_whatever_the_scope(run_mode: str, rank_scope: str) -> None:
    task = elastic_task(run_mode, rank_scope, nnodes=1, nproc=4)
    kind = "groups" if run_mode == "new" else "runs"
    assert rendered(task) == [("Weights & Biases", f"{HOST}/{kind}/r1-a1")]


def test_worker_links_follow_the_declared_node_count() -> None:
    task = elastic_task("shared", "worker", nnodes=3, nproc=1)
    assert rendered(task) == [
        (f"Weights & Biases Worker {i}", f"{HOST}/runs/r1-a1-worker-{i}") for i in range(3)
    ]


def test_elastic_range_gets_links_for_its_maximum() -> None:
    # nnodes="1:2" may run on one or two nodes; links are made before the job starts, so there is
    # one per worker the range allows (see docs/distributed.md for what ranks on fewer nodes do).
    task = elastic_task("new", "worker", nnodes="1:2")
    assert [name for name, _ in rendered(task)] == ["Weights & Biases Worker 0", "Weights & Biases Worker 1"]
    assert rendered(elastic_task("new", "global", nnodes="1:2")) == [
        ("Weights & Biases", f"{HOST}/groups/r1-a1")
    ]


def test_user_id_and_group_in_links() -> None:
    task = elastic_task("new", "worker", id="job", group="sweep-7")
    # The user's group holds every rank's run: both worker links open it.
    assert rendered(task) == [
        ("Weights & Biases Worker 0", f"{HOST}/groups/sweep-7"),
        ("Weights & Biases Worker 1", f"{HOST}/groups/sweep-7"),
    ]
    task = elastic_task("shared", "worker", id="job")
    assert [url for _, url in rendered(task)] == [f"{HOST}/runs/job-worker-0", f"{HOST}/runs/job-worker-1"]
    task = elastic_task("new", "global", id="job")
    assert rendered(task) == [("Weights & Biases", f"{HOST}/groups/job")]


def test_links_take_project_and_entity_from_context_and_keep_templates() -> None:
    task = elastic_task("auto", "worker", project=None, entity=None)
    context = {"wandb_project": "ctx proj", "wandb_entity": "ctx-team"}
    urls = [url for _, url in rendered(task, action_name="{{.actionName}}", context=context)]
    assert urls == [
        f"https://wandb.ai/ctx-team/ctx%20proj/runs/r1-{{{{.actionName}}}}-worker-{i}" for i in range(2)
    ]
    # Without project or entity there is no page to open but the host.
    assert [url for _, url in rendered(task)] == ["https://wandb.ai", "https://wandb.ai"]


def test_decorator_beats_context_in_distributed_links() -> None:
    task = elastic_task("new", "global")
    context = {"wandb_project": "other", "wandb_entity": "other-team", "wandb_run_mode": "auto"}
    assert rendered(task, context=context) == [("Weights & Biases", f"{HOST}/groups/r1-a1")]


def test_disabled_mode_renders_no_distributed_link() -> None:
    task = elastic_task("shared", "worker", mode="disabled")
    assert [url for _, url in rendered(task)] == ["", ""]


def test_tasks_without_elastic_get_the_plain_link() -> None:
    env = flyte.TaskEnvironment(name="links_plain")

    @wandb_init(project="proj", entity="team", run_mode="new", rank_scope="worker")
    @env.task
    def plain() -> None:
        return None

    (link,) = wandb_links(plain)
    assert (link.name, link._is_distributed, link._worker_index) == ("Weights & Biases", False, None)
    assert render(link) == f"{HOST}/runs/r1-a1"


def test_override_keeps_the_distributed_links() -> None:
    task = elastic_task("auto", "worker").override(short_name="renamed")
    assert [name for name, _ in rendered(task)] == ["Weights & Biases Worker 0", "Weights & Biases Worker 1"]


# ---------------------------------------------------------------------------------------------
# The link Flyte renders for an action opens the page of the run each rank of it wrote.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def as_rank(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, int, int], None]:
    """Set the launcher's variables of one rank of an ``nnodes`` x ``nproc`` job (undone after the test)."""

    def set_rank(rank: int, nnodes: int, nproc: int) -> None:
        node, local = divmod(rank, nproc)
        values = (rank, nnodes * nproc, local, nproc, node)
        for name, value in zip(RANK_VARS, values, strict=True):
            monkeypatch.setenv(name, str(value))

    return set_rank


def run_as_rank(task: Any, name: str) -> tuple[str, list[tuple[str, str]]]:
    """A real local Flyte run of ``task`` named ``name``: its output and the links Flyte rendered."""
    from flyte.cli._tui._tracker import ActionTracker

    if not flyte._initialize.is_initialized():
        flyte.init()
    tracker = ActionTracker()
    run = flyte.with_runcontext(mode="local", name=name, _tracker=tracker).run(task)
    (node,) = [n for key, n in tracker._nodes.items() if not key.startswith("__group__")]
    output = run.outputs()
    return str(output[0] if isinstance(output, tuple) else output), list(node.log_links or [])


@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_each_ranks_run_is_on_the_page_its_link_opens(as_rank: Any, run_mode: str, rank_scope: str) -> None:
    task = elastic_task(run_mode, rank_scope)
    name = f"lk-{uuid.uuid4().hex[:6]}"
    pages: dict[str, set[str]] = {}  # link URL -> the runs the ranks wrote there
    links_seen: list[list[tuple[str, str]]] = []
    folders: set[Path] = set()
    for rank in range(4):
        as_rank(rank, 2, 2)
        output, links = run_as_rank(task, name=name)
        links_seen.append(links)
        if not output:
            continue
        run_id, group, files_dir = output.split("|")
        folder = Path(files_dir).parent
        recorded = read_offline_run(folder, wait=10)
        assert (recorded.run_id, recorded.group or "", recorded.exit_code) == (run_id, group, 0)
        assert recorded.column("rank") == [rank]
        worker = rank // 2
        # The link for this rank's worker (or the only link).
        url = dict(links).get(f"Weights & Biases Worker {worker}") or dict(links)["Weights & Biases"]
        page = f"{HOST}/groups/{group}" if run_mode == "new" else f"{HOST}/runs/{run_id}"
        assert url == page
        pages.setdefault(url, set()).add(run_id)
        folders.add(folder)
    # Every rank's action rendered the same links, and every link leads to something.
    assert all(links == links_seen[0] for links in links_seen)
    assert {url for _, url in links_seen[0]} == set(pages)
    # Nothing else was written for this job: one folder per rank that wrote.
    (root,) = {folder.parent for folder in folders}
    written = {d for d in find_offline_run_dirs(root) if read_offline_run(d).run_id.startswith(f"{name}-")}
    assert written == folders


def test_local_run_of_an_elastic_task_writes_where_its_link_points() -> None:
    task = elastic_task("new", "global", nnodes=1, nproc=2)
    output, links = run_as_rank(task, name="lk-local")
    run_id, group, _ = output.split("|")
    ((_, url),) = links
    assert url == f"{HOST}/groups/{group}"
    assert run_id.endswith("-rank-0")


def test_run_mode_from_context_reaches_worker_links() -> None:
    # The number of links is fixed when the task is decorated (rank_scope and the Elastic config);
    # what they open follows the run mode the action really runs with, here from its context.
    env = flyte.TaskEnvironment(name="links_ctx", plugin_config=Elastic(nnodes=2, nproc_per_node=2))

    @wandb_init(rank_scope="worker")
    @env.task
    def train() -> None:
        return None

    context = {"wandb_project": "proj", "wandb_entity": "team", "wandb_run_mode": "new"}
    assert rendered(train, context=context) == [
        ("Weights & Biases Worker 0", f"{HOST}/groups/r1-a1-worker-0"),
        ("Weights & Biases Worker 1", f"{HOST}/groups/r1-a1-worker-1"),
    ]


@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_a_distributed_child_writes_and_links_beside_its_parents_run(run_mode: str, rank_scope: str) -> None:
    # The parent's project and entity reach a child only as its run's identity in the context (the
    # parent had them from its own decorator); the ranks' run and the link both land there.
    from flyteplugins.wandb._distributed import DistributedInfo
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import plan_task_run

    task = elastic_task(run_mode, rank_scope, project=None, entity=None)
    context = {"_wandb_run_id": "parent-run", "_wandb_run_entity": "team", "_wandb_run_project": "proj"}
    resolved = resolve("run", task=wandb_links(task)[0]._layer, context=context, use_current_context=False)
    info = DistributedInfo(
        rank=0, local_rank=0, world_size=4, local_world_size=2, worker_index=0, num_workers=2
    )
    plan = plan_task_run(resolved, run_name="r1", action_name="a1", remote=True, distributed=info)
    assert plan.identity is not None
    assert (plan.identity.entity, plan.identity.project) == ("team", "proj")
    assert (plan.init_kwargs["entity"], plan.init_kwargs["project"]) == ("team", "proj")
    kind = "groups" if run_mode == "new" else "runs"
    name = plan.init_kwargs["group"] if run_mode == "new" else plan.identity.id
    assert rendered(task, context=context)[0][1] == f"{HOST}/{kind}/{name}"
