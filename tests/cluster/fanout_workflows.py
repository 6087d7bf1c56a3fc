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


@wandb_init(run_mode="new")
@env.task(retries=1)
async def flaky_learner(lr: float, steps: int) -> str:
    """Fails its first attempt after logging, succeeds in its second (a new pod)."""
    run = get_wandb_run()
    assert run is not None
    attempt = int(os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"))
    for step in range(steps):
        run.log({"train/loss": lr * (steps - step) + attempt})
    if attempt == 0:
        raise RuntimeError("first attempt fails")
    return str(run.id)


@wandb_init(project="fan", entity="team")
@env.task(report=True)
async def tune_flaky(lrs: list[float], steps: int) -> str:
    await asyncio.gather(*(flaky_learner(lr, steps) for lr in lrs))
    run = get_wandb_run()
    assert run is not None
    return str(run.id)
