"""Quickstart: one Flyte task, one W&B run, a link to it in the Flyte UI.

Runs offline by default (no account, no network): the run is written under ./wandb and can be
uploaded later with `wandb sync`. Set WANDB_MODE=online (and log in) to send it to W&B directly.
At the end the plugin prints one line saying where the run is: its W&B link, its folder, the
Flyte action name.

    python examples/quickstart.py
"""

from __future__ import annotations

import os

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="quickstart")


@wandb_init(project="quickstart", entity="my-team", tags=["quickstart"])
@env.task
async def train(epochs: int = 3, learning_rate: float = 0.5) -> float:
    run = get_wandb_run()
    run.config.update({"epochs": epochs, "learning_rate": learning_rate})
    loss = 1.0
    for epoch in range(epochs):
        loss *= 1 - learning_rate
        run.log({"epoch": epoch, "loss": loss})
    return loss


def main() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    flyte.init()
    run = flyte.with_runcontext(mode="local").run(train, epochs=3)
    print(f"final loss: {run.outputs()[0]}")


if __name__ == "__main__":
    main()
