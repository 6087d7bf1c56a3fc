"""The scenario matrix's workflows: run locally (``mode="local"``) and rehearsed as a cluster.

Each task returns what it saw (:func:`observe`): the W&B run it writes into (or ``none``) and
where that run's files are. Warnings the plugin gives about local/remote differences are printed
with the prefix ``LOCAL_REMOTE:`` and kept in :data:`WARNINGS`, so both legs can compare them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import flyte

from flyteplugins.wandb import Wandb, get_wandb_run, get_wandb_run_dir, wandb_init

ENTITY, PROJECT = "team", "matrix"
WARNINGS: list[str] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        WARNINGS.append(message)
        print("LOCAL_REMOTE:", message.replace("\n", " "), flush=True)


logging.getLogger("flyteplugins.wandb.local_remote").addHandler(_Collect(logging.WARNING))

env = flyte.TaskEnvironment(name="cluster")


def observe(**extra: Any) -> dict[str, str]:
    """The run the code here writes into (``none`` without one), its folder, and ``extra``."""
    run = get_wandb_run()
    seen = {
        "run": "none" if run is None else str(run.id),
        "project": "" if run is None else str(run.project),
        "dir": str(get_wandb_run_dir()),
        "pid": str(os.getpid()),
        "attempt": os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"),
    }
    if run is not None:
        run.log({"step_of": 1})
    return {**seen, **{k: str(v) for k, v in extra.items()}}


# --- a parent with auto, new, shared and undecorated children ------------------------------------


@wandb_init
@env.task(links=[Wandb()])
async def auto_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(run_mode="new")
@env.task(links=[Wandb(run_mode="new")])
async def new_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(run_mode="shared")
@env.task(links=[Wandb(run_mode="shared")])
async def shared_child(x: int) -> dict[str, str]:
    return observe(x=x)


@env.task
async def plain_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init
@env.task
def sync_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task(links=[Wandb(entity=ENTITY, project=PROJECT)])
async def parent(x: int) -> dict[str, dict[str, str]]:
    me = observe()
    auto, new, shared, plain = await asyncio.gather(
        auto_child(x), new_child(x), shared_child(x), plain_child(x)
    )
    sync = await sync_child.aio(x)
    return {"parent": me, "auto": auto, "new": new, "shared": shared, "plain": plain, "sync": sync}


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task
def sync_parent(x: int) -> dict[str, dict[str, str]]:
    return {"parent": observe(), "sync": sync_child(x)}
