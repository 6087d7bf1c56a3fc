"""A task's declared W&B variables (``TaskEnvironment(env_vars=...)``) are what its container sees:
its link and its run read them over the launching process's, locally as on a cluster.

On a cluster ``flyte run`` renders the first action's link in the launching process, and a parent
pod renders its children's links; the task's own pod gets its declared variables. Without reading
them, a link would follow the shell (or the parent's pod) while the run follows the declaration.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import Wandb, explain, get_wandb_run, reload_settings, wandb_init
from flyteplugins.wandb._layers import resolve
from flyteplugins.wandb._offline import read_offline_run
from flyteplugins.wandb._settings import declared_wandb_env

DECLARED = {"WANDB_PROJECT": "declared-proj", "WANDB_ENTITY": "declared-team", "OMP_NUM_THREADS": "1"}
declaring = flyte.TaskEnvironment(name="declaring_env", env_vars=DECLARED)


@wandb_init
@declaring.task
async def declaring_task() -> dict[str, str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    (project,) = [row for row in explain() if row.name == "project"]
    return {
        "run": str(run.id),
        "project": str(run.project),
        "dir": str(run.dir),
        "origin": str(project.origin),
    }


def render(link: Wandb, context: dict[str, str] | None = None) -> str:
    return link.get_link("r1", "fp", "dev", context or {}, "a0", "a1", "pod")


def the_link(task: object) -> Wandb:
    (link,) = [link for link in getattr(task, "links", ()) if isinstance(link, Wandb)]
    return link


def assert_written_where_linked(local: Any, project: str) -> None:
    """``declaring_task`` ran in ``project`` of the declared entity, as its variables say, and its
    link names that run."""
    seen = local.outputs
    assert seen["project"] == project
    assert seen["origin"].startswith("env WANDB_PROJECT (TaskEnvironment env_vars)")
    recorded = read_offline_run(Path(seen["dir"]).parent, wait=10)
    assert (recorded.project, recorded.entity) == (project, "declared-team")
    assert recorded.column("x") == [1]
    assert local.links["declaring_task"] == [
        ("Weights & Biases", f"https://wandb.ai/declared-team/{project}/runs/{seen['run']}")
    ]


def test_only_the_wandb_settings_among_the_declared_variables_count() -> None:
    assert declared_wandb_env(DECLARED) == (
        ("WANDB_ENTITY", "declared-team"),
        ("WANDB_PROJECT", "declared-proj"),
    )
    assert declared_wandb_env(None) == ()


def test_the_link_reads_the_declared_variables_over_the_launching_processs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "shell-proj")
    monkeypatch.setenv("WANDB_ENTITY", "shell-team")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")  # not declared: the shell's
    reload_settings()
    try:
        link = the_link(declaring_task)
        assert render(link) == "https://wandb.example.com/declared-team/declared-proj/runs/r1-a1"
        # A link added by hand knows no task environment: the process's settings.
        assert render(Wandb()) == "https://wandb.example.com/shell-team/shell-proj/runs/r1-a1"
        # The process's own resolution is left alone.
        assert resolve(context={}, use_current_context=False).get("project") == "shell-proj"
    finally:
        monkeypatch.undo()
        reload_settings()


def test_a_declared_empty_variable_unsets_the_shells(monkeypatch: pytest.MonkeyPatch) -> None:
    env = flyte.TaskEnvironment(
        name="declaring_empty", env_vars={"WANDB_PROJECT": "", "WANDB_ENTITY": "declared-team"}
    )

    @wandb_init
    @env.task
    async def empty() -> None:
        return None

    monkeypatch.setenv("WANDB_PROJECT", "shell-proj")
    reload_settings()
    try:
        # As in the container, where WANDB_PROJECT is empty: no project, so no run page to open.
        assert render(the_link(empty)) == "https://wandb.ai"
        # A parent's project (from its run's identity in the context) still places the run.
        context = {"_wandb_run_id": "p", "_wandb_run_project": "parent-proj", "wandb_run_mode": "new"}
        assert render(the_link(empty), context) == "https://wandb.ai/declared-team/parent-proj/runs/r1-a1"
    finally:
        monkeypatch.undo()
        reload_settings()


def test_a_local_run_writes_where_its_link_points_with_the_declared_settings(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "shell-proj")
    reload_settings()
    assert_written_where_linked(run_local(declaring_task), "declared-proj")


def test_rendering_many_links_builds_the_declared_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # get_link is hot (one call per action): the declared environment is read once per change of
    # the process's environment, not per call.
    from flyteplugins.wandb import _layers

    builds: list[object] = []
    real = _layers._build_base

    def counting(declared: object = None) -> object:
        builds.append(declared)
        return real(declared)  # type: ignore[arg-type]

    monkeypatch.setattr(_layers, "_build_base", counting)
    reload_settings()
    link = the_link(declaring_task)
    urls = {link.get_link("r1", "fp", "dev", {}, "a0", f"a{uuid.uuid4().hex[:8]}", "pod") for _ in range(200)}
    assert len(urls) == 200
    assert len(builds) == 2  # the process's environment, and the task's view of it


def test_a_local_run_talks_to_the_server_its_task_declares(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The shell has no WANDB_BASE_URL (wandb's default server); the task declares online W&B on a
    # real local port that refuses connections. The run goes where the task's container would send
    # it, and where its link points: it finds that server down and continues offline.
    import logging
    import socket

    from flyteplugins.wandb import _fallback

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = flyte.TaskEnvironment(
        name="declaring_server", env_vars={"WANDB_MODE": "online", "WANDB_BASE_URL": server}
    )

    @wandb_init(project="proj", entity="team")
    @env.task
    async def served() -> str:
        run = get_wandb_run()
        assert run is not None
        run.log({"x": 1})
        return str(run.id)

    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    _fallback._probe_cache.clear()
    try:
        local = run_local(served)
    finally:
        _fallback._probe_cache.clear()
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"W&B server {server} unreachable"), warnings
    assert local.links["served"] == [("Weights & Biases", f"{server}/team/proj/runs/{local.outputs}")]


# --- task.override(env_vars=...) -------------------------------------------------------------------

OVERRIDDEN = {**DECLARED, "WANDB_PROJECT": "override-proj"}


@declaring.task
async def overriding_parent() -> dict[str, str]:
    return await declaring_task.override(env_vars=OVERRIDDEN)()


@pytest.mark.smoke
def test_an_override_of_the_variables_moves_the_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    reload_settings()
    overridden = declaring_task.override(env_vars=OVERRIDDEN)
    # One W&B link, reading the container's new variables; the decorated task itself is unchanged.
    assert [link.name for link in overridden.links] == ["Weights & Biases"]
    assert render(the_link(overridden)) == "https://wandb.ai/declared-team/override-proj/runs/r1-a1"
    assert render(the_link(declaring_task)) == "https://wandb.ai/declared-team/declared-proj/runs/r1-a1"
    # An override that leaves the variables alone keeps the decorated task's link, and still follows
    # a later override of the variables.
    retried = declaring_task.override(retries=2)
    assert the_link(retried) is the_link(declaring_task)
    moved = retried.override(env_vars=OVERRIDDEN)
    assert render(the_link(moved)) == "https://wandb.ai/declared-team/override-proj/runs/r1-a1"
    assert moved.retries == retried.retries


def test_an_overridden_child_runs_where_its_link_points(wandb_root: Path) -> None:
    assert_written_where_linked(run_local(overriding_parent), "override-proj")
