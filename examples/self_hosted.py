"""A self-hosted W&B server: point the W&B SDK at it and the Flyte links follow.

WANDB_BASE_URL is the server's API address, as the W&B SDK expects it. The plugin derives the web
address from it the way the SDK does (https://api.wandb.mycompany.internal is served at
https://wandb.mycompany.internal), so the link in the Flyte UI opens the run on your server.
Set WANDB_APP_URL to give the web address directly.

Runs offline by default, so no server is needed to try it:

    python examples/self_hosted.py
    WANDB_BASE_URL=https://api.wandb.example.com python examples/self_hosted.py
"""

from __future__ import annotations

import os

import flyte

from flyteplugins.wandb import Wandb, explain, get_wandb_run, wandb_config, wandb_init

SERVER = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.mycompany.internal"
# A cluster's containers need the server's address too (the W&B SDK reads it): declare it.
env = flyte.TaskEnvironment(name="self_hosted", env_vars={"WANDB_BASE_URL": SERVER})

WORKFLOW_CONTEXT = wandb_config(project="self-hosted", entity="ml-platform")


@wandb_init
@env.task
async def train(steps: int = 3) -> tuple[str, str]:
    run = get_wandb_run()
    for step in range(steps):
        run.log({"loss": 1 / (step + 1)})
    return str(run.id), flyte.ctx().action.name


def link_of(task: object, run_name: str, action_name: str) -> str:
    """The link Flyte shows for an action of ``task``: the same call Flyte makes."""
    link = next(link for link in getattr(task, "links", ()) if isinstance(link, Wandb))
    return link.get_link(
        run_name=run_name,
        project="",
        domain="",
        context=dict(WORKFLOW_CONTEXT),
        parent_action_name="",
        action_name=action_name,
        pod_name="",
    )


def main() -> None:
    os.environ.setdefault("WANDB_BASE_URL", SERVER)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    host = explain().as_dict()["host"]
    print(f"WANDB_BASE_URL={os.environ['WANDB_BASE_URL']} -> W&B web address {host}")
    flyte.init()
    run_name = "self-hosted-example"
    run = flyte.with_runcontext(mode="local", name=run_name, custom_context=dict(WORKFLOW_CONTEXT)).run(train)
    run_id, action_name = run.outputs()
    print(f"W&B run: {run_id}")
    print(f"Flyte link: {link_of(train, run_name, action_name)}")


if __name__ == "__main__":
    main()
