"""The ``Wandb`` and ``WandbSweep`` links: their public shape, the URLs they render, and the links
Flyte renders for real local runs, checked against the runs W&B wrote to disk."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import (
    Wandb,
    WandbSweep,
    get_wandb_run,
    wandb_config,
    wandb_init,
    wandb_sweep_config,
)
from flyteplugins.wandb._offline import read_offline_run

pytestmark = pytest.mark.smoke

env = flyte.TaskEnvironment(name="test_links")

GET_LINK_PARAMETERS = [
    "self",
    "run_name",
    "project",
    "domain",
    "context",
    "parent_action_name",
    "action_name",
    "pod_name",
    "kwargs",
]


def render(link: Wandb | WandbSweep, context: dict[str, str] | None = None, **names: str) -> str:
    return link.get_link(
        run_name=names.get("run_name", "run1"),
        project="flyte-project",
        domain="development",
        context=context or {},
        parent_action_name="a0",
        action_name=names.get("action_name", "a1"),
        pod_name="pod",
    )


# --- public shape ------------------------------------------------------------------------------


def test_wandb_constructor_matches_the_reference() -> None:
    parameters = inspect.signature(Wandb).parameters
    assert [(p.name, p.default) for p in parameters.values()] == [
        ("host", "https://wandb.ai"),
        ("project", None),
        ("entity", None),
        ("run_mode", "auto"),
        ("rank_scope", "global"),
        ("id", None),
        ("name", "Weights & Biases"),
        ("_is_distributed", False),
        ("_worker_index", None),
    ]


def test_wandb_sweep_constructor_matches_the_reference() -> None:
    parameters = inspect.signature(WandbSweep).parameters
    assert [(p.name, p.default) for p in parameters.values()] == [
        ("host", "https://wandb.ai"),
        ("project", None),
        ("entity", None),
        ("id", None),
        ("name", "Weights & Biases Sweep"),
    ]


@pytest.mark.parametrize("cls", [Wandb, WandbSweep])
def test_links_are_flyte_link_dataclasses(cls: type[Any]) -> None:
    assert dataclasses.is_dataclass(cls)
    # flyte.Link is a Protocol that is not runtime-checkable: check the subclassing and every
    # member of the protocol instead of isinstance().
    assert flyte.Link in cls.__mro__
    link = cls()
    assert isinstance(link.name, str)
    assert link.icon_uri == flyte.Link.icon_uri
    assert list(inspect.signature(cls.get_link).parameters) == GET_LINK_PARAMETERS
    assert list(inspect.signature(flyte.Link.get_link).parameters) == GET_LINK_PARAMETERS
    assert link == cls()
    assert link != cls(project="other")


def test_link_repr_shows_fields_as_given() -> None:
    assert "project='p'" in repr(Wandb(project="p"))
    assert Wandb(host="https://wandb.ai/").host == "https://wandb.ai/"


# --- rendered URLs -----------------------------------------------------------------------------


def test_run_link_is_host_entity_project_runs_id() -> None:
    assert render(Wandb(project="proj", entity="team")) == "https://wandb.ai/team/proj/runs/run1-a1"
    assert render(Wandb(project="proj", entity="team", id="fixed")) == "https://wandb.ai/team/proj/runs/fixed"


@pytest.mark.parametrize("fields", [{}, {"project": "proj"}, {"entity": "team"}])
def test_link_without_project_or_entity_is_the_bare_host(fields: dict[str, str]) -> None:
    assert render(Wandb(**fields)) == "https://wandb.ai"
    assert render(Wandb(host="https://wandb.example.com/", **fields)) == "https://wandb.example.com"
    assert render(WandbSweep(**fields)) == "https://wandb.ai"


def test_host_trailing_slash_is_normalised() -> None:
    link = Wandb(host="https://wandb.example.com//", project="proj", entity="team")
    assert render(link) == "https://wandb.example.com/team/proj/runs/run1-a1"
    sweep = WandbSweep(host="https://wandb.example.com/prefix/", project="proj", entity="team")
    assert render(sweep) == "https://wandb.example.com/prefix/team/proj/sweeps"


@pytest.mark.parametrize(
    ("fields", "names", "url"),
    [
        (
            {"project": "my project", "entity": "my team"},
            {},
            "https://wandb.ai/my%20team/my%20project/runs/run1-a1",
        ),
        (
            {"project": "p", "entity": "e", "id": "ünï code"},
            {},
            "https://wandb.ai/e/p/runs/%C3%BCn%C3%AF%20code",
        ),
        ({"project": "p", "entity": "e"}, {"run_name": "r #1?"}, "https://wandb.ai/e/p/runs/r%20%231%3F-a1"),
        (
            {"project": "p", "entity": "e"},
            {"action_name": "50%/x"},
            "https://wandb.ai/e/p/runs/run1-50%25%2Fx",
        ),
        ({"project": "p", "entity": "e"}, {"run_name": "ñ"}, "https://wandb.ai/e/p/runs/%C3%B1-a1"),
    ],
)
def test_link_path_segments_are_quoted(fields: dict[str, str], names: dict[str, str], url: str) -> None:
    assert render(Wandb(**fields), **names) == url


def test_same_link_renders_each_action_with_its_own_names() -> None:
    link = Wandb(project="p", entity="e")
    urls = {render(link, run_name=f"r{i}", action_name=f"a{i} x") for i in range(5)}
    assert urls == {f"https://wandb.ai/e/p/runs/r{i}-a{i}%20x" for i in range(5)}


def test_flyte_action_name_template_is_kept_intact() -> None:
    # What Flyte's remote serialization passes (flyte/_internal/runtime/task_serde.py).
    url = render(Wandb(project="my proj", entity="e"), action_name="{{.actionName}}")
    assert url == "https://wandb.ai/e/my%20proj/runs/run1-{{.actionName}}"
    url = render(Wandb(project="p", entity="e"), run_name="my run", action_name="{{.actionName}}")
    assert url == "https://wandb.ai/e/p/runs/my%20run-{{.actionName}}"
    assert render(Wandb(project="p", entity="e", id="fixed"), action_name="{{.actionName}}").endswith(
        "/runs/fixed"
    )


@env.task(links=[Wandb(project="my proj", entity="team")])
async def serialized_child() -> None:
    return None


@env.task
async def serialize_child_links() -> list[str]:
    from flyte._internal.runtime.task_serde import get_proto_task
    from flyte.models import SerializationContext

    context = SerializationContext(version="v1", project="fp", domain="dev", root_dir=Path(__file__).parent)
    with wandb_config(host="https://wandb.example.com"):
        proto = get_proto_task(serialized_child, context, task_context=flyte.ctx())
    ctx = flyte.ctx()
    assert ctx is not None
    return [ctx.action.run_name or "", *(f"{log.name}|{log.uri}" for log in proto.metadata.log_links)]


def test_remote_serialization_renders_template_link() -> None:
    run_name, *links = run_local(serialize_child_links).outputs
    assert links == [
        f"Weights & Biases|https://wandb.example.com/team/my%20proj/runs/{run_name}-{{{{.actionName}}}}"
    ]


@pytest.mark.parametrize(
    "how",
    ["env", "context", "block"],
)
def test_disabled_mode_renders_no_link(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    link = Wandb(project="p", entity="e")
    context: dict[str, str] = {}
    if how == "env":
        monkeypatch.setenv("WANDB_MODE", "disabled")
        assert render(link) == ""
    elif how == "context":
        context["wandb_mode"] = "disabled"
        assert render(link, context) == ""
    else:
        with wandb_config(mode="disabled"):
            assert render(link) == ""
    monkeypatch.setenv("WANDB_MODE", "online")
    assert render(link) == "https://wandb.ai/e/p/runs/run1-a1"


def test_disabled_mode_from_decorator_renders_no_link() -> None:
    @wandb_init(project="p", entity="e", mode="disabled")
    @env.task
    async def silent() -> None:
        return None

    assert [render(link) for link in silent.links] == [""]


def test_sweep_link_with_and_without_id() -> None:
    assert render(WandbSweep(project="p", entity="e")) == "https://wandb.ai/e/p/sweeps"
    assert render(WandbSweep(project="p", entity="e", id="abc123")) == "https://wandb.ai/e/p/sweeps/abc123"
    parent_sweep = {
        "_wandb_sweep_id": "fromparent",
        "_wandb_sweep_project": "sp",
        "_wandb_sweep_entity": "se",
    }
    assert render(WandbSweep(), parent_sweep) == "https://wandb.ai/se/sp/sweeps/fromparent"


def test_sweep_link_honours_its_own_project_and_entity() -> None:
    context = {"wandb_project": "run-project", "wandb_entity": "run-entity"}
    assert render(WandbSweep(), context) == "https://wandb.ai/run-entity/run-project/sweeps"
    with wandb_sweep_config(project="sweep-project"):
        assert render(WandbSweep(), context) == "https://wandb.ai/run-entity/sweep-project/sweeps"
        link = WandbSweep(project="link-project", entity="link-entity")
        assert render(link, context) == "https://wandb.ai/link-entity/link-project/sweeps"


def test_link_reads_env_at_render_time_not_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Wandb()
    assert render(link) == "https://wandb.ai"
    monkeypatch.setenv("WANDB_PROJECT", "envp")
    monkeypatch.setenv("WANDB_ENTITY", "enve")
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.company.com")
    assert render(link) == "https://app.company.com/enve/envp/runs/run1-a1"


# --- links Flyte renders in real local runs ----------------------------------------------------


def run_identity() -> dict[str, str]:
    run = get_wandb_run()
    ctx = flyte.ctx()
    assert run is not None and ctx is not None
    return {
        "run_id": str(run.id),
        "project": str(run.project),
        "entity": str(run.entity),
        "run_dir": str(Path(run.dir).parent),
        "run_name": ctx.action.run_name or "",
        "action": ctx.action.name,
    }


def only_link(links: list[tuple[str, str]]) -> str:
    assert [name for name, _ in links] == ["Weights & Biases"]
    return links[0][1]


def recorded(ident: dict[str, str]) -> tuple[str | None, str | None]:
    """Project and entity of the run as W&B wrote it to disk."""
    # The run's own directory: wandb keeps the WANDB_DIR it saw first for the whole process.
    # Its service writes the end of the log after run.finish() has returned: wait for it.
    run = read_offline_run(ident["run_dir"], wait=30.0)
    assert run.run_id == ident["run_id"]
    assert not run.truncated and run.finished, run
    return run.project, run.entity


@wandb_init
@env.task
async def attaching_child() -> dict[str, str]:
    return run_identity()


@wandb_init(run_mode="new")
@env.task
async def own_run_child() -> dict[str, str]:
    return run_identity()


@wandb_init(project="parent-project", entity="parent-team")
@env.task
async def decorated_parent() -> list[dict[str, str]]:
    return [run_identity(), await attaching_child(), await own_run_child()]


def test_parent_and_children_links_point_at_the_runs_they_write() -> None:
    result = run_local(decorated_parent)
    parent, attached, own = result.outputs
    base = "https://wandb.ai/parent-team/parent-project/runs"
    assert only_link(result.links["decorated_parent"]) == f"{base}/{parent['run_name']}-{parent['action']}"
    assert parent["run_id"] == f"{parent['run_name']}-{parent['action']}"
    # auto: the child writes into its parent's run, and its link says so.
    assert attached["run_id"] == parent["run_id"]
    assert only_link(result.links["attaching_child"]) == f"{base}/{parent['run_id']}"
    # new: the child's own run, in the parent's project (given only on the parent's decorator).
    assert own["run_id"] == f"{own['run_name']}-{own['action']}"
    assert only_link(result.links["own_run_child"]) == f"{base}/{own['run_id']}"
    assert recorded(parent) == ("parent-project", "parent-team")
    assert recorded(own) == ("parent-project", "parent-team")


@wandb_init
@env.task
async def env_configured() -> dict[str, str]:
    return run_identity()


def test_links_follow_the_wandb_sdk_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.company.com")
    result = run_local(env_configured)
    ident = result.outputs
    assert only_link(result.links["env_configured"]) == (
        f"https://app.company.com/env-team/env-project/runs/{ident['run_id']}"
    )
    assert (ident["project"], ident["entity"]) == ("env-project", "env-team")
    assert recorded(ident) == ("env-project", "env-team")


@env.task(links=[Wandb()])
async def plain_child() -> str:
    ctx = flyte.ctx()
    assert ctx is not None
    return ctx.action.name


@env.task(links=[Wandb()])
async def plain_parent() -> list[str]:
    ctx = flyte.ctx()
    assert ctx is not None
    outside = await plain_child()
    with wandb_config(project="block-project", host="https://block.example.com"):
        inside = await plain_child()
    return [ctx.action.run_name or "", ctx.action.name, outside, inside]


def test_links_from_context_and_from_a_block_around_a_child_call() -> None:
    context = dict(wandb_config(project="ctx-project", entity="ctx-team", host="https://wandb.example.com/"))
    result = run_local(plain_parent, custom_context=context)
    run_name, parent_action, outside, inside = result.outputs
    links = {action: only_link(result.links_by_action[action]) for action in (parent_action, outside, inside)}
    base = "https://wandb.example.com/ctx-team/ctx-project/runs"
    assert links[parent_action] == f"{base}/{run_name}-{parent_action}"
    assert links[outside] == f"{base}/{run_name}-{outside}"
    assert links[inside] == f"https://block.example.com/ctx-team/block-project/runs/{run_name}-{inside}"


@wandb_init(project="task-project", entity="task-team", run_mode="new")
@env.task
async def decorated_child() -> dict[str, str]:
    return run_identity()


@env.task
async def undecorated_parent() -> dict[str, str]:
    return await decorated_child()


def test_decorator_arguments_beat_context_in_link_and_run() -> None:
    context = dict(wandb_config(project="ctx-project", entity="ctx-team"))
    result = run_local(undecorated_parent, custom_context=context)
    ident = result.outputs
    assert only_link(result.links["decorated_child"]) == (
        f"https://wandb.ai/task-team/task-project/runs/{ident['run_id']}"
    )
    assert (ident["project"], ident["entity"]) == ("task-project", "task-team")
    assert recorded(ident) == ("task-project", "task-team")


def test_block_outside_any_task_reaches_local_run_links() -> None:
    with wandb_config(project="outer-project", entity="outer-team"):
        result = run_local(plain_parent)
    run_name, parent_action, outside, _ = result.outputs
    assert only_link(result.links_by_action[parent_action]) == (
        f"https://wandb.ai/outer-team/outer-project/runs/{run_name}-{parent_action}"
    )
    assert only_link(result.links_by_action[outside]) == (
        f"https://wandb.ai/outer-team/outer-project/runs/{run_name}-{outside}"
    )


@env.task(links=[Wandb(project="link-project", entity="link-team", id="fixed-run")])
async def link_fields_child() -> None:
    return None


@env.task
async def calls_link_fields_child() -> None:
    await link_fields_child()


def test_explicit_link_fields_beat_the_run_context_in_a_local_run() -> None:
    context = dict(wandb_config(project="ctx-project", entity="ctx-team", host="https://wandb.example.com"))
    result = run_local(calls_link_fields_child, custom_context=context)
    assert only_link(result.links["link_fields_child"]) == (
        "https://wandb.example.com/link-team/link-project/runs/fixed-run"
    )
