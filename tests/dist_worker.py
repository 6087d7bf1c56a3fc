"""One rank of a torch-elastic job, for the process tests: runs ``@wandb_init`` tasks and reports.

The launcher (a test, or ``torchrun``) sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and
GROUP_RANK; W&B runs offline (``WANDB_MODE=offline``) under ``WANDB_DIR``. For each requested
``run_mode:rank_scope`` combination this process runs a task whose ``plugin_config`` is a real
``flyteplugins.pytorch.Elastic``, the way an elastic worker does:

- ``--via run`` (default): a real local Flyte run (``flyte.with_runcontext(mode="local", name=...)``).
  Flyte executes an Elastic task's function in-process in local mode, and every process of the job
  passes the same run name, so all ranks see the same action and compute the same base run id,
  exactly as the ranks of one remote action do.
- ``--via launcher``: what the Elastic plugin runs in each worker of a remote job:
  ``launcher_entrypoint(task_context, cloudpickle.dumps(task.func), kwargs)`` with a task context
  in remote mode (action ``a0`` of run ``--name``).

The task body records what it saw (the run, its id, group and shared-mode settings) and, after
the task, what the process left behind (whether the run was finished on disk, whether a run is
still visible). Everything goes to ``--out`` as JSON. With ``--barrier``, the ranks start each
task together and wait for each other at the end of its body, as training code does with a final
collective.

    python tests/dist_worker.py --out r.json --name job1 --combos auto:global,new:worker
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "dist-proj"
ENTITY = "dist-team"
BARRIER_TIMEOUT_S = 60.0
FINISH_WAIT_S = 20.0

RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE")


def clean_env(wandb_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a rank started by a test: offline W&B under ``wandb_dir``, nothing inherited.

    Every ``WANDB_*`` variable of the test process is dropped, ``WANDB_SERVICE`` above all: it
    names the wandb service of the process that set it, and ranks that inherit it share that one
    service, which refuses a second writer of the same run id ("run ID ... is in use").
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB_")) and k not in RANK_VARS
    }
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(wandb_dir),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        FLYTE_LOG_LEVEL="WARNING",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


# --- the rank --------------------------------------------------------------------------------------


def _barrier(root: Path | None, step: str, rank: int, world: int) -> None:
    """Wait until every rank reached ``step``, so that the ranks start their runs together."""
    if root is None:
        return
    folder = root / step
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(rank)).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(folder.iterdir())) < world and time.monotonic() < deadline:
        time.sleep(0.01)


def _all_reduce(rank: int) -> float:
    """Sum ``rank + 1`` over the job with torch.distributed (gloo): proves the ranks really talk."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    tensor = torch.tensor([float(rank + 1)])
    dist.all_reduce(tensor)
    return float(tensor.item())


def make_task(
    run_mode: str,
    rank_scope: str,
    *,
    nnodes: int | str,
    nproc: int,
    seen_path: Path,
    user_id: str | None = None,
    group: str | None = None,
    download_logs: bool = False,
    allreduce: bool = False,
    end_barrier: Callable[[], None] | None = None,
) -> Any:
    """An Elastic task decorated with ``@wandb_init``; its body writes what it saw to ``seen_path``.

    A file rather than a dict: on the launcher path the task's function is cloudpickled, which
    copies any dict it closes over.
    """
    import flyte
    from flyteplugins.pytorch import Elastic

    from flyteplugins.wandb import get_distributed_info, get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(
        name=f"dist_{run_mode}_{rank_scope}", plugin_config=Elastic(nnodes=nnodes, nproc_per_node=nproc)
    )
    extra: dict[str, Any] = {}
    if user_id is not None:
        extra["id"] = user_id
    if group is not None:
        extra["group"] = group

    @wandb_init(
        project=PROJECT,
        entity=ENTITY,
        run_mode=run_mode,
        rank_scope=rank_scope,
        download_logs=download_logs,
        **extra,
    )
    @env.task
    def train() -> None:
        import wandb

        ctx = flyte.ctx()
        info = get_distributed_info()
        run = get_wandb_run()
        assert info is not None, "the launcher's environment is missing"
        seen: dict[str, Any] = {}
        seen.update(
            run_name=ctx.action.run_name,
            action_name=ctx.action.name,
            flyte_mode=ctx.mode,
            info=dict(info),
            has_run=run is not None,
        )
        if allreduce:
            seen["all_reduce"] = _all_reduce(info.rank)
        if run is None:
            seen_path.write_text(json.dumps(seen), encoding="utf-8")
            if end_barrier is not None:
                end_barrier()
            return
        # Printed so that wandb's console capture writes output_<label>.log in shared mode.
        print(f"rank {info.rank} logging to {run.id}", flush=True)
        row: dict[str, Any] = {"rank": info.rank, "value": 10 * info.rank + 1}
        if "all_reduce" in seen:
            row["all_reduce"] = seen["all_reduce"]
        run.log(row)
        seen.update(
            run_id=run.id,
            group=run.group or None,
            project=run.project,
            settings_mode=run.settings.mode,
            x_label=run.settings.x_label,
            x_primary=run.settings.x_primary,
            x_update_finish_state=run.settings.x_update_finish_state,
            run_dir=str(Path(run.dir).parent),
            is_global_run=wandb.run is run,
        )
        seen_path.write_text(json.dumps(seen), encoding="utf-8")
        if end_barrier is not None:
            end_barrier()

    return train


def _run_via_flyte(task: Any, name: str, raw_data: Path) -> None:
    import flyte

    if not flyte._initialize.is_initialized():
        flyte.init()
    flyte.with_runcontext(mode="local", name=name, raw_data_path=str(raw_data)).run(task)


def _run_via_launcher(task: Any, name: str, raw_data: Path) -> None:
    import cloudpickle
    from flyte.models import ActionID, RawDataPath, TaskContext
    from flyte.report import Report
    from flyteplugins.pytorch.task import launcher_entrypoint

    action = ActionID(name="a0", run_name=name)
    tctx = TaskContext(
        action=action,
        version="na",
        raw_data_path=RawDataPath(path=str(raw_data)),
        output_path=str(raw_data / "outputs"),
        run_base_dir=str(raw_data / "metadata"),
        report=Report(name=action.name),
        mode="remote",
    )
    launcher_entrypoint(tctx, cloudpickle.dumps(task.func), {})


RUNNERS: dict[str, Callable[[Any, str, Path], None]] = {"run": _run_via_flyte, "launcher": _run_via_launcher}


def run_combo(args: argparse.Namespace, combo: str, rank: int, world: int, scratch: Path) -> dict[str, Any]:
    from flyteplugins.wandb import get_wandb_run
    from flyteplugins.wandb._offline import read_offline_run

    run_mode, rank_scope = combo.split(":")
    step = combo.replace(":", "-")
    seen_path = scratch / f"{step}.seen.json"
    seen_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"ok": False, "error": None, "seen": {}}
    try:
        task = make_task(
            run_mode,
            rank_scope,
            nnodes=args.nnodes,
            nproc=args.nproc,
            seen_path=seen_path,
            user_id=args.id,
            group=args.group,
            download_logs=args.download_logs,
            allreduce=args.allreduce,
            end_barrier=lambda: _barrier(args.barrier, f"{step}-end", rank, world),
        )
        _barrier(args.barrier, step, rank, world)
        RUNNERS[args.via](task, f"{args.name}-{run_mode}-{rank_scope}", scratch / step)
        result["ok"] = True
    except BaseException as exc:  # reported to the test, which shows it
        result["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if seen_path.exists():
        result["seen"] = seen = json.loads(seen_path.read_text(encoding="utf-8"))
    else:
        seen = {}
    # What the task left behind once it returned: a finished run on disk, no run still visible.
    result["run_visible_after"] = get_wandb_run() is not None
    if seen.get("run_dir"):
        # wandb's service writes the end of the log just after finish() returns: allow it a moment.
        # A writer that was never finished gets no exit record while its process lives.
        try:
            result["exit_code_on_disk"] = read_offline_run(seen["run_dir"], wait=FINISH_WAIT_S).exit_code
        except Exception as exc:
            result["exit_code_on_disk"] = f"unreadable: {exc}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", required=True, help="the report's path; {rank} is replaced by the rank")
    parser.add_argument("--name", required=True, help="the Flyte run name, the same in every rank of a job")
    parser.add_argument(
        "--combos", default="auto:global,auto:worker,shared:global,shared:worker,new:global,new:worker"
    )
    parser.add_argument("--via", choices=sorted(RUNNERS), default="run")
    parser.add_argument(
        "--nnodes", default=None, help="Elastic nnodes (default: from WORLD_SIZE/LOCAL_WORLD_SIZE)"
    )
    parser.add_argument("--nproc", type=int, default=None)
    parser.add_argument("--id", default=None, help="@wandb_init(id=...)")
    parser.add_argument("--group", default=None, help="@wandb_init(group=...)")
    parser.add_argument("--download-logs", action="store_true")
    parser.add_argument(
        "--allreduce", action="store_true", help="all_reduce with torch.distributed in the task"
    )
    parser.add_argument(
        "--barrier", type=Path, default=None, help="folder for a file barrier between the ranks"
    )
    args = parser.parse_args(argv)

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    args.out = Path(args.out.format(rank=rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if args.nproc is None:
        args.nproc = local_world
    if args.nnodes is None:
        args.nnodes = world // local_world
    elif args.nnodes.isdigit():
        args.nnodes = int(args.nnodes)
    scratch = args.out.parent / f"scratch-rank-{rank}"
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "env": {
            k: os.environ.get(k)
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")
        },
        "combos": {},
    }
    for combo in args.combos.split(","):
        report["combos"][combo] = run_combo(args, combo, rank, world, scratch)
    if args.allreduce:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    tmp.replace(args.out)
    return 0 if all(r["ok"] for r in report["combos"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
