"""Nested tasks writing into one W&B run: the parent starts it, children and grandchildren share it.

`@wandb_init` with the default run_mode="auto" attaches a task to its parent's run when the parent
has one. So a whole tree of tasks, including children running concurrently, logs into the run of
the task at its top, and every task's link in the Flyte UI points at that run.

    python examples/nested_subtasks.py
"""

from __future__ import annotations

import asyncio
import os

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="nested_subtasks")


@wandb_init
@env.task
async def load_shard(shard: int) -> int:
    # A grandchild: still the top task's run.
    rows = 100 * (shard + 1)
    get_wandb_run().log({f"shard_{shard}/rows": rows})
    return rows


@wandb_init
@env.task
async def preprocess(shards: int) -> int:
    rows = sum(await asyncio.gather(*(load_shard(i) for i in range(shards))))
    get_wandb_run().log({"preprocess/rows": rows})
    return rows


@wandb_init
@env.task
async def train(rows: int, epochs: int) -> float:
    run = get_wandb_run()
    loss = 1.0
    for epoch in range(epochs):
        loss = loss * 0.6
        run.log({"train/epoch": epoch, "train/loss": loss, "train/rows": rows})
    return loss


@wandb_init(project="nested-subtasks", entity="my-team", config={"shards": 3, "epochs": 3})
@env.task
async def pipeline(shards: int = 3, epochs: int = 3) -> str:
    run = get_wandb_run()
    rows = await preprocess(shards)
    loss = await train(rows, epochs)
    run.summary["final_loss"] = loss
    return str(run.id)


def main() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    flyte.init()
    run = flyte.with_runcontext(mode="local").run(pipeline)
    print(f"every task logged into W&B run {run.outputs()[0]}")


if __name__ == "__main__":
    main()
