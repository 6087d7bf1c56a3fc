"""The scenario matrix's workflows: run locally (``mode="local"``) and rehearsed as a cluster.

Each task returns what it saw (:func:`observe`): the W&B run it writes into (or ``none``) and
where that run's files are. Warnings the plugin gives about local/remote differences are printed
with the prefix ``LOCAL_REMOTE:`` and kept in :data:`WARNINGS`, so both legs can compare them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Any

import flyte

from flyteplugins.wandb import get_wandb_run, get_wandb_run_dir, get_wandb_sweep_id, wandb_init, wandb_sweep

ENTITY, PROJECT = "team", "matrix"
WARNINGS: list[str] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        WARNINGS.append(message)
        # One write: the pod's log is unbuffered, and wandb-core writes into it too.
        sys.stdout.write("LOCAL_REMOTE: " + message.replace("\n", " ") + "\n")
        sys.stdout.flush()


logging.getLogger("flyteplugins.wandb.local_remote").addHandler(_Collect(logging.WARNING))

# What the task's container declares: W&B offline, quiet. A cluster's pod gets exactly this.
OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
env = flyte.TaskEnvironment(name="cluster", env_vars=OFFLINE)


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
@env.task
async def auto_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(run_mode="new")
@env.task
async def new_child(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(run_mode="shared")
@env.task
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
@env.task
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


# --- flyte.trace ---------------------------------------------------------------------------------


@flyte.trace
async def traced_step(x: int) -> dict[str, str]:
    return observe(x=x)


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task
async def traced_parent(x: int) -> dict[str, dict[str, str]]:
    return {"parent": observe(), "traced": await traced_step(x)}


# --- a sweep -------------------------------------------------------------------------------------


def fake_sweep_service() -> None:
    """Stand in for the W&B sweep service (there is no network): ``wandb.sweep`` returns an id."""
    import wandb

    def sweep(
        sweep: dict[str, Any], entity: str | None = None, project: str | None = None, prior_runs: Any = None
    ) -> str:
        return "sweep-rehearsed"

    wandb.sweep = sweep


# A pod of the sweep scenario stands in for the sweep service before any task runs.
if os.environ.get("REHEARSAL_FAKE_SWEEP_SERVICE"):
    fake_sweep_service()


@env.task
async def sweep_plain_child() -> str:
    return get_wandb_sweep_id() or ""


@wandb_sweep
@env.task
async def sweep_child() -> str:
    return get_wandb_sweep_id() or ""


@wandb_sweep(project=PROJECT, entity=ENTITY)
@env.task
async def tune() -> list[str]:
    return [get_wandb_sweep_id() or "", await sweep_child(), await sweep_plain_child()]


# --- a retry after a failure ---------------------------------------------------------------------


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task(retries=1)
async def flaky(marker: str) -> dict[str, str]:
    """Fails its first attempt (after logging a step), succeeds the second: ``marker`` says which."""
    seen = observe()
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return seen


# --- preemption ----------------------------------------------------------------------------------


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task
async def preemptible(steps: int) -> int:
    run = get_wandb_run()
    assert run is not None
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    print("READY", flush=True)
    await asyncio.sleep(120)
    return steps


# --- a thread without the task's context ---------------------------------------------------------


def _look_from_thread() -> str:
    seen: list[str] = []

    def look() -> None:
        run = get_wandb_run()
        seen.append("none" if run is None else str(run.id))

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return seen[0]


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task
async def thread_without_context() -> dict[str, str]:
    return observe(thread=_look_from_thread())


# --- a reusable container ------------------------------------------------------------------------

reusable = flyte.TaskEnvironment(
    name="cluster_reusable", env_vars=OFFLINE, reusable=flyte.ReusePolicy(replicas=1, concurrency=4)
)


@wandb_init(entity=ENTITY, project=PROJECT)
@reusable.task
async def reused(i: int, steps: int) -> dict[str, str]:
    run = get_wandb_run()
    assert run is not None
    for _ in range(steps):
        run.log({"who": i})
        await asyncio.sleep(0)
    return observe(i=i)


@wandb_init(entity=ENTITY, project=PROJECT)
@reusable.task
async def long_writer(seconds: float) -> dict[str, str]:
    print("WRITER READY", flush=True)
    await asyncio.sleep(seconds)
    return observe()


@reusable.task
async def undecorated_looker(delay: float) -> dict[str, str]:
    """Looks for a run from a thread without context and at ``wandb.run``, while another run is live."""
    import wandb

    await asyncio.sleep(delay)
    return observe(thread=_look_from_thread(), wandb_run="none" if wandb.run is None else str(wandb.run.id))


# --- a stalled W&B server ------------------------------------------------------------------------

online = flyte.TaskEnvironment(
    name="cluster_online", env_vars={"WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
)


@wandb_init(entity=ENTITY, project=PROJECT, timeout=3)
@online.task
async def against_a_stalled_server(steps: int) -> int:
    run = get_wandb_run()
    assert run is not None
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    return steps


# --- links on W&B's public cloud (the link/run comparison of the version matrix) -----------------

PUBLIC_CLOUD = "https://api.wandb.ai"
cloud = flyte.TaskEnvironment(name="cluster_cloud", env_vars={**OFFLINE, "WANDB_BASE_URL": PUBLIC_CLOUD})


@wandb_init
@cloud.task
async def cloud_auto_child() -> dict[str, str]:
    return observe()


@wandb_init(run_mode="new")
@cloud.task
async def cloud_new_child() -> dict[str, str]:
    return observe()


@wandb_init(entity=ENTITY, project=PROJECT)
@cloud.task
async def cloud_parent() -> dict[str, dict[str, str]]:
    auto, new = await asyncio.gather(cloud_auto_child(), cloud_new_child())
    return {"parent": observe(), "auto": auto, "new": new}


# --- the report tab ------------------------------------------------------------------------------


@wandb_init
@env.task(report=True)
async def report_child(steps: int) -> int:
    run = get_wandb_run()
    assert run is not None
    for step in range(steps):
        run.log({"child/value": step})
    return steps


@wandb_init(entity=ENTITY, project=PROJECT)
@env.task(report=True)
async def report_parent() -> dict[str, str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"parent/value": 1.0})
    await report_child(3)
    run.log({"parent/value": 2.0})
    return observe()
