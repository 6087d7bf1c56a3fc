"""A process that runs one local Flyte task with a W&B run and then waits to be stopped.

Started by ``tests/test_preemption.py``: the task logs ``--steps`` steps, prints ``READY`` and
sleeps; the test then sends the process a real signal. ``--user-handler`` installs a SIGTERM
handler of the program's own before the task is decorated (it prints ``USER HANDLER`` and exits
with code 7), to prove that the plugin passes the signal on to it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

import flyte


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--run-id", default="preempted-run")
    parser.add_argument("--user-handler", action="store_true")
    parser.add_argument("--sync", action="store_true")
    args = parser.parse_args()

    if args.user_handler:

        def user_handler(signum: int, frame: Any) -> None:
            print("USER HANDLER", signum, flush=True)
            sys.exit(7)

        signal.signal(signal.SIGTERM, user_handler)

    from flyteplugins.wandb import get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(name="preempt")

    @wandb_init(project="proj", entity="team", id=args.run_id)
    @env.task
    async def train(steps: int) -> int:
        run = get_wandb_run()
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1)})
        print("READY", flush=True)
        await asyncio.sleep(120)
        return steps

    @wandb_init(project="proj", entity="team", id=args.run_id)
    @env.task
    def train_sync(steps: int) -> int:
        run = get_wandb_run()
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1)})
        print("READY", flush=True)
        time.sleep(120)
        return steps

    flyte.init()
    flyte.with_runcontext(mode="local").run(train_sync if args.sync else train, args.steps)


if __name__ == "__main__":
    main()
