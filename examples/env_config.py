"""Configure W&B for a whole workflow with environment variables only: no arguments in the code.

The W&B SDK's own variables (WANDB_PROJECT, WANDB_ENTITY, WANDB_TAGS, WANDB_RUN_GROUP, WANDB_MODE,
WANDB_BASE_URL, ...) configure both the runs and the links Flyte shows; FLYTEPLUGINS_WANDB_*
variables set what the SDK does not know, such as the run mode. Normally you export them in the
shell or set them on the task environment (`flyte.TaskEnvironment(env_vars={...})`); this script
sets defaults for the ones you did not set, then prints where every setting comes from.

    WANDB_PROJECT=my-project python examples/env_config.py
"""

from __future__ import annotations

import asyncio
import os

import flyte

from flyteplugins.wandb import explain, get_wandb_run, wandb_init

DEFAULTS = {
    "WANDB_MODE": "offline",
    "WANDB_PROJECT": "env-configured",
    "WANDB_ENTITY": "my-team",
    "WANDB_TAGS": "env,example",
    "WANDB_RUN_GROUP": "env-example",
    # Every task gets a run of its own, instead of sharing its parent's.
    "FLYTEPLUGINS_WANDB_RUN_MODE": "new",
}

# On a cluster a task's container gets only the variables its environment declares: declaring them
# here makes the cluster's runs land where the local ones do (and a local run has nothing to warn
# about). WANDB_MODE is left to each place: offline here, online with an API key on a cluster.
env = flyte.TaskEnvironment(
    name="env_config",
    env_vars={name: os.environ.get(name) or dflt for name, dflt in DEFAULTS.items() if name != "WANDB_MODE"},
)


@wandb_init
@env.task
async def fit(fold: int) -> float:
    run = get_wandb_run()
    score = 0.8 + fold / 100
    run.log({"fold": fold, "score": score})
    return score


@wandb_init
@env.task
async def cross_validate(folds: int = 2) -> float:
    run = get_wandb_run()
    scores = await asyncio.gather(*(fit(fold) for fold in range(folds)))
    mean = sum(scores) / len(scores)
    run.log({"mean_score": mean})
    return mean


def main() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("WANDB_SILENT", "true")
    print("W&B settings, and the environment variable each comes from:")
    print(explain())
    flyte.init()
    run = flyte.with_runcontext(mode="local").run(cross_validate, folds=2)
    print(f"mean score: {run.outputs()[0]:.3f}")


if __name__ == "__main__":
    main()
