"""A hyperparameter sweep's objective, driven locally: no W&B account, no sweep service.

With a W&B account, `@wandb_sweep` creates the sweep when the task starts and `wandb.agent` asks
the W&B sweep service for one set of hyperparameters after another, calling the objective for
each (see docs/sweeps.md):

    @wandb_sweep
    @env.task
    async def tune(trials: int) -> str:
        wandb.agent(get_wandb_sweep_id(), function=objective, count=trials)
        return get_wandb_sweep_id()

The sweep service is on W&B's servers, so offline this script plays its part for a grid sweep:
it expands the grid of the sweep configuration and calls the same `@wandb_init` objective once
per combination, each call in a W&B run of its own with that combination as its config, exactly
as the agent would.

    python examples/sweep.py
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

import flyte

from flyteplugins.wandb import (
    get_wandb_run,
    get_wandb_sweep_context,
    wandb_config,
    wandb_init,
    wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="sweep")

SWEEP = wandb_sweep_config(
    method="grid",
    metric={"name": "loss", "goal": "minimize"},
    parameters={
        "learning_rate": {"values": [0.01, 0.1]},
        "batch_size": {"values": [16, 64]},
    },
)


@wandb_init
def objective() -> float:
    """One trial: reads its hyperparameters from the run's config, logs the metric the sweep optimises."""
    run = get_wandb_run()
    learning_rate = float(run.config["learning_rate"])
    batch_size = int(run.config["batch_size"])
    loss = 1.0
    for step in range(5):
        loss = loss * (1 - learning_rate * 4) + batch_size / 1000
        run.log({"step": step, "loss": loss})
    return loss


def grid(parameters: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid sweep's parameter values, as the sweep service would hand them out."""
    names = sorted(parameters)
    choices = [parameters[n].get("values", [parameters[n].get("value")]) for n in names]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*choices)]


@env.task
async def tune() -> dict[str, float]:
    # The sweep configuration the workflow was started with (its custom_context).
    sweep = get_wandb_sweep_context().to_sweep_config()
    losses: dict[str, float] = {}
    for params in grid(sweep["parameters"]):
        label = ",".join(f"{k}={v}" for k, v in params.items())
        # Each trial: a run of its own, with its hyperparameters as the run's config.
        with wandb_config(config=params, group="local-grid-sweep", tags=["sweep-trial"]):
            losses[label] = objective()
    return losses


def main() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    flyte.init()
    context = {**wandb_config(project="sweep-example", entity="my-team"), **SWEEP}
    run = flyte.with_runcontext(mode="local", custom_context=context).run(tune)
    losses: dict[str, float] = run.outputs()[0]
    for label, loss in sorted(losses.items(), key=lambda item: item[1]):
        print(f"{label:<40} loss {loss:.4f}")
    best = min(losses, key=losses.__getitem__)
    print(f"best: {best}")


if __name__ == "__main__":
    main()
