"""A fan-out rehearsed as a cluster: a parent with a report tab, children with runs of their own.

Each task runs in its own ``a0`` process (see :mod:`cluster.harness`); the parent reads its
children's run digests from the Flyte run's storage, the only place all of them can reach.
"""

from __future__ import annotations

import asyncio
import os

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="fanout")


@wandb_init(run_mode="new")
@env.task
async def learner(lr: float, steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for step in range(steps):
        run.log({"train/loss": abs(lr) * (steps - step), "acc": step / steps})
    if lr < 0:
        # Killed before its run ends (an evicted pod, an out-of-memory kill): no digest left behind.
        os._exit(3)
    return str(run.id)


@wandb_init(project="fan", entity="team")
@env.task(report=True)
async def tune(lrs: list[float], steps: int) -> str:
    results = await asyncio.gather(*(learner(lr, steps) for lr in lrs), return_exceptions=True)
    run = get_wandb_run()
    assert run is not None
    failed = sum(isinstance(r, BaseException) for r in results)
    print(f"FANOUT children={len(results)} failed={failed}", flush=True)
    return str(run.id)
