"""The link Flyte shows is the run the task writes: locally and in the cluster rehearsal, on every
wandb and flyte of the version matrix (``smoke``).

The tasks declare ``WANDB_BASE_URL=https://api.wandb.ai`` (W&B's public cloud), so the link's host
is derived from it. W&B's web UI for that cloud is ``https://forge.coreweave.com/wandb`` (it
moved there from ``https://wandb.ai``, see ``docs/links.md``); wandb SDKs older than that move still
name their runs' pages on ``https://wandb.ai``, which is why the plugin derives the host itself
rather than asking the installed SDK. On a cluster the parent renders each child's link with
``{{.actionName}}`` templates, which the backend fills in; the child writes the run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cluster import workflows
from cluster.harness import Cluster
from conftest import run_local

from flyteplugins.wandb import reload_settings

FORGE = "https://forge.coreweave.com/wandb"
ROLES = {"parent": "cloud_parent", "auto": "cloud_auto_child", "new": "cloud_new_child"}


def expected(seen: dict[str, str]) -> list[tuple[str, str]]:
    return [("Weights & Biases", f"{FORGE}/{workflows.ENTITY}/{workflows.PROJECT}/runs/{seen['run']}")]


@pytest.mark.smoke
def test_each_link_names_the_run_its_task_writes_locally_and_on_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The launching process has the variable too: a local run reads it there, and `flyte run`
    # renders the first action's link there (see the test below).
    monkeypatch.setenv("WANDB_BASE_URL", workflows.PUBLIC_CLOUD)
    reload_settings()
    with ThreadPoolExecutor(1) as pool:
        rehearsal = pool.submit(Cluster(tmp_path / "cluster").run, workflows.cloud_parent)
        local = run_local(workflows.cloud_parent)
        rehearsed = rehearsal.result()
    assert rehearsed.ok, rehearsed.root.log()
    for role, task in ROLES.items():
        (attempt,) = rehearsed.by_task(task)
        assert attempt.links == expected(rehearsed.outputs[role]), role
        assert local.links[task] == expected(local.outputs[role]), role
    # auto writes into the parent's run, new into its own: the same both ways.
    for outputs in (local.outputs, rehearsed.outputs):
        assert outputs["auto"]["run"] == outputs["parent"]["run"] != outputs["new"]["run"]


def test_the_first_actions_link_follows_the_tasks_declared_environment(tmp_path: Path) -> None:
    # WANDB_BASE_URL is declared by the task's TaskEnvironment only, not set where the run starts.
    rehearsed = Cluster(tmp_path / "cluster").run(workflows.cloud_parent)
    assert rehearsed.ok, rehearsed.root.log()
    assert rehearsed.root.links == expected(rehearsed.outputs["parent"])
