"""A rehearsed reusable container (``flyte.ReusePolicy``): one process running many actions.

Started by :meth:`cluster.harness.Replica.start` as ``python replica.py <plan.json>``. Like the
reuse runtime, it initialises once, creates one controller, and runs each action through flyte's
``load_and_run_task`` in this one process and event loop, up to ``concurrency`` at a time; a
failed action's error goes to its ``error.pb`` and the process goes on. Whenever no action is
running, the user's modules (the task code unpacked in this directory) are unloaded, so the next
action imports them afresh. Prints ``ACTION DONE <run name>`` after each action. The actions run
in waves (:meth:`cluster.harness.Replica.barrier`), one after the other; with ``"memory"`` in the
plan it appends a JSON line to ``memory.jsonl`` after each wave: its resident memory and that of
its descendants (wandb-core), from ``/proc``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cluster.controller import install
from cluster.harness import PROJECT, Attempt, ClusterConfig, _finish, _record
from cluster.procmem import memory

MEMORY_FILE = "memory.jsonl"  # in the replica's working directory
_KEEP = {"cluster", "cluster.controller", "cluster.harness", "cluster.procmem", "cluster.replica"}


def unload_user_modules(code_dir: Path) -> None:
    """Forget every module loaded from the task code in ``code_dir`` (not the runtime's own)."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if name not in _KEEP and path.startswith(str(code_dir)):
            del sys.modules[name]


async def run_replica(plan: dict[str, Any], controller: Any, config: ClusterConfig, replica: str) -> None:
    from flyte._bin.runtime import main
    from flyte._internal.runtime.convert import convert_from_native_to_error
    from flyte._internal.runtime.entrypoints import load_and_run_task
    from flyte._internal.runtime.io import upload_error
    from flyte.errors import RuntimeSystemError, RuntimeUserError
    from flyte.models import ActionID, CheckpointPaths, RawDataPath

    # Older flyte (2.2.4) takes no run start time.
    since: dict[str, Any] = {}
    if "run_start_time" in inspect.signature(load_and_run_task).parameters:
        since["run_start_time"] = datetime(2026, 1, 1, tzinfo=timezone.utc)
    semaphore = asyncio.Semaphore(plan["concurrency"])
    running = 0
    code_dir = Path.cwd()

    async def one(action: dict[str, Any]) -> None:
        nonlocal running
        async with semaphore:
            running += 1
            started = time.monotonic()
            params = main.make_context("a0", list(action["args"])).params
            try:
                await load_and_run_task(
                    resolver=params["resolver"],
                    resolver_args=list(params["resolver_args"]),
                    action=ActionID(
                        name=params["name"],
                        run_name=params["run_name"],
                        project=PROJECT,
                        domain=os.environ["FLYTE_INTERNAL_EXECUTION_DOMAIN"],
                        org=os.environ["_U_ORG_NAME"],
                    ),
                    raw_data_path=RawDataPath(path=params["raw_data_path"]),
                    checkpoint_paths=CheckpointPaths(
                        prev_checkpoint_path=params["prev_checkpoint"],
                        checkpoint_path=params["checkpoint_path"],
                    ),
                    code_bundle=None,
                    input_path=params["inputs"],
                    output_path=params["outputs_path"],
                    run_base_dir=params["run_base_dir"],
                    version=params["version"],
                    controller=controller,
                    image_cache=None,
                    interactive_mode=False,
                    **since,
                )
            except (RuntimeSystemError, RuntimeUserError) as exc:
                err = convert_from_native_to_error(exc)
                await upload_error(err.err, params["outputs_path"], recoverable=err.recoverable)
            finally:
                running -= 1
                if running == 0:
                    unload_user_modules(code_dir)
            attempt = Attempt(
                action=action["run_name"],
                task=action["task"],
                parent=None,
                attempt=0,
                pod_dir=str(code_dir),
                output_prefix=action["output_prefix"],
                checkpoint=params["checkpoint_path"] or "",
                prev_checkpoint="",
                links=[tuple(link) for link in action["links"]],  # type: ignore[misc]
                exit_code=0,
                elapsed=time.monotonic() - started,
                replica=replica,
            )
            _finish(attempt)
            _record(config, attempt)
            print("ACTION DONE", action["run_name"], flush=True)

    started = time.monotonic()
    waves = sorted({action.get("wave", 0) for action in plan["actions"]})
    for index, wave in enumerate(waves, start=1):
        await asyncio.gather(*(one(action) for action in plan["actions"] if action.get("wave", 0) == wave))
        if plan.get("memory"):
            seen = {"wave": index, "seconds": time.monotonic() - started, **memory()}
            # Its own file: wandb-core writes into the process's log at any moment, and a line
            # there can be split or joined with one of its lines.
            with open(MEMORY_FILE, "a") as out:
                out.write(json.dumps(seen) + "\n")


def main_replica(plan_path: str) -> None:
    install()
    from flyte._initialize import init_in_cluster
    from flyte._internal.controllers import create_controller

    plan = json.loads(Path(plan_path).read_text())
    sys.path.insert(0, ".")
    kwargs = init_in_cluster(
        org=os.environ["_U_ORG_NAME"], project=PROJECT, domain=os.environ["FLYTE_INTERNAL_EXECUTION_DOMAIN"]
    )
    controller = create_controller(ct="remote", **kwargs)
    config = ClusterConfig.from_env()
    asyncio.run(run_replica(plan, controller, config, Path.cwd().name))


if __name__ == "__main__":
    main_replica(sys.argv[1])
