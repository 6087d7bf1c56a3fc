"""The tasks of ``tests/test_pod_process.py``: one action per pod, or many in one reused process.

Rehearsed by :mod:`cluster.harness` (each action its own ``a0`` process, or one of a
:class:`cluster.harness.Replica`'s actions). A task reports what it saw to the JSON-lines file
named by ``POD_REPORT``, a variable of the rehearsal's image (``Cluster(env=...)``). The
environment declares no W&B variables: the image's decide the mode and the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

import flyte
import wandb

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="pod")


def report(**seen: Any) -> None:
    """Append one line of what a task saw to the file ``POD_REPORT`` names."""
    with open(os.environ["POD_REPORT"], "a", encoding="utf-8") as out:
        out.write(json.dumps(seen) + "\n")


def _id(run: Any) -> str | None:
    return None if run is None else str(run.id)


def _in_plain_thread() -> str | None:
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(get_wandb_run()))
    thread.start()
    thread.join()
    return _id(seen[0])


@env.task
async def plain(steps: int) -> int:
    """The same work as :func:`logged`, without W&B: the pod's life without the plugin."""
    return steps


@wandb_init(project="proj-pod", entity="ent-pod")
@env.task
async def logged(steps: int) -> int:
    """Log ``steps`` losses; report the run and what a thread without context gets."""
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    report(task="logged", run=_id(run), offline=bool(run.offline), plain_thread=_in_plain_thread())
    return steps


@wandb_init(project="proj-pod", entity="ent-pod")
@env.task
async def fails(steps: int) -> int:
    """Log ``steps`` losses, then fail the attempt."""
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    raise ValueError("the attempt fails")


# --- a reusable container: several actions in one process at once ------------------------------


@wandb_init(project="proj-pod", entity="ent-pod")
@env.task
async def holder(steps: int) -> int:
    """Start a run, say so (``POD_HELD``), keep it alive until :func:`looker` has looked (``POD_RELEASE``)."""
    run = get_wandb_run()
    run.log({"loss": 1.0})
    report(task="holder", run=_id(run), wandb_run=_id(wandb.run))
    with open(os.environ["POD_HELD"], "w", encoding="utf-8"):
        pass
    for _ in range(steps * 1000):
        if os.path.exists(os.environ["POD_RELEASE"]):
            break
        await asyncio.sleep(0.01)
    return steps


@env.task
async def looker(steps: int) -> int:
    """An action without ``@wandb_init`` beside :func:`holder`, while its run is alive: what does it get?"""
    for _ in range(steps * 1000):
        if os.path.exists(os.environ["POD_HELD"]):
            break
        await asyncio.sleep(0.01)
    try:
        wandb.log({"leak": 1.0})
        logged_into = "a run"
    except wandb.Error:
        logged_into = "error"
    report(
        task="looker",
        run=_id(get_wandb_run()),
        wandb_run=_id(wandb.run),
        plain_thread=_in_plain_thread(),
        wandb_log=logged_into,
    )
    with open(os.environ["POD_RELEASE"], "w", encoding="utf-8"):
        pass
    return steps


@wandb_init(project="proj-pod", entity="ent-pod")
@env.task
async def short(steps: int) -> int:
    """One of many actions run one after another in a reused process."""
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    return steps
